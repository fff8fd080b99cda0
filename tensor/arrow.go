package tensor

import (
	"errors"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	arrowtensor "github.com/apache/arrow-go/v18/arrow/tensor"
)

// ErrNull reports Arrow data with null values where a tensor needs every
// element.
var ErrNull = errors.New("tensor: Arrow data has nulls")

// ArrowDataType returns the Arrow type of dt's elements: float32, float16,
// int32, int64, uint8, and for bfloat16 (which Arrow lacks) the
// omniflow.bfloat16 extension type over uint16 (see BFloat16Type).
func ArrowDataType(dt DType) (arrow.DataType, error) {
	switch dt {
	case Float32:
		return arrow.PrimitiveTypes.Float32, nil
	case Float16:
		return arrow.FixedWidthTypes.Float16, nil
	case BFloat16:
		return bfloat16Type, nil
	case Int32:
		return arrow.PrimitiveTypes.Int32, nil
	case Int64:
		return arrow.PrimitiveTypes.Int64, nil
	case Uint8:
		return arrow.PrimitiveTypes.Uint8, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrDType, dt)
}

// DTypeFromArrow returns the dtype of Arrow elements of type t, the inverse
// of ArrowDataType; other Arrow types are an ErrDType.
func DTypeFromArrow(t arrow.DataType) (DType, error) {
	if t == nil {
		return Invalid, fmt.Errorf("%w: nil Arrow type", ErrDType)
	}
	switch t.ID() {
	case arrow.FLOAT32:
		return Float32, nil
	case arrow.FLOAT16:
		return Float16, nil
	case arrow.INT32:
		return Int32, nil
	case arrow.INT64:
		return Int64, nil
	case arrow.UINT8:
		return Uint8, nil
	case arrow.EXTENSION:
		if _, ok := t.(*BFloat16Type); ok {
			return BFloat16, nil
		}
	}
	return Invalid, fmt.Errorf("%w: no tensor dtype for Arrow type %s", ErrDType, t)
}

// ToArrowTensor returns an arrow/tensor view of t: it shares t's host buffer
// (retained, so either side may be released first) with t's shape and
// strides (in bytes, as arrow/tensor counts them) and the given dimension
// names (none, or one per dimension). Release the result when done.
//
// arrow/tensor has float32, int32, int64 and uint8 but neither float16 nor
// bfloat16: those dtypes are an ErrDType (use ToArrowArray). A view with a
// negative stride, which arrow/tensor cannot address, is copied first.
func (t *Tensor) ToArrowTensor(dimNames ...string) (arrowtensor.Interface, error) {
	if !t.OnHost() {
		return nil, fmt.Errorf("%w: %v to arrow/tensor", ErrDevice, t)
	}
	switch t.dtype {
	case Float32, Int32, Int64, Uint8:
	default:
		return nil, fmt.Errorf("%w: arrow/tensor has no %v (use ToArrowArray)", ErrDType, t.dtype)
	}
	if len(dimNames) != 0 && len(dimNames) != len(t.shape) {
		return nil, fmt.Errorf("%w: %d dimension names for rank %d", ErrShape, len(dimNames), len(t.shape))
	}
	if hasNegativeStride(t) {
		c, err := t.Contiguous()
		if err != nil {
			return nil, err
		}
		defer c.Release()
		return c.ToArrowTensor(dimNames...)
	}
	at, err := ArrowDataType(t.dtype)
	if err != nil {
		return nil, err
	}
	// The data spans the elements the view addresses; arrow/tensor counts
	// element offsets from data.Offset().
	lo, hi := extent(t.shape, t.strides, t.offset)
	data := array.NewData(at, hi-lo, []*memory.Buffer{nil, t.st.buf}, nil, 0, lo)
	defer data.Release()
	size := int64(t.dtype.Size())
	shape := make([]int64, len(t.shape))
	strides := make([]int64, len(t.shape))
	for i := range t.shape {
		shape[i] = int64(t.shape[i])
		strides[i] = int64(t.strides[i]) * size
	}
	var names []string
	if len(dimNames) != 0 {
		names = append([]string(nil), dimNames...)
	}
	return arrowtensor.New(data, shape, strides, names), nil
}

// FromArrowTensor returns a tensor sharing at's buffer (retained; release
// both when done), with at's shape and strides. Arrow's dimension names are
// not kept. Data with nulls is an ErrNull.
func FromArrowTensor(at arrowtensor.Interface) (*Tensor, error) {
	dt, err := DTypeFromArrow(at.DataType())
	if err != nil {
		return nil, err
	}
	data := at.Data()
	if data == nil {
		return nil, fmt.Errorf("%w: arrow/tensor without data (released?)", ErrShape)
	}
	if n, err := countNulls(data, 0, data.Len()); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, fmt.Errorf("%w: arrow/tensor has %d nulls", ErrNull, n)
	}
	buf, err := valuesBuffer(data)
	if err != nil {
		return nil, err
	}
	shape64, strides64 := at.Shape(), at.Strides()
	shape := make([]int, len(shape64))
	for i, d := range shape64 {
		if d < 0 || d > math.MaxInt {
			return nil, fmt.Errorf("%w: arrow/tensor shape %v", ErrShape, shape64)
		}
		shape[i] = int(d)
	}
	var strides []int
	if len(strides64) != 0 || len(shape) == 0 {
		if len(strides64) != len(shape) {
			return nil, fmt.Errorf("%w: arrow/tensor has %d strides for %d dims", ErrShape, len(strides64), len(shape))
		}
		size := int64(dt.Size())
		strides = make([]int, len(strides64))
		for i, s := range strides64 {
			if s%size != 0 {
				return nil, fmt.Errorf("%w: arrow/tensor stride %d bytes is not a multiple of the %v size", ErrShape, s, dt)
			}
			strides[i] = int(s / size)
		}
	}
	return FromBuffer(dt, shape, strides, data.Offset(), buf)
}

// ToArrowArray returns t's elements, flattened in row-major order, as an
// Arrow array (see ArrowDataType; a bfloat16 tensor gives a
// *BFloat16Array). The array shares t's host buffer (retained; release both
// when done). A non-contiguous view is copied first, from t's allocator.
func (t *Tensor) ToArrowArray() (arrow.Array, error) {
	if !t.OnHost() {
		return nil, fmt.Errorf("%w: %v to an Arrow array", ErrDevice, t)
	}
	at, err := ArrowDataType(t.dtype)
	if err != nil {
		return nil, err
	}
	c, err := t.Contiguous()
	if err != nil {
		return nil, err
	}
	defer c.Release()
	n, off := c.NumElements(), c.offset
	if n == 0 {
		off = 0 // an empty view's offset may lie past the end of its buffer
	}
	data := array.NewData(at, n, []*memory.Buffer{nil, c.st.buf}, nil, 0, off)
	defer data.Release()
	return array.MakeFromData(data), nil
}

// FromArrowArray returns a contiguous tensor of the given shape over arr's
// values, sharing its buffer (retained; release both when done) and
// honouring its offset. A nil shape means 1-D; one dimension may be -1.
// Arrays with nulls are an ErrNull; element types other than those of
// ArrowDataType are an ErrDType.
func FromArrowArray(arr arrow.Array, shape []int) (*Tensor, error) {
	dt, err := DTypeFromArrow(arr.DataType())
	if err != nil {
		return nil, err
	}
	data := arr.Data()
	n := data.Len()
	if nulls, err := countNulls(data, 0, n); err != nil {
		return nil, err
	} else if nulls > 0 {
		return nil, fmt.Errorf("%w: Arrow array has %d nulls", ErrNull, nulls)
	}
	if shape == nil {
		shape = []int{n}
	}
	shape, err = inferShape(shape, n)
	if err != nil {
		return nil, err
	}
	buf, err := valuesBuffer(data)
	if err != nil {
		return nil, err
	}
	off := data.Offset()
	if n == 0 {
		off = 0
	}
	return FromBuffer(dt, shape, nil, off, buf)
}

// valuesBuffer returns the values buffer of fixed-width Arrow data; an
// empty array may have none.
func valuesBuffer(d arrow.ArrayData) (*memory.Buffer, error) {
	bufs := d.Buffers()
	if len(bufs) < 2 {
		return nil, fmt.Errorf("%w: Arrow %s data has %d buffers, want 2", ErrShape, d.DataType(), len(bufs))
	}
	if bufs[1] == nil {
		if d.Len() != 0 {
			return nil, fmt.Errorf("%w: Arrow %s data of length %d has no values buffer", ErrShape, d.DataType(), d.Len())
		}
		return memory.NewBufferBytes(nil), nil
	}
	return bufs[1], nil
}

// countNulls returns the number of nulls among d's elements [lo, hi)
// (relative to d's offset). It reads the validity bitmap itself, checking
// its length first: data read from an IPC stream is untrusted, and arrow's
// own accessors index the bitmap without bounds checks.
func countNulls(d arrow.ArrayData, lo, hi int) (int, error) {
	if d.NullN() == 0 || hi <= lo {
		return 0, nil
	}
	var bitmap []byte
	if bufs := d.Buffers(); len(bufs) > 0 && bufs[0] != nil {
		bitmap = bufs[0].Bytes()
	}
	if len(bitmap) == 0 {
		if d.NullN() > 0 {
			return 0, fmt.Errorf("%w: Arrow %s data claims %d nulls without a validity bitmap", ErrShape, d.DataType(), d.NullN())
		}
		return 0, nil // unknown null count and no bitmap: all valid
	}
	start, n := d.Offset()+lo, hi-lo
	if d.Offset() < 0 || start > math.MaxInt-n-7 || (start+n+7)/8 > len(bitmap) {
		return 0, fmt.Errorf("%w: Arrow %s validity bitmap of %d bytes is too short", ErrShape, d.DataType(), len(bitmap))
	}
	return n - bitutil.CountSetBits(bitmap, start, n), nil
}

func hasNegativeStride(t *Tensor) bool {
	for i, s := range t.strides {
		if s < 0 && t.shape[i] > 1 {
			return true
		}
	}
	return false
}
