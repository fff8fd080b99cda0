package tensor

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// view returns a tensor sharing t's storage (retained).
func (t *Tensor) view(shape, strides []int, offset int) *Tensor {
	t.st.retain()
	return &Tensor{dtype: t.dtype, shape: shape, strides: strides, offset: offset, st: t.st}
}

func (t *Tensor) axis(d int) (int, error) {
	if d < 0 {
		d += len(t.shape)
	}
	if d < 0 || d >= len(t.shape) {
		return 0, fmt.Errorf("%w: axis %d out of range for rank %d", ErrShape, d, len(t.shape))
	}
	return d, nil
}

// inferShape resolves one -1 in shape against n elements.
func inferShape(shape []int, n int) ([]int, error) {
	out := append([]int(nil), shape...)
	infer := -1
	known := 1
	for i, d := range out {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, fmt.Errorf("%w: bad reshape target %v", ErrShape, shape)
		default:
			known *= d
		}
	}
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("%w: cannot reshape %d elements to %v", ErrShape, n, shape)
		}
		out[infer] = n / known
	} else if known != n {
		return nil, fmt.Errorf("%w: cannot reshape %d elements to %v", ErrShape, n, shape)
	}
	return out, nil
}

// Reshape returns a tensor with the same elements in a new shape (one
// dimension may be -1). It is a view when t is contiguous, and a copy
// otherwise.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	ns, err := inferShape(shape, t.NumElements())
	if err != nil {
		return nil, fmt.Errorf("reshape %v: %w", t.shape, err)
	}
	if t.IsContiguous() {
		return t.view(ns, ContiguousStrides(ns), t.offset), nil
	}
	c, err := t.Contiguous()
	if err != nil {
		return nil, err
	}
	defer c.Release()
	return c.view(ns, ContiguousStrides(ns), c.offset), nil
}

// Slice returns the view of t with dimension dim restricted to [start, end).
func (t *Tensor) Slice(dim, start, end int) (*Tensor, error) {
	d, err := t.axis(dim)
	if err != nil {
		return nil, err
	}
	if start < 0 || end < start || end > t.shape[d] {
		return nil, fmt.Errorf("%w: slice [%d:%d] of dimension %d (size %d)", ErrShape, start, end, d, t.shape[d])
	}
	shape := slices.Clone(t.shape)
	shape[d] = end - start
	off := t.offset
	if end > start {
		off += start * t.strides[d]
	}
	return t.view(shape, slices.Clone(t.strides), off), nil
}

// Index returns the view of t at position i of dimension dim, with that
// dimension removed.
func (t *Tensor) Index(dim, i int) (*Tensor, error) {
	d, err := t.axis(dim)
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= t.shape[d] {
		return nil, fmt.Errorf("%w: index %d of dimension %d (size %d)", ErrShape, i, d, t.shape[d])
	}
	shape := slices.Delete(slices.Clone(t.shape), d, d+1)
	strides := slices.Delete(slices.Clone(t.strides), d, d+1)
	return t.view(shape, strides, t.offset+i*t.strides[d]), nil
}

// Transpose swaps two dimensions (a view).
func (t *Tensor) Transpose(a, b int) (*Tensor, error) {
	perm := make([]int, len(t.shape))
	for i := range perm {
		perm[i] = i
	}
	x, err := t.axis(a)
	if err != nil {
		return nil, err
	}
	y, err := t.axis(b)
	if err != nil {
		return nil, err
	}
	perm[x], perm[y] = perm[y], perm[x]
	return t.Permute(perm...)
}

// Permute reorders the dimensions: dimension i of the result is dimension
// perm[i] of t (a view).
func (t *Tensor) Permute(perm ...int) (*Tensor, error) {
	if len(perm) != len(t.shape) {
		return nil, fmt.Errorf("%w: permutation %v for rank %d", ErrShape, perm, len(t.shape))
	}
	seen := make([]bool, len(perm))
	shape := make([]int, len(perm))
	strides := make([]int, len(perm))
	for i, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			return nil, fmt.Errorf("%w: %v is not a permutation", ErrShape, perm)
		}
		seen[p] = true
		shape[i], strides[i] = t.shape[p], t.strides[p]
	}
	return t.view(shape, strides, t.offset), nil
}

// Unsqueeze inserts a dimension of size 1 at dim (a view).
func (t *Tensor) Unsqueeze(dim int) (*Tensor, error) {
	if dim < 0 {
		dim += len(t.shape) + 1
	}
	if dim < 0 || dim > len(t.shape) {
		return nil, fmt.Errorf("%w: unsqueeze at %d for rank %d", ErrShape, dim, len(t.shape))
	}
	stride := 1
	if dim < len(t.shape) {
		stride = t.strides[dim] * t.shape[dim]
	}
	return t.view(slices.Insert(slices.Clone(t.shape), dim, 1), slices.Insert(slices.Clone(t.strides), dim, stride), t.offset), nil
}

// Expand broadcasts dimensions of size 1 to shape (stride 0, a view).
// Leading dimensions may be added.
func (t *Tensor) Expand(shape ...int) (*Tensor, error) {
	if len(shape) < len(t.shape) {
		return nil, fmt.Errorf("%w: cannot expand %v to %v", ErrShape, t.shape, shape)
	}
	lead := len(shape) - len(t.shape)
	strides := make([]int, len(shape))
	for i := range shape {
		if i < lead {
			continue
		}
		d := t.shape[i-lead]
		switch {
		case d == shape[i]:
			strides[i] = t.strides[i-lead]
		case d == 1:
		default:
			return nil, fmt.Errorf("%w: cannot expand %v to %v", ErrShape, t.shape, shape)
		}
	}
	return t.view(slices.Clone(shape), strides, t.offset), nil
}

// Contiguous returns t itself (retained) when it is contiguous, and a
// contiguous copy otherwise.
func (t *Tensor) Contiguous(opts ...Option) (*Tensor, error) {
	if t.IsContiguous() {
		t.Retain()
		return t, nil
	}
	return t.Clone(opts...)
}

// Clone returns a contiguous copy of t in host memory from the given
// allocator (default: t's own allocator).
func (t *Tensor) Clone(opts ...Option) (*Tensor, error) {
	if !t.OnHost() {
		return nil, fmt.Errorf("%w: Clone of %v: copy device tensors with package device", ErrDevice, t)
	}
	if len(opts) == 0 && t.st.mem != nil {
		opts = []Option{WithAllocator(t.st.mem)}
	}
	out, err := New(t.dtype, t.shape, opts...)
	if err != nil {
		return nil, err
	}
	copyStrided(out.hostBytes(), t.st.buf.Bytes(), t.offset, t.dtype.Size(), t.shape, t.strides)
	return out, nil
}

// copyStrided copies the strided view at element offset base of src (the
// whole storage) into contiguous dst, moving the innermost contiguous run
// at once. Strides may be negative.
func copyStrided(dst, src []byte, base, size int, shape, strides []int) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n == 0 {
		return
	}
	// Merge trailing dimensions that are contiguous in src.
	inner := 1
	k := len(shape)
	for k > 0 && strides[k-1] == inner {
		inner *= shape[k-1]
		k--
	}
	run := inner * size
	idx := make([]int, k)
	for i := 0; i < n/inner; i++ {
		off := base
		for j := 0; j < k; j++ {
			off += idx[j] * strides[j]
		}
		copy(dst[i*run:(i+1)*run], src[off*size:off*size+run])
		for j := k - 1; j >= 0; j-- {
			idx[j]++
			if idx[j] < shape[j] {
				break
			}
			idx[j] = 0
		}
	}
}

// ConvertTo returns a contiguous host copy of t with dtype dt. Float dtypes
// convert with round-to-nearest-even; integers convert to floats exactly
// where representable; floats convert to integers by truncation toward
// zero.
func (t *Tensor) ConvertTo(dt DType, opts ...Option) (*Tensor, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("%w: %v", ErrDType, dt)
	}
	src, err := t.Contiguous()
	if err != nil {
		return nil, err
	}
	defer src.Release()
	if len(opts) == 0 && t.st.mem != nil {
		opts = []Option{WithAllocator(t.st.mem)}
	}
	out, err := New(dt, t.shape, opts...)
	if err != nil {
		return nil, err
	}
	if dt == t.dtype {
		copy(out.Bytes(), src.Bytes())
		return out, nil
	}
	// Through float32 (exact for every pair except int/int64 > 2^24, which
	// goes through float64 below).
	switch {
	case dt == Float32:
		toFloat32(out.Float32s(), src)
	case src.dtype == Float32:
		fromFloat32(out, src.Float32s())
	default:
		tmp := make([]float32, t.NumElements())
		toFloat32(tmp, src)
		fromFloat32(out, tmp)
	}
	return out, nil
}

func toFloat32(dst []float32, src *Tensor) {
	switch src.dtype {
	case Float32:
		copy(dst, src.Float32s())
	case Float16:
		F16ToF32Slice(dst, src.Uint16s())
	case BFloat16:
		BF16ToF32Slice(dst, src.Uint16s())
	case Int32:
		for i, v := range src.Int32s() {
			dst[i] = float32(v)
		}
	case Int64:
		for i, v := range src.Int64s() {
			dst[i] = float32(v)
		}
	case Uint8:
		for i, v := range src.Uint8s() {
			dst[i] = float32(v)
		}
	}
}

func fromFloat32(dst *Tensor, src []float32) {
	switch dst.dtype {
	case Float16:
		F32ToF16Slice(dst.Uint16s(), src)
	case BFloat16:
		F32ToBF16Slice(dst.Uint16s(), src)
	case Int32:
		for i, v := range src {
			dst.Int32s()[i] = int32(v)
		}
	case Int64:
		for i, v := range src {
			dst.Int64s()[i] = int64(v)
		}
	case Uint8:
		for i, v := range src {
			dst.Uint8s()[i] = uint8(v)
		}
	}
}

// CopyFrom copies src's elements into t (same shape and dtype; either may
// be a strided view; t must be host memory).
func (t *Tensor) CopyFrom(src *Tensor) error {
	if !SameShape(t.shape, src.shape) || t.dtype != src.dtype {
		return fmt.Errorf("%w: copy %v into %v", ErrShape, src, t)
	}
	if !t.OnHost() || !src.OnHost() {
		return fmt.Errorf("%w: CopyFrom between %v and %v", ErrDevice, src, t)
	}
	if t.IsContiguous() {
		copyStrided(t.hostBytes(), src.st.buf.Bytes(), src.offset, t.dtype.Size(), src.shape, src.strides)
		return nil
	}
	c, err := src.Clone(WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return err
	}
	defer c.Release()
	// Scatter the contiguous copy into t's strides element by element.
	size := t.dtype.Size()
	n := t.NumElements()
	idx := make([]int, len(t.shape))
	dst, s := t.hostBytes(), c.hostBytes()
	for i := 0; i < n; i++ {
		off := 0
		for j := range idx {
			off += idx[j] * t.strides[j]
		}
		copy(dst[off*size:(off+1)*size], s[i*size:(i+1)*size])
		for j := len(idx) - 1; j >= 0; j-- {
			idx[j]++
			if idx[j] < t.shape[j] {
				break
			}
			idx[j] = 0
		}
	}
	return nil
}
