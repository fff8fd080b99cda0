package cpu

import "testing"

// withVectors runs f with the given vector kernels enabled (each only if
// the CPU has it), then restores the defaults.
func withVectors(t *testing.T, avx512, avx2 bool, f func(*testing.T)) {
	defer func(a, b bool) { expUseAVX512, expUseAVX2 = a, b }(expUseAVX512, expUseAVX2)
	expUseAVX512 = avx512 && expUseAVX512
	expUseAVX2 = avx2 && expUseAVX2
	f(t)
}

// The expAffine and maxF32 checks on the AVX2 and the portable paths too.
func TestExpAffineAVX2(t *testing.T) { withVectors(t, false, true, testExpAffine) }
func TestExpAffineGo(t *testing.T)   { withVectors(t, false, false, testExpAffine) }
func TestMaxF32AVX2(t *testing.T)    { withVectors(t, false, true, TestMaxF32) }
func TestMaxF32Go(t *testing.T)      { withVectors(t, false, false, TestMaxF32) }

// The kernels built on them, on the AVX2 path.
func TestSoftmaxAVX2(t *testing.T)     { withVectors(t, false, true, TestSoftmax) }
func TestAttentionAVX2(t *testing.T)   { withVectors(t, false, true, TestAttention) }
func TestUnaryAVX2(t *testing.T)       { withVectors(t, false, true, TestUnary) }
func TestActivationsAVX2(t *testing.T) { withVectors(t, false, true, TestActivations) }
func TestActivationsGo(t *testing.T)   { withVectors(t, false, false, TestActivations) }
