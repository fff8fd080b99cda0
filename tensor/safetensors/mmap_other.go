//go:build !unix

package safetensors

import "os"

// mapFile reads path into memory where there is no mmap.
func mapFile(path string) (buf []byte, unmap func() error, err error) {
	buf, err = os.ReadFile(path)
	return buf, nil, err
}
