package tensor

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

var (
	// ErrShape reports a shape, stride or index that does not fit.
	ErrShape = errors.New("tensor: bad shape")
	// ErrDType reports an operation that does not support a dtype.
	ErrDType = errors.New("tensor: bad dtype")
	// ErrDevice reports host access to device memory (or the reverse).
	ErrDevice = errors.New("tensor: wrong device")
)

// DefaultAllocator allocates host storage when no allocator is given: Go
// memory, 64-byte aligned.
var DefaultAllocator memory.Allocator = memory.NewGoAllocator()

// DeviceBuffer is memory owned by a device backend. Owner returns the
// backend's device value (a device.Device; typed any so that this package
// stays below package device).
type DeviceBuffer interface {
	Owner() any
	Len() int // bytes
	Release()
}

// storage is shared by a tensor and its views; the last Release frees it.
type storage struct {
	refs atomic.Int64
	buf  *memory.Buffer // host
	mem  memory.Allocator
	dev  DeviceBuffer // device
}

func (s *storage) retain() { s.refs.Add(1) }

func (s *storage) release() {
	if n := s.refs.Add(-1); n == 0 {
		if s.buf != nil {
			s.buf.Release()
		}
		if s.dev != nil {
			s.dev.Release()
		}
	} else if n < 0 {
		panic("tensor: Release called more times than Retain")
	}
}

// Tensor is a dtype, a shape and strides over storage. Tensors are values
// handed between operators; views (Reshape, Slice, Transpose, Permute,
// Expand) share storage. Shape and Strides return slices that must not be
// modified. Release frees the storage once the tensor and all its views are
// released; with the default Go allocator an unreleased tensor is simply
// collected.
type Tensor struct {
	dtype   DType
	shape   []int
	strides []int // in elements
	offset  int   // in elements
	st      *storage
}

// Option configures tensor construction.
type Option func(*options)

type options struct{ mem memory.Allocator }

// WithAllocator allocates host storage from mem (a CheckedAllocator in
// tests, to prove every buffer is released).
func WithAllocator(mem memory.Allocator) Option { return func(o *options) { o.mem = mem } }

func getOptions(opts []Option) options {
	o := options{mem: DefaultAllocator}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if o.mem == nil {
		o.mem = DefaultAllocator
	}
	return o
}

// NumElements returns the product of shape, or an error for a negative
// dimension or an overflowing product.
func NumElements(shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: dimension %d is %d", ErrShape, i, d)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("%w: %v overflows", ErrShape, shape)
		}
		n *= d
	}
	return n, nil
}

// ContiguousStrides returns row-major strides for shape.
func ContiguousStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= max(shape[i], 1)
	}
	return st
}

// New returns a zeroed host tensor.
func New(dt DType, shape []int, opts ...Option) (*Tensor, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrDType, dt)
	}
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	o := getOptions(opts)
	buf := memory.NewResizableBuffer(o.mem)
	buf.Resize(n * dt.Size())
	clear(buf.Bytes())
	st := &storage{buf: buf, mem: o.mem}
	st.refs.Store(1)
	return &Tensor{dtype: dt, shape: append([]int(nil), shape...), strides: ContiguousStrides(shape), st: st}, nil
}

// Zeros is New for code that has already validated its shape: it panics on
// a bad shape (a programmer error).
func Zeros(dt DType, shape ...int) *Tensor {
	t, err := New(dt, shape)
	if err != nil {
		panic(err)
	}
	return t
}

// FromBytes wraps data as a contiguous host tensor without copying (the
// tensor aliases data; used for memory-mapped weights).
func FromBytes(dt DType, shape []int, data []byte) (*Tensor, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrDType, dt)
	}
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	if len(data) != n*dt.Size() {
		return nil, fmt.Errorf("%w: %v %v needs %d bytes, got %d", ErrShape, dt, shape, n*dt.Size(), len(data))
	}
	st := &storage{buf: memory.NewBufferBytes(data)}
	st.refs.Store(1)
	return &Tensor{dtype: dt, shape: append([]int(nil), shape...), strides: ContiguousStrides(shape), st: st}, nil
}

// FromBuffer makes a tensor over an Arrow buffer, retaining it, with the
// given strides and offset (in elements; nil strides means contiguous).
// WithAllocator names the allocator that copies of it come from.
// Every element addressed must lie inside the buffer.
func FromBuffer(dt DType, shape, strides []int, offset int, buf *memory.Buffer, opts ...Option) (*Tensor, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrDType, dt)
	}
	if _, err := NumElements(shape); err != nil {
		return nil, err
	}
	if strides == nil {
		strides = ContiguousStrides(shape)
	}
	if len(strides) != len(shape) {
		return nil, fmt.Errorf("%w: %d strides for %d dims", ErrShape, len(strides), len(shape))
	}
	lo, hi := extent(shape, strides, offset)
	if lo < 0 || (hi > 0 && hi*dt.Size() > buf.Len()) {
		return nil, fmt.Errorf("%w: shape %v strides %v offset %d address elements [%d, %d) outside a buffer of %d bytes",
			ErrShape, shape, strides, offset, lo, hi, buf.Len())
	}
	buf.Retain()
	st := &storage{buf: buf}
	for _, o := range opts { // the allocator copies (Clone, ConvertTo) come from
		if o != nil {
			var op options
			o(&op)
			if op.mem != nil {
				st.mem = op.mem
			}
		}
	}
	st.refs.Store(1)
	return &Tensor{dtype: dt, shape: append([]int(nil), shape...), strides: append([]int(nil), strides...), offset: offset, st: st}, nil
}

// extent returns the element range [lo, hi) a view addresses (hi = 0 when
// it is empty).
func extent(shape, strides []int, offset int) (lo, hi int) {
	lo, hi = offset, offset+1
	for i, d := range shape {
		if d == 0 {
			return 0, 0
		}
		span := (d - 1) * strides[i]
		if span < 0 {
			lo += span
		} else {
			hi += span
		}
	}
	return lo, hi
}

// FromDevice makes a contiguous tensor over device memory, taking over the
// caller's reference to buf.
func FromDevice(dt DType, shape []int, buf DeviceBuffer) (*Tensor, error) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	if buf.Len() < n*dt.Size() {
		return nil, fmt.Errorf("%w: %v %v needs %d bytes, device buffer has %d", ErrShape, dt, shape, n*dt.Size(), buf.Len())
	}
	st := &storage{dev: buf}
	st.refs.Store(1)
	return &Tensor{dtype: dt, shape: append([]int(nil), shape...), strides: ContiguousStrides(shape), st: st}, nil
}

// DType returns the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Shape returns the dimensions (do not modify).
func (t *Tensor) Shape() []int { return t.shape }

// Strides returns the strides in elements (do not modify).
func (t *Tensor) Strides() []int { return t.strides }

// Offset returns the offset of the first element in its storage, in elements.
func (t *Tensor) Offset() int { return t.offset }

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// NumElements returns the number of elements.
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// SizeBytes returns the logical size in bytes.
func (t *Tensor) SizeBytes() int { return t.NumElements() * t.dtype.Size() }

// OnHost reports whether the storage is host memory.
func (t *Tensor) OnHost() bool { return t.st.buf != nil }

// DeviceBuffer returns the device storage (nil on the host).
func (t *Tensor) DeviceBuffer() DeviceBuffer { return t.st.dev }

// Buffer returns the host storage (nil on a device). Views of a tensor
// share it; Offset and Strides say where the tensor's elements are.
func (t *Tensor) Buffer() *memory.Buffer { return t.st.buf }

// Allocator returns the allocator of the host storage (nil when the tensor
// wraps memory it does not own).
func (t *Tensor) Allocator() memory.Allocator { return t.st.mem }

// Retain adds a reference to the storage.
func (t *Tensor) Retain() { t.st.retain() }

// Release drops a reference; the storage is freed with the last one.
func (t *Tensor) Release() { t.st.release() }

// IsContiguous reports whether the elements are laid out row-major without
// gaps.
func (t *Tensor) IsContiguous() bool {
	if t.NumElements() == 0 {
		return true
	}
	s := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.strides[i] != s {
			return false
		}
		s *= t.shape[i]
	}
	return true
}

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (t *Tensor) String() string {
	dev := "host"
	if !t.OnHost() {
		dev = fmt.Sprint(t.st.dev.Owner())
	}
	return fmt.Sprintf("Tensor(%v %v %s)", t.dtype, t.shape, dev)
}

// hostBytes returns the storage bytes from the tensor's first element on.
func (t *Tensor) hostBytes() []byte {
	if t.st.buf == nil {
		panic(fmt.Sprintf("%v: host access to device memory", t))
	}
	b := t.st.buf.Bytes()
	return b[t.offset*t.dtype.Size():]
}

// Bytes returns the raw bytes of a contiguous host tensor. It panics for a
// device tensor or a non-contiguous view (call Contiguous first).
func (t *Tensor) Bytes() []byte {
	t.mustContiguousHost()
	return t.hostBytes()[:t.SizeBytes()]
}

func (t *Tensor) mustContiguousHost() {
	if !t.IsContiguous() {
		panic(fmt.Sprintf("%v: strides %v are not contiguous; call Contiguous first", t, t.strides))
	}
}

func (t *Tensor) mustDType(dt ...DType) {
	for _, d := range dt {
		if t.dtype == d {
			return
		}
	}
	panic(fmt.Sprintf("%v: want dtype %v", t, dt))
}

// Float32s returns the elements of a contiguous float32 host tensor.
func (t *Tensor) Float32s() []float32 {
	t.mustDType(Float32)
	return castSlice[float32](t.Bytes())
}

// Int32s returns the elements of a contiguous int32 host tensor.
func (t *Tensor) Int32s() []int32 {
	t.mustDType(Int32)
	return castSlice[int32](t.Bytes())
}

// Int64s returns the elements of a contiguous int64 host tensor.
func (t *Tensor) Int64s() []int64 {
	t.mustDType(Int64)
	return castSlice[int64](t.Bytes())
}

// Uint16s returns the raw elements of a contiguous float16 or bfloat16 host tensor.
func (t *Tensor) Uint16s() []uint16 {
	t.mustDType(Float16, BFloat16)
	return castSlice[uint16](t.Bytes())
}

// Uint8s returns the elements of a contiguous uint8 host tensor.
func (t *Tensor) Uint8s() []uint8 {
	t.mustDType(Uint8)
	return t.Bytes()
}

func castSlice[T any](b []byte) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	if len(b) == 0 {
		return []T{}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/size)
}

// FromFloat32 wraps data as a float32 tensor without copying.
func FromFloat32(data []float32, shape ...int) (*Tensor, error) {
	return FromBytes(Float32, shape, bytesOf(data))
}

// FromInt32 wraps data as an int32 tensor without copying.
func FromInt32(data []int32, shape ...int) (*Tensor, error) {
	return FromBytes(Int32, shape, bytesOf(data))
}

// FromInt64 wraps data as an int64 tensor without copying.
func FromInt64(data []int64, shape ...int) (*Tensor, error) {
	return FromBytes(Int64, shape, bytesOf(data))
}

// FromUint8 wraps data as a uint8 tensor without copying.
func FromUint8(data []uint8, shape ...int) (*Tensor, error) {
	return FromBytes(Uint8, shape, data)
}

func bytesOf[T any](s []T) []byte {
	var z T
	if len(s) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

// At returns the element at idx as a float64 (for tests and debugging; slow).
func (t *Tensor) At(idx ...int) float64 {
	if len(idx) != len(t.shape) {
		panic(fmt.Sprintf("%v: %d indices", t, len(idx)))
	}
	off := t.offset
	for i, x := range idx {
		if x < 0 || x >= t.shape[i] {
			panic(fmt.Sprintf("%v: index %v out of range", t, idx))
		}
		off += x * t.strides[i]
	}
	b := t.st.buf.Bytes()[off*t.dtype.Size():]
	return loadFloat64(t.dtype, b)
}

func loadFloat64(dt DType, b []byte) float64 {
	switch dt {
	case Float32:
		return float64(*(*float32)(unsafe.Pointer(&b[0])))
	case Float16:
		return float64(F16ToF32(*(*uint16)(unsafe.Pointer(&b[0]))))
	case BFloat16:
		return float64(BF16ToF32(*(*uint16)(unsafe.Pointer(&b[0]))))
	case Int32:
		return float64(*(*int32)(unsafe.Pointer(&b[0])))
	case Int64:
		return float64(*(*int64)(unsafe.Pointer(&b[0])))
	case Uint8:
		return float64(b[0])
	}
	panic("tensor: bad dtype")
}

// Format prints up to limit elements per dimension, for debugging.
func (t *Tensor) Format(limit int) string {
	var b strings.Builder
	var rec func(dim int, idx []int)
	rec = func(dim int, idx []int) {
		if dim == len(t.shape) {
			fmt.Fprintf(&b, "%g", t.At(idx...))
			return
		}
		b.WriteByte('[')
		for i := 0; i < t.shape[dim]; i++ {
			if i == limit {
				b.WriteString(", ...")
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			rec(dim+1, append(idx, i))
		}
		b.WriteByte(']')
	}
	rec(0, nil)
	return b.String()
}
