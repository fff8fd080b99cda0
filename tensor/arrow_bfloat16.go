package tensor

import (
	"fmt"
	"reflect"
	"strconv"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// BFloat16ExtensionName is the Arrow extension name of BFloat16Type.
const BFloat16ExtensionName = "omniflow.bfloat16"

// BFloat16Type is the Arrow extension type of bfloat16 elements. Arrow has
// no bfloat16 type, so the values are stored as their uint16 bit patterns
// (the top half of a float32) under the extension name "omniflow.bfloat16"
// with empty metadata. An extension type rather than a bare uint16 with
// field metadata, because the type travels with the array (and inside a
// FixedSizeList, where there is no field of our own): a reader that does
// not know the extension still sees the uint16 storage and, in an IPC
// stream, the ARROW:extension:name field metadata.
type BFloat16Type struct {
	arrow.ExtensionBase
}

var bfloat16Type = NewBFloat16Type()

// NewBFloat16Type returns the bfloat16 extension type.
func NewBFloat16Type() *BFloat16Type {
	return &BFloat16Type{ExtensionBase: arrow.ExtensionBase{Storage: arrow.PrimitiveTypes.Uint16}}
}

// ExtensionName returns "omniflow.bfloat16".
func (*BFloat16Type) ExtensionName() string { return BFloat16ExtensionName }

func (*BFloat16Type) String() string { return "extension<" + BFloat16ExtensionName + ">" }

// Fingerprint identifies the type (the embedded base's would not tell it
// from other extensions over uint16).
func (*BFloat16Type) Fingerprint() string {
	return BFloat16ExtensionName + "/" + arrow.PrimitiveTypes.Uint16.Fingerprint()
}

// Serialize returns the empty metadata.
func (*BFloat16Type) Serialize() string { return "" }

// Deserialize checks that the storage is uint16; the metadata is ignored.
func (*BFloat16Type) Deserialize(storage arrow.DataType, _ string) (arrow.ExtensionType, error) {
	if storage == nil || storage.ID() != arrow.UINT16 {
		return nil, fmt.Errorf("%w: %s storage must be uint16, got %v", ErrDType, BFloat16ExtensionName, storage)
	}
	return NewBFloat16Type(), nil
}

// ExtensionEquals reports whether other is the bfloat16 type too.
func (*BFloat16Type) ExtensionEquals(other arrow.ExtensionType) bool {
	_, ok := other.(*BFloat16Type)
	return ok
}

// ArrayType returns the type of BFloat16Array.
func (*BFloat16Type) ArrayType() reflect.Type { return reflect.TypeOf(BFloat16Array{}) }

// BFloat16Array is an Arrow array of bfloat16 values (see BFloat16Type).
type BFloat16Array struct {
	array.ExtensionArrayBase
}

// Value returns element i widened to float32.
func (a *BFloat16Array) Value(i int) float32 {
	return BF16ToF32(a.Storage().(*array.Uint16).Value(i))
}

// ValueStr returns element i as a decimal string, or the null marker.
func (a *BFloat16Array) ValueStr(i int) string {
	if a.IsNull(i) {
		return array.NullValueStr
	}
	return strconv.FormatFloat(float64(a.Value(i)), 'g', -1, 32)
}

var (
	bfloat16Once sync.Once
	bfloat16Err  error
)

// RegisterBFloat16 registers BFloat16Type in Arrow's process-wide extension
// registry, so that IPC readers give back bfloat16 arrays rather than their
// uint16 storage. It is idempotent and safe for concurrent use; ReadIPC
// calls it. It fails only if another implementation holds the name.
func RegisterBFloat16() error {
	bfloat16Once.Do(func() { bfloat16Err = registerExtension(NewBFloat16Type()) })
	return bfloat16Err
}

// registerExtension registers t unless a type of the same Go type is
// registered under its name already.
func registerExtension(t arrow.ExtensionType) error {
	err := arrow.RegisterExtensionType(t)
	if err == nil {
		return nil
	}
	if have := arrow.GetExtensionType(t.ExtensionName()); have != nil && reflect.TypeOf(have) == reflect.TypeOf(t) {
		return nil
	}
	return fmt.Errorf("tensor: Arrow extension %q is registered by another implementation: %w", t.ExtensionName(), err)
}
