//go:build !amd64

package cpu

// expAffine sets dst[i] = e**(a*x[i] + c) and returns the sum of dst in
// float64. It is the exp loop of softmax, attention and the sigmoid-based
// activations.
func expAffine(dst, x []float32, a, c float32) float64 { return expAffineGo(dst, x, a, c) }

// maxF32 returns the largest element of a non-empty x. If x holds NaNs it
// returns the largest of the others or NaN, which one unspecified: callers
// (softmax, attention) produce NaN from a NaN input either way.
func maxF32(x []float32) float32 { return maxF32Go(x) }

// geluVec sets dst = GELU(x) (the erf form; see GELU).
func geluVec(dst, x []float32) { geluVecGo(dst, x) }
