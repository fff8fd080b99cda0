package cpu

import "golang.org/x/sys/cpu"

// expAffineAVX512 is expAffine over the first n&^15 elements, 16 lanes at a
// time (mathf_amd64.s); the caller finishes the tail.
//
//go:noescape
func expAffineAVX512(dst, x *float32, n int, a, c float32) float64

// maxAVX512 is maxF32 over x[0:n], n a positive multiple of 16.
//
//go:noescape
func maxAVX512(x *float32, n int) float32

// expAffineAVX2 is expAffine over the first n&^7 elements, 8 lanes at a
// time, for CPUs with AVX2 and FMA but not AVX-512.
//
//go:noescape
func expAffineAVX2(dst, x *float32, n int, a, c float32) float64

// maxAVX2 is maxF32 over x[0:n], n a positive multiple of 8.
//
//go:noescape
func maxAVX2(x *float32, n int) float32

// geluErfAVX512 is geluVec over n elements, n a multiple of 16.
//
//go:noescape
func geluErfAVX512(dst, x *float32, n int)

// geluVec sets dst = GELU(x) (the erf form; see GELU).
func geluVec(dst, x []float32) {
	dst = dst[:len(x)]
	if n := len(x) &^ 15; expUseAVX512 && n > 0 {
		geluErfAVX512(&dst[0], &x[0], n)
		dst, x = dst[n:], x[n:]
	}
	geluVecGo(dst, x)
}

// The vector kernels this CPU runs; tests turn them off to check the
// fallbacks.
var (
	expUseAVX512 = cpu.X86.HasAVX512F
	expUseAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

// expAffine sets dst[i] = e**(a*x[i] + c) and returns the sum of dst in
// float64. It is the exp loop of softmax, attention and the sigmoid-based
// activations.
func expAffine(dst, x []float32, a, c float32) float64 {
	dst = dst[:len(x)]
	var s float64
	n := 0
	switch {
	case expUseAVX512 && len(x) >= 16:
		n = len(x) &^ 15
		s = expAffineAVX512(&dst[0], &x[0], n, a, c)
	case expUseAVX2 && len(x) >= 8:
		n = len(x) &^ 7
		s = expAffineAVX2(&dst[0], &x[0], n, a, c)
	}
	return s + expAffineGo(dst[n:], x[n:], a, c)
}

// maxF32 returns the largest element of a non-empty x. If x holds NaNs it
// returns the largest of the others or NaN, which one unspecified: callers
// (softmax, attention) produce NaN from a NaN input either way.
func maxF32(x []float32) float32 {
	var m float32
	n := 0
	switch {
	case expUseAVX512 && len(x) >= 16:
		n = len(x) &^ 15
		m = maxAVX512(&x[0], n)
	case expUseAVX2 && len(x) >= 8:
		n = len(x) &^ 7
		m = maxAVX2(&x[0], n)
	default:
		return maxF32Go(x)
	}
	if n < len(x) {
		m = max32(m, maxF32Go(x[n:]))
	}
	return m
}
