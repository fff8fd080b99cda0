package safetensors

import "github.com/omniflow-go/omniflow/tensor"

// dtypeSpec is one safetensors dtype. The table is in the reference
// implementation's declaration order, which is increasing alignment: the
// writer lays tensors out in decreasing rank so that every tensor starts at
// a multiple of its element size (and its output matches the reference
// writer's byte for byte).
type dtypeSpec struct {
	name string
	bits int          // bits per element (sub-byte floats pack several per byte)
	dt   tensor.DType // tensor.Invalid where package tensor has no such dtype
	rank int
}

var dtypeSpecs = func() []*dtypeSpec {
	specs := []*dtypeSpec{
		{name: "BOOL", bits: 8},
		{name: "F4", bits: 4},
		{name: "F6_E2M3", bits: 6},
		{name: "F6_E3M2", bits: 6},
		{name: "U8", bits: 8, dt: tensor.Uint8},
		{name: "I8", bits: 8},
		{name: "F8_E5M2", bits: 8},
		{name: "F8_E4M3", bits: 8},
		{name: "F8_E8M0", bits: 8},
		{name: "I16", bits: 16},
		{name: "U16", bits: 16},
		{name: "F16", bits: 16, dt: tensor.Float16},
		{name: "BF16", bits: 16, dt: tensor.BFloat16},
		{name: "I32", bits: 32, dt: tensor.Int32},
		{name: "U32", bits: 32},
		{name: "F32", bits: 32, dt: tensor.Float32},
		{name: "C64", bits: 64},
		{name: "F64", bits: 64},
		{name: "I64", bits: 64, dt: tensor.Int64},
		{name: "U64", bits: 64},
	}
	for i, s := range specs {
		s.rank = i
	}
	return specs
}()

// lookupDType returns the spec for a safetensors dtype name, or nil.
func lookupDType(name string) *dtypeSpec {
	for _, s := range dtypeSpecs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// specOf returns the spec for a tensor dtype, or nil.
func specOf(dt tensor.DType) *dtypeSpec {
	if dt == tensor.Invalid {
		return nil
	}
	for _, s := range dtypeSpecs {
		if s.dt == dt {
			return s
		}
	}
	return nil
}
