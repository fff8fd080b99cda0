//go:build unix

package safetensors

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// mapFile maps path read-only and shared. The descriptor is closed before
// returning; the mapping outlives it.
func mapFile(path string) (buf []byte, unmap func() error, err error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	switch {
	case !st.Mode().IsRegular():
		return nil, nil, fmt.Errorf("open %s: not a regular file", path)
	case size == 0:
		return []byte{}, nil, nil // mmap rejects length 0; Parse reports the short file
	case size > math.MaxInt:
		return nil, nil, fmt.Errorf("open %s: %d bytes do not fit in memory", path, size)
	}
	buf, err = syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return buf, func() error {
		if err := syscall.Munmap(buf); err != nil {
			return fmt.Errorf("munmap %s: %w", path, err)
		}
		return nil
	}, nil
}
