package cpu

import "testing"

// TestExpAffineGo runs the expAffine checks on the portable path too.
func TestExpAffineGo(t *testing.T) {
	defer func(v bool) { expUseAVX512 = v }(expUseAVX512)
	expUseAVX512 = false
	testExpAffine(t)
}

func TestMaxF32Go(t *testing.T) {
	defer func(v bool) { expUseAVX512 = v }(expUseAVX512)
	expUseAVX512 = false
	TestMaxF32(t)
}
