package tensor

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// FixedShapeTensorExtensionName is the name of Arrow's canonical fixed-shape
// tensor extension type.
const FixedShapeTensorExtensionName = "arrow.fixed_shape_tensor"

// FixedShapeTensorType is Arrow's canonical extension type
// "arrow.fixed_shape_tensor"
// (https://arrow.apache.org/docs/format/CanonicalExtensions.html#fixed-shape-tensor):
// each row is one tensor of a fixed shape, stored row-major as a
// FixedSizeList<value_type>[product(shape)].
//
// Its parameters, serialized as JSON metadata
// {"shape":[...],"permutation":[...],"dim_names":[...]} (the last two
// optional; keys in the order Arrow C++ writes them), are:
//   - shape: the physical (row-major, storage) shape of each tensor;
//   - dim_names: a name for each physical dimension;
//   - permutation: dimension i of the logical tensor is dimension
//     permutation[i] of the physical one, so the logical shape is
//     shape[permutation[i]] (Permute(permutation...) of the physical tensor).
//
// arrow-go's FixedSizeList cannot have size 0, so neither can this type: a
// shape with a zero dimension is an ErrShape.
type FixedShapeTensorType struct {
	arrow.ExtensionBase
	shape       []int
	dimNames    []string
	permutation []int
}

// NewFixedShapeTensorType returns the fixed-shape tensor type of the given
// element type and physical shape; dimNames and permutation may be nil (an
// identity permutation is dropped: it means the same as none).
func NewFixedShapeTensorType(valueType arrow.DataType, shape []int, dimNames []string, permutation []int) (*FixedShapeTensorType, error) {
	if valueType == nil {
		return nil, fmt.Errorf("%w: %s with a nil value type", ErrDType, FixedShapeTensorExtensionName)
	}
	n, err := checkFixedShape(shape, dimNames, permutation)
	if err != nil {
		return nil, err
	}
	return newFixedShapeTensorType(arrow.FixedSizeListOf(int32(n), valueType), shape, dimNames, permutation), nil
}

func newFixedShapeTensorType(storage arrow.DataType, shape []int, dimNames []string, permutation []int) *FixedShapeTensorType {
	t := &FixedShapeTensorType{ExtensionBase: arrow.ExtensionBase{Storage: storage}, shape: slices.Clone(shape)}
	if t.shape == nil {
		t.shape = []int{}
	}
	if len(dimNames) != 0 {
		t.dimNames = slices.Clone(dimNames)
	}
	if len(permutation) != 0 && !isIdentity(permutation) {
		t.permutation = slices.Clone(permutation)
	}
	return t
}

// checkFixedShape validates the parameters and returns the number of
// elements per tensor.
func checkFixedShape(shape []int, dimNames []string, permutation []int) (int, error) {
	n, err := NumElements(shape)
	if err != nil {
		return 0, fmt.Errorf("%s shape: %w", FixedShapeTensorExtensionName, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: %s shape %v has no elements (arrow-go has no FixedSizeList of size 0)", ErrShape, FixedShapeTensorExtensionName, shape)
	}
	if n > math.MaxInt32 {
		return 0, fmt.Errorf("%w: %s shape %v has %d elements, more than a FixedSizeList holds", ErrShape, FixedShapeTensorExtensionName, shape, n)
	}
	if dimNames != nil && len(dimNames) != len(shape) {
		return 0, fmt.Errorf("%w: %s has %d dim_names for %d dimensions", ErrShape, FixedShapeTensorExtensionName, len(dimNames), len(shape))
	}
	if permutation != nil {
		if len(permutation) != len(shape) {
			return 0, fmt.Errorf("%w: %s permutation %v for %d dimensions", ErrShape, FixedShapeTensorExtensionName, permutation, len(shape))
		}
		seen := make([]bool, len(permutation))
		for _, p := range permutation {
			if p < 0 || p >= len(permutation) || seen[p] {
				return 0, fmt.Errorf("%w: %s permutation %v is not a permutation of [0, %d)", ErrShape, FixedShapeTensorExtensionName, permutation, len(permutation))
			}
			seen[p] = true
		}
	}
	return n, nil
}

func isIdentity(perm []int) bool {
	for i, p := range perm {
		if p != i {
			return false
		}
	}
	return true
}

// ExtensionName returns "arrow.fixed_shape_tensor".
func (*FixedShapeTensorType) ExtensionName() string { return FixedShapeTensorExtensionName }

// ValueType returns the element type (nil for the zero value, which
// RegisterFixedShapeTensor registers as the prototype).
func (t *FixedShapeTensorType) ValueType() arrow.DataType {
	if fsl, ok := t.Storage.(*arrow.FixedSizeListType); ok {
		return fsl.Elem()
	}
	return nil
}

// Shape returns the physical shape of each tensor (do not modify).
func (t *FixedShapeTensorType) Shape() []int { return t.shape }

// DimNames returns the names of the physical dimensions, or nil (do not
// modify).
func (t *FixedShapeTensorType) DimNames() []string { return t.dimNames }

// Permutation returns the permutation, or nil for the identity (do not
// modify).
func (t *FixedShapeTensorType) Permutation() []int { return t.permutation }

// LogicalShape returns the shape of each tensor as ReadIPC and
// (*FixedShapeTensorArray).Tensor give it: shape[permutation[i]].
func (t *FixedShapeTensorType) LogicalShape() []int {
	if t.permutation == nil {
		return slices.Clone(t.shape)
	}
	s := make([]int, len(t.shape))
	for i, p := range t.permutation {
		s[i] = t.shape[p]
	}
	return s
}

func (t *FixedShapeTensorType) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "extension<%s[value_type=%v, shape=%s", FixedShapeTensorExtensionName, t.ValueType(), joinInts(t.shape))
	if t.permutation != nil {
		fmt.Fprintf(&b, ", permutation=%s", joinInts(t.permutation))
	}
	if t.dimNames != nil {
		fmt.Fprintf(&b, ", dim_names=[%s]", strings.Join(t.dimNames, ","))
	}
	b.WriteString("]>")
	return b.String()
}

func joinInts(s []int) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Fingerprint identifies the type, parameters included (the embedded
// base's covers only the storage).
func (t *FixedShapeTensorType) Fingerprint() string {
	if t.Storage == nil {
		return FixedShapeTensorExtensionName
	}
	return FixedShapeTensorExtensionName + t.Serialize() + "/" + t.Storage.Fingerprint()
}

// fixedShapeMeta is the serialized metadata; the field order is the key
// order Arrow C++ writes.
type fixedShapeMeta struct {
	Shape       []int    `json:"shape"`
	Permutation []int    `json:"permutation,omitempty"`
	DimNames    []string `json:"dim_names,omitempty"`
}

// Serialize returns the JSON metadata, e.g. {"shape":[2,3]}.
func (t *FixedShapeTensorType) Serialize() string {
	b, err := json.Marshal(fixedShapeMeta{Shape: t.shape, Permutation: t.permutation, DimNames: t.dimNames})
	if err != nil {
		panic(err) // ints and strings always marshal
	}
	return string(b)
}

// Deserialize parses the JSON metadata against the storage type: it must be
// a FixedSizeList whose size is the product of the shape; dimensions must be
// non-negative, dim_names and permutation (if present) one per dimension,
// and permutation a permutation. Unknown keys are ignored, as Arrow C++
// does.
func (*FixedShapeTensorType) Deserialize(storage arrow.DataType, data string) (arrow.ExtensionType, error) {
	fsl, ok := storage.(*arrow.FixedSizeListType)
	if !ok {
		return nil, fmt.Errorf("%w: %s storage must be a FixedSizeList, got %v", ErrDType, FixedShapeTensorExtensionName, storage)
	}
	meta, err := parseFixedShapeMeta(data)
	if err != nil {
		return nil, fmt.Errorf("%s metadata %s: %w", FixedShapeTensorExtensionName, quoteShort(data), err)
	}
	n, err := checkFixedShape(meta.Shape, meta.DimNames, meta.Permutation)
	if err != nil {
		return nil, err
	}
	if int(fsl.Len()) != n {
		return nil, fmt.Errorf("%w: %s shape %v has %d elements but the storage list size is %d",
			ErrShape, FixedShapeTensorExtensionName, meta.Shape, n, fsl.Len())
	}
	return newFixedShapeTensorType(storage, meta.Shape, meta.DimNames, meta.Permutation), nil
}

// parseFixedShapeMeta decodes the metadata with exact key names (Go's
// json package would match keys case-insensitively).
func parseFixedShapeMeta(data string) (fixedShapeMeta, error) {
	var m fixedShapeMeta
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &raw); err != nil {
		return m, fmt.Errorf("%w: %v", ErrShape, err)
	}
	s, ok := raw["shape"]
	if !ok {
		return m, fmt.Errorf("%w: no \"shape\"", ErrShape)
	}
	if err := json.Unmarshal(s, &m.Shape); err != nil || m.Shape == nil {
		return m, fmt.Errorf("%w: \"shape\" is not an array of integers", ErrShape)
	}
	if p, ok := raw["permutation"]; ok {
		if err := json.Unmarshal(p, &m.Permutation); err != nil || m.Permutation == nil {
			return m, fmt.Errorf("%w: \"permutation\" is not an array of integers", ErrShape)
		}
	}
	if d, ok := raw["dim_names"]; ok {
		if err := json.Unmarshal(d, &m.DimNames); err != nil || m.DimNames == nil {
			return m, fmt.Errorf("%w: \"dim_names\" is not an array of strings", ErrShape)
		}
	}
	return m, nil
}

func quoteShort(s string) string {
	const limit = 120
	if len(s) > limit {
		return fmt.Sprintf("%q...", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}

// ExtensionEquals reports whether other is a fixed-shape tensor type with
// the same storage, shape, dim_names and permutation (an absent permutation
// equals the identity).
func (t *FixedShapeTensorType) ExtensionEquals(other arrow.ExtensionType) bool {
	o, ok := other.(*FixedShapeTensorType)
	if !ok {
		return false
	}
	return arrow.TypeEqual(t.Storage, o.Storage) && slices.Equal(t.shape, o.shape) &&
		slices.Equal(t.dimNames, o.dimNames) && slices.Equal(t.permutation, o.permutation)
}

// ArrayType returns the type of FixedShapeTensorArray.
func (*FixedShapeTensorType) ArrayType() reflect.Type {
	return reflect.TypeOf(FixedShapeTensorArray{})
}

var (
	fixedShapeOnce sync.Once
	fixedShapeErr  error
)

// RegisterFixedShapeTensor registers FixedShapeTensorType (and
// BFloat16Type, which its values may have) in Arrow's process-wide
// extension registry, so that IPC readers give back FixedShapeTensorArray
// columns. It is idempotent and safe for concurrent use, and there is no
// package init doing it behind your back; ReadIPC calls it. It fails only
// if another implementation holds the name.
func RegisterFixedShapeTensor() error {
	fixedShapeOnce.Do(func() {
		if err := RegisterBFloat16(); err != nil {
			fixedShapeErr = err
			return
		}
		fixedShapeErr = registerExtension(&FixedShapeTensorType{})
	})
	return fixedShapeErr
}

// FixedShapeTensorArray is an Arrow array of FixedShapeTensorType: one
// tensor per row.
type FixedShapeTensorArray struct {
	array.ExtensionArrayBase
}

// TensorType returns the array's extension type.
func (a *FixedShapeTensorArray) TensorType() *FixedShapeTensorType {
	return a.DataType().(*FixedShapeTensorType)
}

// ValueStr returns row i as its storage list prints it.
func (a *FixedShapeTensorArray) ValueStr(i int) string { return a.Storage().ValueStr(i) }

// Tensor returns row i as a view sharing the array's buffer (retained;
// release it when done), in the logical layout: a permuted view when the
// type has a permutation. A null row, or nulls among its values, is an
// ErrNull.
func (a *FixedShapeTensorArray) Tensor(i int) (*Tensor, error) { return a.rows(i, 1, false) }

// ToTensor returns the whole column as one [N, logical shape...] view
// sharing the array's buffer (retained; release it when done). Nulls are an
// ErrNull.
func (a *FixedShapeTensorArray) ToTensor() (*Tensor, error) { return a.rows(0, a.Len(), true) }

// rows returns rows [i, i+n) as a view: [n, shape...] when batch is true,
// else the single row's shape. The storage is checked before it is
// addressed, since IPC input is untrusted.
func (a *FixedShapeTensorArray) rows(i, n int, batch bool) (*Tensor, error) {
	typ, ok := a.DataType().(*FixedShapeTensorType)
	if !ok {
		return nil, fmt.Errorf("%w: array type %s", ErrDType, a.DataType())
	}
	fsl, ok := a.Storage().(*array.FixedSizeList)
	if !ok {
		return nil, fmt.Errorf("%w: %s storage is %s", ErrDType, FixedShapeTensorExtensionName, a.Storage().DataType())
	}
	if i < 0 || n < 0 || i > a.Len()-n {
		return nil, fmt.Errorf("%w: rows [%d, %d) of %d", ErrShape, i, i+n, a.Len())
	}
	if nulls, err := countNulls(a.Data(), i, i+n); err != nil {
		return nil, err
	} else if nulls > 0 {
		return nil, fmt.Errorf("%w: %d null rows", ErrNull, nulls)
	}
	child := fsl.ListValues()
	dt, err := DTypeFromArrow(child.DataType())
	if err != nil {
		return nil, err
	}
	size := int(fsl.DataType().(*arrow.FixedSizeListType).Len())
	if size <= 0 || a.Offset() < 0 || a.Offset() > (math.MaxInt-size)/size-a.Len() {
		return nil, fmt.Errorf("%w: %d rows at offset %d of %d elements", ErrShape, a.Len(), a.Offset(), size)
	}
	start := (a.Offset() + i) * size
	end := start + n*size
	if end > child.Len() {
		return nil, fmt.Errorf("%w: %s storage has %d values, rows need %d", ErrShape, FixedShapeTensorExtensionName, child.Len(), end)
	}
	if nulls, err := countNulls(child.Data(), start, end); err != nil {
		return nil, err
	} else if nulls > 0 {
		return nil, fmt.Errorf("%w: %d null values", ErrNull, nulls)
	}
	buf, err := valuesBuffer(child.Data())
	if err != nil {
		return nil, err
	}
	off := child.Data().Offset() + start
	if end == start {
		off = 0
	}
	shape, perm := typ.shape, typ.permutation
	if batch {
		shape = append([]int{n}, shape...)
		if perm != nil {
			p := make([]int, 0, len(perm)+1)
			p = append(p, 0)
			for _, q := range perm {
				p = append(p, q+1)
			}
			perm = p
		}
	}
	v, err := FromBuffer(dt, shape, nil, off, buf)
	if err != nil || perm == nil {
		return v, err
	}
	defer v.Release()
	return v.Permute(perm...)
}

// NewFixedShapeTensorArray returns a fixed-shape tensor column with one row
// per index of batch's first dimension: a [N, d1, ..., dk] tensor becomes N
// rows of shape [d1, ..., dk]. It shares batch's buffer (retained; release
// both when done) when the rows lie in memory one after another, each
// row-major or a permutation of row-major (a transposed view, say: the type
// then carries the permutation); other views are copied first, from
// batch's allocator. Rows without elements are an ErrShape (see
// FixedShapeTensorType).
func NewFixedShapeTensorArray(batch *Tensor) (*FixedShapeTensorArray, error) {
	if !batch.OnHost() {
		return nil, fmt.Errorf("%w: %v to an Arrow array", ErrDevice, batch)
	}
	if batch.Rank() == 0 {
		return nil, fmt.Errorf("%w: a fixed-shape tensor column needs a batch dimension; %v has none", ErrShape, batch)
	}
	vt, err := ArrowDataType(batch.dtype)
	if err != nil {
		return nil, err
	}
	rowShape := batch.shape[1:]
	if _, err := checkFixedShape(rowShape, nil, nil); err != nil {
		return nil, err
	}
	src := batch
	phys, perm, ok := rowLayout(batch)
	if !ok {
		c, err := batch.Contiguous()
		if err != nil {
			return nil, err
		}
		defer c.Release()
		src, phys, perm = c, rowShape, nil
	}
	typ, err := NewFixedShapeTensorType(vt, phys, nil, perm)
	if err != nil {
		return nil, err
	}
	total, off := src.NumElements(), src.offset
	if total == 0 {
		off = 0
	}
	child := array.NewData(vt, total, []*memory.Buffer{nil, src.st.buf}, nil, 0, off)
	defer child.Release()
	data := array.NewData(typ, batch.shape[0], []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0)
	defer data.Release()
	return array.NewExtensionData(data).(*FixedShapeTensorArray), nil
}

// rowLayout reports whether batch's rows are laid out one after another,
// each a permutation of a row-major block, and returns the physical row
// shape and the permutation (nil for row-major).
func rowLayout(batch *Tensor) (phys, perm []int, ok bool) {
	shape, strides := batch.shape[1:], batch.strides[1:]
	size := 1
	for _, d := range shape {
		size *= d
	}
	if batch.shape[0] == 0 {
		return shape, nil, true
	}
	if batch.shape[0] > 1 && batch.strides[0] != size {
		return nil, nil, false
	}
	// The dimensions of size > 1 by decreasing stride must be row-major;
	// size-1 dimensions can go anywhere.
	var order []int
	for i, d := range shape {
		if d != 1 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(x, y int) bool { return strides[order[x]] > strides[order[y]] })
	want := 1
	for k := len(order) - 1; k >= 0; k-- {
		if strides[order[k]] != want {
			return nil, nil, false
		}
		want *= shape[order[k]]
	}
	if slices.IsSorted(order) {
		return shape, nil, true // row-major already (size-1 dimensions in place)
	}
	for i, d := range shape {
		if d == 1 {
			order = append(order, i)
		}
	}
	phys = make([]int, len(shape))
	perm = make([]int, len(shape))
	for j, i := range order {
		phys[j] = shape[i]
		perm[i] = j
	}
	return phys, perm, true
}

// FixedShapeTensorArrayOf copies tensors (at least one, all of the same
// dtype and shape) into a new fixed-shape tensor column, one row each,
// allocated from mem (nil: DefaultAllocator).
func FixedShapeTensorArrayOf(mem memory.Allocator, tensors ...*Tensor) (*FixedShapeTensorArray, error) {
	if len(tensors) == 0 {
		return nil, fmt.Errorf("%w: no tensors to make a column of", ErrShape)
	}
	first := tensors[0]
	for i, t := range tensors {
		if t.dtype != first.dtype || !SameShape(t.shape, first.shape) {
			return nil, fmt.Errorf("%w: tensor %d is %v, tensor 0 is %v", ErrShape, i, t, first)
		}
	}
	if mem == nil {
		mem = DefaultAllocator
	}
	b, err := New(first.dtype, append([]int{len(tensors)}, first.shape...), WithAllocator(mem))
	if err != nil {
		return nil, err
	}
	defer b.Release()
	for i, t := range tensors {
		row, err := b.Index(0, i)
		if err != nil {
			return nil, err
		}
		err = row.CopyFrom(t)
		row.Release()
		if err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
	}
	return NewFixedShapeTensorArray(b)
}
