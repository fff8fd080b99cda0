package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/omniflow-go/omniflow/tensor"
)

var (
	// ErrInvalid reports a file that breaks the format: a bad header,
	// bad offsets, a size that does not match the shape, and so on.
	ErrInvalid = errors.New("safetensors: invalid file")
	// ErrNotFound reports a tensor name that is not in the file.
	ErrNotFound = errors.New("safetensors: no such tensor")
	// ErrUnsupportedDType reports a valid safetensors dtype (F64, I8,
	// F8_E4M3, ...) that package tensor cannot represent, or a tensor dtype
	// the format has no name for.
	ErrUnsupportedDType = errors.New("safetensors: unsupported dtype")
	// ErrClosed reports use of a File after Close.
	ErrClosed = errors.New("safetensors: file closed")
)

// hostLittleEndian is whether tensor bytes in memory are in the file's
// byte order (a variable so that tests can take the big-endian path).
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// File is a validated safetensors file over a byte buffer: a read-only
// memory mapping (Open) or a caller's slice (Parse). Its methods are safe
// for concurrent use; Close must not race with the others.
type File struct {
	data    []byte // the data region, after the header
	entries map[string]*entry
	names   []string // sorted
	meta    map[string]string
	unmap   func() error // nil for Parse
	closed  atomic.Bool
}

// Parse validates buf as a safetensors file. The File aliases buf: tensors
// from Tensor are views of it, so buf must not change while they are in
// use. Parse allocates nothing for a header before checking its size, and
// at most in proportion to the header after that.
func Parse(buf []byte) (*File, error) {
	h, err := parseFile(buf)
	if err != nil {
		return nil, err
	}
	f := &File{
		data:    buf[8+h.size:],
		entries: make(map[string]*entry, len(h.entries)),
		names:   make([]string, 0, len(h.entries)),
		meta:    h.meta,
	}
	for _, e := range h.entries {
		f.entries[e.name] = e
		f.names = append(f.names, e.name)
	}
	slices.Sort(f.names)
	return f, nil
}

// Open memory-maps the file at path read-only (on platforms without mmap
// it reads the file into memory instead) and validates it.
//
// The mapping is shared with the file: tensors from Tensor change if the
// file is rewritten in place, and touching them after the file is
// truncated raises SIGBUS. WriteFile replaces files by renaming, which
// leaves existing mappings intact.
func Open(path string) (*File, error) {
	buf, unmap, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(buf)
	if err != nil {
		if unmap != nil {
			err = errors.Join(err, unmap())
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f.unmap = unmap
	return f, nil
}

// Close releases the mapping. Tensors returned by Tensor are views of it
// and must not be used after Close: for a file from Open, touching them
// faults and crashes the process. Tensors from TensorCopy stay valid.
// Close is idempotent.
func (f *File) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	if f.unmap != nil {
		return f.unmap()
	}
	return nil
}

// Names returns the tensor names, sorted (a new slice).
func (f *File) Names() []string { return slices.Clone(f.names) }

// Metadata returns a copy of the header's "__metadata__" map (nil when the
// file has none).
func (f *File) Metadata() map[string]string { return maps.Clone(f.meta) }

func (f *File) lookup(name string) (*entry, error) {
	if f.closed.Load() {
		return nil, fmt.Errorf("%w: tensor %q", ErrClosed, name)
	}
	e, ok := f.entries[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return e, nil
}

// Info returns the dtype, shape (a new slice) and size in bytes of the
// named tensor without touching its data. For a dtype that package tensor
// lacks (F64, I8, ...), dt is tensor.Invalid, shape and size are still
// set, and err wraps ErrUnsupportedDType and names the file's dtype.
func (f *File) Info(name string) (dt tensor.DType, shape []int, size int, err error) {
	e, err := f.lookup(name)
	if err != nil {
		return tensor.Invalid, nil, 0, err
	}
	return e.spec.dt, slices.Clone(e.shape), e.end - e.begin, e.supported()
}

func (e *entry) supported() error {
	if e.spec.dt == tensor.Invalid {
		return fmt.Errorf("%w: tensor %q has dtype %s", ErrUnsupportedDType, e.name, e.spec.name)
	}
	return nil
}

// Tensor returns the named tensor as a zero-copy view of the file's bytes.
//
// A view of a file from Open is READ-ONLY memory: writing into it (through
// Bytes, Float32s, CopyFrom, ...) faults and crashes the process. Use
// TensorCopy for a tensor you may modify. The view must not be used after
// Close. Release on it frees nothing.
//
// When the tensor's bytes are not aligned to its element size (possible in
// files not written by the reference writer or this package), or on a
// big-endian host, Tensor returns a copy instead, as TensorCopy does.
func (f *File) Tensor(name string) (*tensor.Tensor, error) {
	e, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if err := e.supported(); err != nil {
		return nil, err
	}
	b := f.data[e.begin:e.end:e.end]
	if !hostLittleEndian || !aligned(b, e.spec.dt.Size()) {
		return e.copy(b)
	}
	return tensor.FromBytes(e.spec.dt, e.shape, b)
}

// TensorCopy returns the named tensor copied into memory from the given
// allocator (tensor.DefaultAllocator unless tensor.WithAllocator says
// otherwise). It stays valid after Close.
func (f *File) TensorCopy(name string, opts ...tensor.Option) (*tensor.Tensor, error) {
	e, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if err := e.supported(); err != nil {
		return nil, err
	}
	return e.copy(f.data[e.begin:e.end], opts...)
}

func (e *entry) copy(b []byte, opts ...tensor.Option) (*tensor.Tensor, error) {
	t, err := tensor.New(e.spec.dt, e.shape, opts...)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", e.name, err)
	}
	if len(b) == 0 {
		// Bytes panics on empty tensors whose zero dimension is not the
		// last (tensor.IsContiguous says they are not contiguous).
		return t, nil
	}
	dst := t.Bytes()
	copy(dst, b)
	if !hostLittleEndian {
		swapBytes(dst, e.spec.dt.Size())
	}
	return t, nil
}

// aligned reports whether b starts at a multiple of size (empty slices
// always are: nothing is read through them).
func aligned(b []byte, size int) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%uintptr(size) == 0
}

// swapBytes reverses the bytes of each size-byte element of b, converting
// between little-endian and big-endian.
func swapBytes(b []byte, size int) {
	if size == 1 {
		return
	}
	for i := 0; i+size <= len(b); i += size {
		slices.Reverse(b[i : i+size])
	}
}
