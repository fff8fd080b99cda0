package tensor_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/tensor"
)

func TestFixedShapeTensorMetadata(t *testing.T) {
	f32 := arrow.PrimitiveTypes.Float32
	// Literal metadata in the spec's format
	// (https://arrow.apache.org/docs/format/CanonicalExtensions.html#fixed-shape-tensor),
	// and what Serialize writes for it: compact, keys in Arrow C++'s order
	// (shape, permutation, dim_names).
	for _, tc := range []struct {
		in, out     string
		listSize    int32
		shape       []int
		dimNames    []string
		permutation []int
		logical     []int
	}{
		{`{"shape":[2,3]}`, `{"shape":[2,3]}`, 6, []int{2, 3}, nil, nil, []int{2, 3}},
		{`{"shape":[2,3],"dim_names":["H","W"],"permutation":[1,0]}`, `{"shape":[2,3],"permutation":[1,0],"dim_names":["H","W"]}`,
			6, []int{2, 3}, []string{"H", "W"}, []int{1, 0}, []int{3, 2}},
		{`{ "shape": [2, 5]}`, `{"shape":[2,5]}`, 10, []int{2, 5}, nil, nil, []int{2, 5}},
		{`{ "shape": [100, 200, 500], "dim_names": ["C", "H", "W"]}`, `{"shape":[100,200,500],"dim_names":["C","H","W"]}`,
			100 * 200 * 500, []int{100, 200, 500}, []string{"C", "H", "W"}, nil, []int{100, 200, 500}},
		// The spec: "This is the physical layout shape and the shape of the
		// logical layout would in this case be [500, 100, 200]."
		{`{ "shape": [100, 200, 500], "permutation": [2, 0, 1]}`, `{"shape":[100,200,500],"permutation":[2,0,1]}`,
			100 * 200 * 500, []int{100, 200, 500}, nil, []int{2, 0, 1}, []int{500, 100, 200}},
		{`{"shape":[],"future_key":{"x":1}}`, `{"shape":[]}`, 1, []int{}, nil, nil, []int{}},
		{`{"shape":[4],"permutation":[0]}`, `{"shape":[4]}`, 4, []int{4}, nil, nil, []int{4}}, // identity dropped
	} {
		ext, err := (&tensor.FixedShapeTensorType{}).Deserialize(arrow.FixedSizeListOf(tc.listSize, f32), tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		typ := ext.(*tensor.FixedShapeTensorType)
		if !slices.Equal(typ.Shape(), tc.shape) || !slices.Equal(typ.DimNames(), tc.dimNames) ||
			!slices.Equal(typ.Permutation(), tc.permutation) || !slices.Equal(typ.LogicalShape(), tc.logical) {
			t.Errorf("%s: shape %v dim_names %v permutation %v logical %v", tc.in, typ.Shape(), typ.DimNames(), typ.Permutation(), typ.LogicalShape())
		}
		if got := typ.Serialize(); got != tc.out {
			t.Errorf("%s: Serialize = %s, want %s", tc.in, got, tc.out)
		}
		made, err := tensor.NewFixedShapeTensorType(f32, tc.shape, tc.dimNames, tc.permutation)
		if err != nil || !arrow.TypeEqual(made, typ) || made.Fingerprint() != typ.Fingerprint() {
			t.Errorf("%s: NewFixedShapeTensorType gives %v (%v), not equal to the parsed type", tc.in, made, err)
		}
	}
}

func TestFixedShapeTensorDeserializeErrors(t *testing.T) {
	f32 := arrow.PrimitiveTypes.Float32
	fsl6 := arrow.FixedSizeListOf(6, f32)
	for _, tc := range []struct {
		name, data string
		storage    arrow.DataType
		want       error
	}{
		{"bad JSON", `{"shape":[2,3]`, fsl6, tensor.ErrShape},
		{"trailing data", `{"shape":[2,3]} x`, fsl6, tensor.ErrShape},
		{"empty", ``, fsl6, tensor.ErrShape},
		{"not an object", `[2,3]`, fsl6, tensor.ErrShape},
		{"null", `null`, fsl6, tensor.ErrShape},
		{"no shape", `{"dim_names":["a","b"]}`, fsl6, tensor.ErrShape},
		{"shape key case", `{"Shape":[2,3]}`, fsl6, tensor.ErrShape},
		{"shape null", `{"shape":null}`, fsl6, tensor.ErrShape},
		{"shape not ints", `{"shape":[2,3.5]}`, fsl6, tensor.ErrShape},
		{"shape strings", `{"shape":["2","3"]}`, fsl6, tensor.ErrShape},
		{"negative dim", `{"shape":[-2,-3]}`, fsl6, tensor.ErrShape},
		{"overflowing dims", `{"shape":[4294967296,4294967296,4294967296]}`, fsl6, tensor.ErrShape},
		{"zero elements", `{"shape":[0,3]}`, fsl6, tensor.ErrShape},
		{"product is not the list size", `{"shape":[2,4]}`, fsl6, tensor.ErrShape},
		{"permutation repeats", `{"shape":[2,3],"permutation":[0,0]}`, fsl6, tensor.ErrShape},
		{"permutation out of range", `{"shape":[2,3],"permutation":[1,2]}`, fsl6, tensor.ErrShape},
		{"permutation negative", `{"shape":[2,3],"permutation":[-1,0]}`, fsl6, tensor.ErrShape},
		{"permutation too short", `{"shape":[2,3],"permutation":[0]}`, fsl6, tensor.ErrShape},
		{"permutation null", `{"shape":[2,3],"permutation":null}`, fsl6, tensor.ErrShape},
		{"dim_names too long", `{"shape":[2,3],"dim_names":["a","b","c"]}`, fsl6, tensor.ErrShape},
		{"dim_names not strings", `{"shape":[2,3],"dim_names":[1,2]}`, fsl6, tensor.ErrShape},
		{"storage not a FixedSizeList", `{"shape":[2,3]}`, arrow.ListOf(f32), tensor.ErrDType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, err := (&tensor.FixedShapeTensorType{}).Deserialize(tc.storage, tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", typ, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		shape []int
		names []string
		perm  []int
	}{
		{"negative", []int{2, -3}, nil, nil},
		{"zero", []int{2, 0}, nil, nil},
		{"more than int32", []int{1 << 16, 1 << 16}, nil, nil},
		{"names", []int{2, 3}, []string{"a"}, nil},
		{"perm", []int{2, 3}, nil, []int{1, 1}},
	} {
		if _, err := tensor.NewFixedShapeTensorType(f32, tc.shape, tc.names, tc.perm); !errors.Is(err, tensor.ErrShape) {
			t.Errorf("NewFixedShapeTensorType %s: %v", tc.name, err)
		}
	}
}

func TestFixedShapeTensorTypeEquality(t *testing.T) {
	f32 := arrow.PrimitiveTypes.Float32
	mk := func(shape []int, names []string, perm []int) *tensor.FixedShapeTensorType {
		typ, err := tensor.NewFixedShapeTensorType(f32, shape, names, perm)
		if err != nil {
			t.Fatal(err)
		}
		return typ
	}
	base := mk([]int{2, 3}, nil, nil)
	if !arrow.TypeEqual(base, mk([]int{2, 3}, nil, []int{0, 1})) {
		t.Error("an identity permutation differs from none")
	}
	for _, other := range []arrow.DataType{
		mk([]int{3, 2}, nil, nil),
		mk([]int{2, 3}, []string{"a", "b"}, nil),
		mk([]int{2, 3}, nil, []int{1, 0}),
		mk([]int{6}, nil, nil),
		tensor.NewBFloat16Type(),
	} {
		if arrow.TypeEqual(base, other) {
			t.Errorf("%v equals %v", base, other)
		}
		if base.Fingerprint() == other.Fingerprint() {
			t.Errorf("%v and %v share a fingerprint", base, other)
		}
	}
	i32, _ := tensor.NewFixedShapeTensorType(arrow.PrimitiveTypes.Int32, []int{2, 3}, nil, nil)
	if arrow.TypeEqual(base, i32) {
		t.Error("float32 and int32 tensor types are equal")
	}
	if got := mk([]int{2, 3}, []string{"H", "W"}, []int{1, 0}).String(); got != "extension<arrow.fixed_shape_tensor[value_type=float32, shape=[2,3], permutation=[1,0], dim_names=[H,W]]>" {
		t.Errorf("String() = %s", got)
	}
}

func TestFixedShapeTensorArrayZeroCopy(t *testing.T) {
	for _, dt := range allDTypes {
		t.Run(dt.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			x := filled(t, mem, dt, 4, 2, 3)
			defer x.Release()
			arr, err := tensor.NewFixedShapeTensorArray(x)
			if err != nil {
				t.Fatal(err)
			}
			defer arr.Release()
			typ := arr.TensorType()
			if arr.Len() != 4 || !slices.Equal(typ.Shape(), []int{2, 3}) || typ.Permutation() != nil {
				t.Fatalf("%v: %d rows", typ, arr.Len())
			}
			if arr.Storage().(*array.FixedSizeList).ListValues().Data().Buffers()[1] != x.Buffer() {
				t.Fatal("a contiguous batch was copied")
			}
			for i := 0; i < 4; i++ {
				row, err := arr.Tensor(i)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := x.Index(0, i)
				sameTensor(t, row, want)
				if row.Buffer() != x.Buffer() {
					t.Fatal("row is not a view")
				}
				row.Release()
				want.Release()
			}
			all, err := arr.ToTensor()
			if err != nil {
				t.Fatal(err)
			}
			sameTensor(t, all, x)
			all.Release()

			// A slice of the column (an offset) gives the right rows.
			sl := array.NewSlice(arr, 1, 3).(*tensor.FixedShapeTensorArray)
			defer sl.Release()
			r0, err := sl.Tensor(0)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := x.Index(0, 1)
			sameTensor(t, r0, want)
			r0.Release()
			want.Release()
			two, err := sl.ToTensor()
			if err != nil {
				t.Fatal(err)
			}
			want, _ = x.Slice(0, 1, 3)
			sameTensor(t, two, want)
			two.Release()
			want.Release()
			if _, err := sl.Tensor(2); !errors.Is(err, tensor.ErrShape) {
				t.Fatalf("row 2 of 2: %v", err)
			}
		})
	}
}

func TestFixedShapeTensorArrayPermutation(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	// Physical rows [2,3,4]; the logical view takes dimension perm[i] of the
	// physical tensor as its dimension i, as the spec defines permutation.
	phys := filled(t, mem, tensor.Int32, 5, 2, 3, 4)
	defer phys.Release()
	for _, perm := range [][]int{{2, 0, 1}, {1, 2, 0}, {0, 2, 1}, {2, 1, 0}} {
		logical, err := phys.Permute(0, perm[0]+1, perm[1]+1, perm[2]+1)
		if err != nil {
			t.Fatal(err)
		}
		arr, err := tensor.NewFixedShapeTensorArray(logical)
		if err != nil {
			t.Fatal(err)
		}
		typ := arr.TensorType()
		if !slices.Equal(typ.Shape(), []int{2, 3, 4}) || !slices.Equal(typ.Permutation(), perm) ||
			!slices.Equal(typ.LogicalShape(), logical.Shape()[1:]) {
			t.Fatalf("perm %v: type %v, logical %v", perm, typ, typ.LogicalShape())
		}
		if arr.Storage().(*array.FixedSizeList).ListValues().Data().Buffers()[1] != phys.Buffer() {
			t.Fatalf("perm %v: a permuted batch was copied", perm)
		}
		row, err := arr.Tensor(3)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := logical.Index(0, 3)
		sameTensor(t, row, want)
		all, err := arr.ToTensor()
		if err != nil {
			t.Fatal(err)
		}
		sameTensor(t, all, logical)
		for _, v := range []*tensor.Tensor{row, want, all, logical} {
			v.Release()
		}
		arr.Release()
	}
}

func TestFixedShapeTensorArrayCopies(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	x := filled(t, mem, tensor.Float16, 4, 3, 5)
	defer x.Release()
	// Rows with gaps between them, and a broadcast batch: copied.
	sl, _ := x.Slice(2, 1, 4)
	defer sl.Release()
	one, _ := x.Slice(0, 0, 1)
	defer one.Release()
	ex, _ := one.Expand(3, 3, 5)
	defer ex.Release()
	for _, v := range []*tensor.Tensor{sl, ex} {
		arr, err := tensor.NewFixedShapeTensorArray(v)
		if err != nil {
			t.Fatal(err)
		}
		if arr.Storage().(*array.FixedSizeList).ListValues().Data().Buffers()[1] == x.Buffer() {
			t.Fatalf("%v: strided rows were not copied", v)
		}
		all, err := arr.ToTensor()
		if err != nil {
			t.Fatal(err)
		}
		sameTensor(t, all, v)
		all.Release()
		arr.Release()
	}
	// One row per tensor, from tensors with their own storage.
	a, _ := x.Index(0, 1)
	defer a.Release()
	b := filled(t, mem, tensor.Float16, 3, 5)
	defer b.Release()
	tr, _ := x.Index(0, 3)
	defer tr.Release()
	arr, err := tensor.FixedShapeTensorArrayOf(mem, a, b, tr)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Release()
	for i, want := range []*tensor.Tensor{a, b, tr} {
		row, err := arr.Tensor(i)
		if err != nil {
			t.Fatal(err)
		}
		sameTensor(t, row, want)
		row.Release()
	}
	if _, err := tensor.FixedShapeTensorArrayOf(mem, a, x); !errors.Is(err, tensor.ErrShape) {
		t.Fatalf("mixed shapes: %v", err)
	}
	if _, err := tensor.FixedShapeTensorArrayOf(mem); !errors.Is(err, tensor.ErrShape) {
		t.Fatalf("no tensors: %v", err)
	}
	s := filled(t, mem, tensor.Float32)
	defer s.Release()
	if _, err := tensor.NewFixedShapeTensorArray(s); !errors.Is(err, tensor.ErrShape) {
		t.Fatalf("scalar batch: %v", err)
	}
	e := filled(t, mem, tensor.Float32, 3, 0)
	defer e.Release()
	if _, err := tensor.NewFixedShapeTensorArray(e); !errors.Is(err, tensor.ErrShape) {
		t.Fatalf("rows without elements: %v", err)
	}
	// No rows is fine.
	z := filled(t, mem, tensor.Float32, 0, 2)
	defer z.Release()
	za, err := tensor.NewFixedShapeTensorArray(z)
	if err != nil {
		t.Fatal(err)
	}
	zt, err := za.ToTensor()
	if err != nil || !slices.Equal(zt.Shape(), []int{0, 2}) {
		t.Fatalf("no rows: %v %v", zt, err)
	}
	zt.Release()
	za.Release()
}

func TestFixedShapeTensorArrayNulls(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	typ, err := tensor.NewFixedShapeTensorType(arrow.PrimitiveTypes.Int64, []int{2}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewFixedSizeListBuilder(mem, 2, arrow.PrimitiveTypes.Int64)
	defer b.Release()
	vb := b.ValueBuilder().(*array.Int64Builder)
	b.Append(true) // row 0: [1, 2]
	vb.AppendValues([]int64{1, 2}, nil)
	b.AppendNull() // row 1: null (the builder adds its two values)
	b.Append(true) // row 2: [3, null]
	vb.Append(3)
	vb.AppendNull()
	storage := b.NewArray()
	defer storage.Release()
	arr := array.NewExtensionArrayWithStorage(typ, storage).(*tensor.FixedShapeTensorArray)
	defer arr.Release()
	r0, err := arr.Tensor(0)
	if err != nil || r0.At(1) != 2 {
		t.Fatalf("row 0: %v %v", r0, err)
	}
	r0.Release()
	for _, f := range []func() (*tensor.Tensor, error){
		func() (*tensor.Tensor, error) { return arr.Tensor(1) },
		func() (*tensor.Tensor, error) { return arr.Tensor(2) },
		arr.ToTensor,
	} {
		if v, err := f(); !errors.Is(err, tensor.ErrNull) {
			t.Fatalf("want ErrNull, got %v %v", v, err)
		}
	}
}

// TestFixedShapeTensorColumnIPC sends a many-row column with a permutation
// and dim names through arrow's own IPC writer and reader: the type comes
// back equal (RegisterFixedShapeTensor) and so do the rows.
func TestFixedShapeTensorColumnIPC(t *testing.T) {
	if err := tensor.RegisterFixedShapeTensor(); err != nil {
		t.Fatal(err)
	}
	if err := tensor.RegisterFixedShapeTensor(); err != nil {
		t.Fatal("second call:", err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, dt := range allDTypes {
		phys := filled(t, mem, dt, 3, 2, 4)
		logical, _ := phys.Permute(0, 2, 1)
		arr, err := tensor.NewFixedShapeTensorArray(logical)
		if err != nil {
			t.Fatal(err)
		}
		typ, err := tensor.NewFixedShapeTensorType(arr.TensorType().ValueType(), []int{2, 4}, []string{"H", "W"}, []int{1, 0})
		if err != nil {
			t.Fatal(err)
		}
		named := array.NewExtensionArrayWithStorage(typ, arr.Storage())
		arr.Release()
		schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: typ}}, nil)
		rec := array.NewRecordBatch(schema, []arrow.Array{named}, 3)
		named.Release()
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rec.Release()

		r, err := ipc.NewReader(&buf, ipc.WithAllocator(mem))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Next() {
			t.Fatal(r.Err())
		}
		got := r.RecordBatch().Column(0)
		if !arrow.TypeEqual(got.DataType(), typ) {
			t.Fatalf("%v: read back %v, want %v", dt, got.DataType(), typ)
		}
		all, err := got.(*tensor.FixedShapeTensorArray).ToTensor()
		if err != nil {
			t.Fatal(err)
		}
		sameTensor(t, all, logical)
		r.Release()
		all.Release()
		logical.Release()
		phys.Release()
	}
}

func TestFixedShapeTensorPrototype(t *testing.T) {
	// The registered prototype is a zero value; printing it must not panic.
	var p tensor.FixedShapeTensorType
	if p.ExtensionName() != tensor.FixedShapeTensorExtensionName || p.ValueType() != nil || p.String() == "" || p.Fingerprint() == "" {
		t.Fatalf("zero value: %q %v", p.ExtensionName(), p.ValueType())
	}
}
