package graph

import (
	"fmt"
	"io"
)

// EOF is returned by Recv after a stream's last chunk (it is io.EOF).
var EOF = io.EOF

// Get reads a value input and asserts its type, with an error naming the
// port and both types when it does not match.
func Get[T any](io *IO, port string) (T, error) {
	var zero T
	v, err := io.Get(port)
	if err != nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("input %q: got %T, want %T", port, v, zero)
	}
	return t, nil
}

// Recv reads the next chunk of a stream input and asserts its type.
func Recv[T any](io *IO, port string) (T, error) {
	var zero T
	v, err := io.Recv(port)
	if err != nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("input %q: chunk is %T, want %T", port, v, zero)
	}
	return t, nil
}
