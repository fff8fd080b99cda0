//go:build !unix

package safetensors

import (
	"fmt"
	"os"
)

// mapFile reads path into memory where there is no mmap.
func mapFile(path string) (buf []byte, unmap func() error, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("open %s: not a regular file", path)
	}
	buf, err = os.ReadFile(path)
	return buf, nil, err
}
