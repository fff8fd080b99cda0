package tensor_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	arrowtensor "github.com/apache/arrow-go/v18/arrow/tensor"

	"github.com/omniflow-go/omniflow/tensor"
)

var allDTypes = []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16, tensor.Int32, tensor.Int64, tensor.Uint8}

// filled returns a contiguous tensor whose element k (row-major) is
// value(k): distinct, and exact in every dtype for the sizes tests use.
func filled(t testing.TB, mem memory.Allocator, dt tensor.DType, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.New(dt, shape, tensor.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < x.NumElements(); k++ {
		v := value(k)
		switch dt {
		case tensor.Float32:
			x.Float32s()[k] = v
		case tensor.Float16:
			x.Uint16s()[k] = tensor.F32ToF16(v)
		case tensor.BFloat16:
			x.Uint16s()[k] = tensor.F32ToBF16(v)
		case tensor.Int32:
			x.Int32s()[k] = int32(v)
		case tensor.Int64:
			x.Int64s()[k] = int64(v)
		case tensor.Uint8:
			x.Uint8s()[k] = uint8(v)
		}
	}
	return x
}

func value(k int) float32 { return float32(k%200 + 1) }

// forEachIndex calls f with every index of shape, row-major.
func forEachIndex(shape []int, f func(idx []int)) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	idx := make([]int, len(shape))
	for i := 0; i < n; i++ {
		f(idx)
		for j := len(idx) - 1; j >= 0; j-- {
			idx[j]++
			if idx[j] < shape[j] {
				break
			}
			idx[j] = 0
		}
	}
}

// sameTensor fails unless got has want's dtype, shape and elements.
func sameTensor(t testing.TB, got, want *tensor.Tensor) {
	t.Helper()
	if got.DType() != want.DType() || !tensor.SameShape(got.Shape(), want.Shape()) {
		t.Fatalf("got %v, want %v", got, want)
	}
	forEachIndex(want.Shape(), func(idx []int) {
		if g, w := got.At(idx...), want.At(idx...); g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
			t.Fatalf("%v at %v: got %v, want %v", want, idx, g, w)
		}
	})
}

// sameBytes fails unless got and want hold the same bytes row-major (NaN
// payloads included).
func sameBytes(t testing.TB, got, want *tensor.Tensor) {
	t.Helper()
	if want.NumElements() == 0 {
		// Nothing to compare; and New's strides for a zero in a later
		// dimension fail IsContiguous, so Bytes would panic.
		return
	}
	g, err := got.Clone(tensor.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Release()
	w, err := want.Clone(tensor.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Release()
	if !bytes.Equal(g.Bytes(), w.Bytes()) {
		t.Fatalf("%v: bytes differ", want)
	}
}

// arrowAt reads element idx of an arrow/tensor through its own accessor.
func arrowAt(at arrowtensor.Interface, idx []int) float64 {
	i64 := make([]int64, len(idx))
	for i, x := range idx {
		i64[i] = int64(x)
	}
	switch a := at.(type) {
	case *arrowtensor.Float32:
		return float64(a.Value(i64))
	case *arrowtensor.Int32:
		return float64(a.Value(i64))
	case *arrowtensor.Int64:
		return float64(a.Value(i64))
	case *arrowtensor.Uint8:
		return float64(a.Value(i64))
	}
	panic("unexpected arrow tensor type")
}

func TestArrowTensorRoundTripSharesMemory(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Int32, tensor.Int64, tensor.Uint8} {
		t.Run(dt.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			x := filled(t, mem, dt, 2, 3, 4)
			views := map[string]func() (*tensor.Tensor, error){
				"contiguous": func() (*tensor.Tensor, error) { x.Retain(); return x, nil },
				"permuted":   func() (*tensor.Tensor, error) { return x.Permute(2, 0, 1) },
				"sliced":     func() (*tensor.Tensor, error) { return x.Slice(1, 1, 3) },
				"index":      func() (*tensor.Tensor, error) { return x.Index(0, 1) },
				"expanded": func() (*tensor.Tensor, error) {
					r, err := x.Index(1, 2)
					if err != nil {
						return nil, err
					}
					defer r.Release()
					u, err := r.Unsqueeze(1)
					if err != nil {
						return nil, err
					}
					defer u.Release()
					return u.Expand(2, 5, 4)
				},
				"empty": func() (*tensor.Tensor, error) { return x.Slice(2, 4, 4) },
			}
			for name, mk := range views {
				t.Run(name, func(t *testing.T) {
					v, err := mk()
					if err != nil {
						t.Fatal(err)
					}
					defer v.Release()
					at, err := v.ToArrowTensor()
					if err != nil {
						t.Fatal(err)
					}
					defer at.Release()
					if got := at.Data().Buffers()[1]; got != x.Buffer() {
						t.Fatal("the arrow tensor does not share the tensor's buffer")
					}
					if at.NumDims() != v.Rank() {
						t.Fatalf("rank %d, want %d", at.NumDims(), v.Rank())
					}
					for i := range v.Shape() {
						if at.Shape()[i] != int64(v.Shape()[i]) || at.Strides()[i] != int64(v.Strides()[i]*dt.Size()) {
							t.Fatalf("shape %v strides %v (bytes), tensor %v %v", at.Shape(), at.Strides(), v.Shape(), v.Strides())
						}
					}
					forEachIndex(v.Shape(), func(idx []int) {
						if g, w := arrowAt(at, idx), v.At(idx...); g != w {
							t.Fatalf("arrow %v = %v, want %v", idx, g, w)
						}
					})
					back, err := tensor.FromArrowTensor(at)
					if err != nil {
						t.Fatal(err)
					}
					defer back.Release()
					if back.Buffer() != x.Buffer() {
						t.Fatal("FromArrowTensor copied")
					}
					sameTensor(t, back, v)
				})
			}
			// The arrow tensor keeps the memory alive after the tensor goes.
			at, err := x.ToArrowTensor("n", "h", "w")
			if err != nil {
				t.Fatal(err)
			}
			x.Release()
			if mem.CurrentAlloc() == 0 || at.DimName(1) != "h" || arrowAt(at, []int{1, 2, 3}) != float64(value(23)) {
				t.Fatalf("arrow tensor after Release: %d bytes live, name %q", mem.CurrentAlloc(), at.DimName(1))
			}
			at.Release()
		})
	}
}

func TestArrowTensorScalarAndNegativeStrides(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := filled(t, mem, tensor.Int64)
	defer s.Release()
	at, err := s.ToArrowTensor()
	if err != nil {
		t.Fatal(err)
	}
	back, err := tensor.FromArrowTensor(at)
	at.Release()
	if err != nil {
		t.Fatal(err)
	}
	if back.Rank() != 0 || back.At() != 1 {
		t.Fatalf("scalar came back as %v = %s", back, back.Format(3))
	}
	back.Release()

	// A reversed view (negative stride, only FromBuffer makes one) is copied.
	x := filled(t, mem, tensor.Float32, 4)
	defer x.Release()
	rev, err := tensor.FromBuffer(tensor.Float32, []int{4}, []int{-1}, 3, x.Buffer())
	if err != nil {
		t.Fatal(err)
	}
	defer rev.Release()
	at, err = rev.ToArrowTensor()
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	if at.Data().Buffers()[1] == x.Buffer() || arrowAt(at, []int{0}) != 4 || arrowAt(at, []int{3}) != 1 {
		t.Fatalf("reversed view: %v", at.(*arrowtensor.Float32).Float32Values())
	}
}

// fakeDevice is device memory for the error paths.
type fakeDevice struct{ n int }

func (f fakeDevice) Owner() any { return "fake" }
func (f fakeDevice) Len() int   { return f.n }
func (f fakeDevice) Release()   {}

func TestArrowTensorErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, dt := range []tensor.DType{tensor.Float16, tensor.BFloat16} {
		x := filled(t, mem, dt, 3)
		if _, err := x.ToArrowTensor(); !errors.Is(err, tensor.ErrDType) {
			t.Errorf("%v: want ErrDType, got %v", dt, err)
		}
		x.Release()
	}
	x := filled(t, mem, tensor.Float32, 2, 3)
	defer x.Release()
	if _, err := x.ToArrowTensor("only one"); !errors.Is(err, tensor.ErrShape) {
		t.Errorf("one dim name for rank 2: %v", err)
	}
	d, err := tensor.FromDevice(tensor.Float32, []int{2}, fakeDevice{8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ToArrowTensor(); !errors.Is(err, tensor.ErrDevice) {
		t.Errorf("device tensor: %v", err)
	}
	if _, err := d.ToArrowArray(); !errors.Is(err, tensor.ErrDevice) {
		t.Errorf("device tensor: %v", err)
	}

	// Arrow-native tensors: a float64 one has no dtype; strides that are not
	// whole elements are refused.
	b := array.NewFloat64Builder(mem)
	b.AppendValues([]float64{1, 2, 3, 4}, nil)
	f64 := b.NewFloat64Array()
	b.Release()
	defer f64.Release()
	at := arrowtensor.New(f64.Data(), []int64{2, 2}, nil, nil)
	if _, err := tensor.FromArrowTensor(at); !errors.Is(err, tensor.ErrDType) {
		t.Errorf("float64 arrow tensor: %v", err)
	}
	at.Release()
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{1, 2, 3, 4}, nil)
	i32 := ib.NewInt32Array()
	ib.Release()
	defer i32.Release()
	at = arrowtensor.New(i32.Data(), []int64{2}, []int64{6}, nil)
	if _, err := tensor.FromArrowTensor(at); !errors.Is(err, tensor.ErrShape) {
		t.Errorf("stride of 1.5 elements: %v", err)
	}
	at.Release()
	// Column-major, as arrow/tensor allows: a strided view.
	at = arrowtensor.New(i32.Data(), []int64{2, 2}, []int64{4, 8}, nil)
	defer at.Release()
	cm, err := tensor.FromArrowTensor(at)
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Release()
	if cm.IsContiguous() || cm.At(0, 1) != 3 || cm.At(1, 0) != 2 {
		t.Fatalf("column-major arrow tensor: %s", cm.Format(2))
	}
	ib = array.NewInt32Builder(mem)
	ib.AppendValues([]int32{1, 2}, []bool{true, false})
	withNull := ib.NewInt32Array()
	ib.Release()
	defer withNull.Release()
	at2 := arrowtensor.New(withNull.Data(), []int64{2}, nil, nil)
	defer at2.Release()
	if _, err := tensor.FromArrowTensor(at2); !errors.Is(err, tensor.ErrNull) {
		t.Errorf("arrow tensor with a null: %v", err)
	}
}

func TestArrowArrayRoundTrip(t *testing.T) {
	for _, dt := range allDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			x := filled(t, mem, dt, 3, 4)
			defer x.Release()
			arr, err := x.ToArrowArray()
			if err != nil {
				t.Fatal(err)
			}
			defer arr.Release()
			want, _ := tensor.ArrowDataType(dt)
			if !arrow.TypeEqual(arr.DataType(), want) || arr.Len() != 12 || arr.NullN() != 0 {
				t.Fatalf("array %s of %d, want %s of 12", arr.DataType(), arr.Len(), want)
			}
			if arr.Data().Buffers()[1] != x.Buffer() {
				t.Fatal("ToArrowArray copied a contiguous tensor")
			}
			for k := 0; k < 12; k++ {
				if got := arrayValue(arr, k); got != float64(value(k)) {
					t.Fatalf("element %d = %v, want %v", k, got, value(k))
				}
			}
			// Writes through the tensor show in the array: one buffer.
			clear(x.Bytes()[:dt.Size()])
			if arrayValue(arr, 0) != 0 {
				t.Fatal("array does not see the tensor's writes")
			}
			back, err := tensor.FromArrowArray(arr, []int{4, -1})
			if err != nil {
				t.Fatal(err)
			}
			defer back.Release()
			if back.Buffer() != x.Buffer() || back.Dim(1) != 3 {
				t.Fatalf("FromArrowArray: %v", back)
			}
			sameBytes(t, back, x)

			// A slice of the array (an offset) is a view at that offset.
			sl := array.NewSlice(arr, 5, 9)
			defer sl.Release()
			v, err := tensor.FromArrowArray(sl, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Release()
			if v.Offset() != 5 || v.Rank() != 1 || v.At(2) != float64(value(7)) {
				t.Fatalf("slice: %v offset %d", v, v.Offset())
			}

			// A transposed view is copied, row-major.
			tr, err := x.Transpose(0, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Release()
			ta, err := tr.ToArrowArray()
			if err != nil {
				t.Fatal(err)
			}
			defer ta.Release()
			if ta.Data().Buffers()[1] == x.Buffer() || arrayValue(ta, 1) != float64(value(4)) {
				t.Fatalf("transposed: element 1 = %v, want %v", arrayValue(ta, 1), value(4))
			}

			// Empty and scalar tensors.
			e, _ := x.Slice(0, 3, 3)
			defer e.Release()
			ea, err := e.ToArrowArray()
			if err != nil {
				t.Fatal(err)
			}
			defer ea.Release()
			eb, err := tensor.FromArrowArray(ea, []int{0, 4})
			if err != nil || eb.NumElements() != 0 {
				t.Fatalf("empty: %v %v", eb, err)
			}
			eb.Release()
			s, err := tensor.FromArrowArray(sl, []int{})
			if !errors.Is(err, tensor.ErrShape) {
				t.Fatalf("4 elements as a scalar: %v %v", s, err)
			}
		})
	}
}

func arrayValue(arr arrow.Array, k int) float64 {
	switch a := arr.(type) {
	case *array.Float32:
		return float64(a.Value(k))
	case *array.Float16:
		return float64(a.Value(k).Float32())
	case *tensor.BFloat16Array:
		return float64(a.Value(k))
	case *array.Int32:
		return float64(a.Value(k))
	case *array.Int64:
		return float64(a.Value(k))
	case *array.Uint8:
		return float64(a.Value(k))
	}
	panic("unexpected array type " + arr.DataType().String())
}
