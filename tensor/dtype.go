package tensor

import "fmt"

// DType is the element type of a tensor.
type DType uint8

const (
	// Invalid is the zero DType; in a port type it means "any dtype".
	Invalid DType = iota
	Float32
	Float16
	BFloat16
	Int32
	Int64
	Uint8
)

var dtypeInfo = [...]struct {
	name string
	size int
}{
	Invalid:  {"invalid", 0},
	Float32:  {"float32", 4},
	Float16:  {"float16", 2},
	BFloat16: {"bfloat16", 2},
	Int32:    {"int32", 4},
	Int64:    {"int64", 8},
	Uint8:    {"uint8", 1},
}

// String returns the dtype's name (float32, bfloat16, ...).
func (d DType) String() string {
	if int(d) < len(dtypeInfo) {
		return dtypeInfo[d].name
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Size returns the size of one element in bytes (0 for Invalid).
func (d DType) Size() int {
	if int(d) < len(dtypeInfo) {
		return dtypeInfo[d].size
	}
	return 0
}

// Valid reports whether d is one of the defined dtypes other than Invalid.
func (d DType) Valid() bool { return d > Invalid && int(d) < len(dtypeInfo) }

// IsFloat reports whether d is a floating-point dtype.
func (d DType) IsFloat() bool { return d == Float32 || d == Float16 || d == BFloat16 }

// ParseDType returns the dtype with the given name; it accepts the short
// names f32, f16, bf16, i32, i64, u8 as well.
func ParseDType(s string) (DType, error) {
	switch s {
	case "float32", "f32", "F32":
		return Float32, nil
	case "float16", "f16", "F16", "half":
		return Float16, nil
	case "bfloat16", "bf16", "BF16":
		return BFloat16, nil
	case "int32", "i32", "I32":
		return Int32, nil
	case "int64", "i64", "I64":
		return Int64, nil
	case "uint8", "u8", "U8":
		return Uint8, nil
	}
	return Invalid, fmt.Errorf("tensor: unknown dtype %q", s)
}
