package profiler

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unsafe"
)

// AttrType says which value an Attr holds.
type AttrType uint8

const (
	AttrInvalid AttrType = iota
	AttrInt
	AttrFloat
	AttrString
	AttrBool
	AttrInts
)

// Attr is a key and a typed value attached to a span or event. It is a plain
// 32-byte value of three words: small enough that the compiler builds it in
// registers, so passing attributes to a span site that records nothing costs
// almost nothing, and records hold attrs inline. Strings and integer lists
// are referenced through ptr (the low 56 bits of num are their length, the
// top byte their type), which keeps what they point to alive; integers,
// floats and booleans use all of num, and ptr points at their type's tag.
type Attr struct {
	Key string
	ptr unsafe.Pointer
	num uint64
}

// attrTags gives the scalar types an address each: an Attr whose ptr points
// at attrTags[t] holds a scalar of type t.
var attrTags [AttrInts + 1]byte

const (
	lenBits = 56
	lenMask = 1<<lenBits - 1
)

// Type returns the type of the attribute's value.
func (a Attr) Type() AttrType {
	if d := uintptr(a.ptr) - uintptr(unsafe.Pointer(&attrTags[0])); d < uintptr(len(attrTags)) {
		return AttrType(d)
	}
	return AttrType(a.num >> lenBits)
}

func scalar(key string, t AttrType, v uint64) Attr {
	return Attr{Key: key, ptr: unsafe.Pointer(&attrTags[t]), num: v}
}

// Int returns an integer attribute.
func Int(key string, v int) Attr { return scalar(key, AttrInt, uint64(int64(v))) }

// Int64 returns an integer attribute.
func Int64(key string, v int64) Attr { return scalar(key, AttrInt, uint64(v)) }

// Float64 returns a floating-point attribute.
func Float64(key string, v float64) Attr { return scalar(key, AttrFloat, math.Float64bits(v)) }

// String returns a string attribute.
func String(key, v string) Attr {
	return Attr{Key: key, ptr: unsafe.Pointer(unsafe.StringData(v)), num: uint64(len(v))&lenMask | uint64(AttrString)<<lenBits}
}

// Bool returns a boolean attribute.
func Bool(key string, v bool) Attr {
	var n uint64
	if v {
		n = 1
	}
	return scalar(key, AttrBool, n)
}

// Ints returns an integer-list attribute, typically a shape. The slice is
// referenced, not copied: the caller must not modify it afterwards (tensor
// shapes are immutable, which is what this is for).
func Ints(key string, v []int) Attr {
	return Attr{Key: key, ptr: unsafe.Pointer(unsafe.SliceData(v)), num: uint64(len(v))&lenMask | uint64(AttrInts)<<lenBits}
}

// AsInt returns the integer value (0 for other types).
func (a Attr) AsInt() int64 {
	if t := a.Type(); t == AttrInt || t == AttrBool {
		return int64(a.num)
	}
	return 0
}

// AsFloat returns the value as a float64 for numeric attributes.
func (a Attr) AsFloat() float64 {
	switch a.Type() {
	case AttrFloat:
		return math.Float64frombits(a.num)
	case AttrInt, AttrBool:
		return float64(int64(a.num))
	}
	return 0
}

// AsString returns the string value ("" for other types).
func (a Attr) AsString() string {
	if a.Type() != AttrString || a.ptr == nil {
		return ""
	}
	return unsafe.String((*byte)(a.ptr), int(a.num&lenMask))
}

// AsBool returns the boolean value.
func (a Attr) AsBool() bool { return a.Type() == AttrBool && a.num != 0 }

// AsInts returns the integer-list value.
func (a Attr) AsInts() []int {
	if a.Type() != AttrInts || a.ptr == nil {
		return nil
	}
	return unsafe.Slice((*int)(a.ptr), int(a.num&lenMask))
}

// Value returns the value as a Go value (allocates; for sinks, off the hot path).
func (a Attr) Value() any {
	switch a.Type() {
	case AttrInt:
		return int64(a.num)
	case AttrFloat:
		return math.Float64frombits(a.num)
	case AttrString:
		return a.AsString()
	case AttrBool:
		return a.num != 0
	case AttrInts:
		return a.AsInts()
	}
	return nil
}

// AppendJSON appends the value as JSON.
func (a Attr) AppendJSON(b []byte) []byte {
	switch a.Type() {
	case AttrInt:
		return strconv.AppendInt(b, int64(a.num), 10)
	case AttrFloat:
		f := math.Float64frombits(a.num)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.AppendQuote(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case AttrString:
		return appendJSONString(b, a.AsString())
	case AttrBool:
		return strconv.AppendBool(b, a.num != 0)
	case AttrInts:
		b = append(b, '[')
		for i, v := range a.AsInts() {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(v), 10)
		}
		return append(b, ']')
	}
	return append(b, "null"...)
}

// String formats the value for humans.
func (a Attr) String() string {
	if a.Type() == AttrString {
		return a.Key + "=" + a.AsString()
	}
	return a.Key + "=" + string(a.AppendJSON(nil))
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	enc, err := json.Marshal(strings.ToValidUTF8(s, "\uFFFD"))
	if err != nil { // cannot happen for a valid UTF-8 string
		return append(b, `""`...)
	}
	return append(b, enc...)
}

// AppendJSONString appends s as a JSON string literal; sinks use it to write
// names without going through encoding/json for the common case.
func AppendJSONString(b []byte, s string) []byte { return appendJSONString(b, s) }
