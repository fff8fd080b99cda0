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

var expUseAVX512 = cpu.X86.HasAVX512F

// expAffine sets dst[i] = e**(a*x[i] + c) and returns the sum of dst in
// float64. It is the exp loop of softmax, attention and the sigmoid-based
// activations.
func expAffine(dst, x []float32, a, c float32) float64 {
	dst = dst[:len(x)]
	n := len(x) &^ 15
	if !expUseAVX512 || n == 0 {
		return expAffineGo(dst, x, a, c)
	}
	s := expAffineAVX512(&dst[0], &x[0], n, a, c)
	return s + expAffineGo(dst[n:], x[n:], a, c)
}

// maxF32 returns the largest element of a non-empty x. If x holds NaNs it
// returns the largest of the others or NaN, which one unspecified: callers
// (softmax, attention) produce NaN from a NaN input either way.
func maxF32(x []float32) float32 {
	n := len(x) &^ 15
	if !expUseAVX512 || n == 0 {
		return maxF32Go(x)
	}
	m := maxAVX512(&x[0], n)
	if n < len(x) {
		m = max32(m, maxF32Go(x[n:]))
	}
	return m
}
