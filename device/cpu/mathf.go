package cpu

import "math"

// float32 elementary functions for the inner loops of softmax and the
// activations. Going through float64 math.Exp costs about three times as
// much and buys nothing at float32 precision.

const (
	log2e   = 1.44269504088896341
	ln2Hi   = 0.693359375        // ln 2 split in two (Cody & Waite): ln2Hi*n is exact for |n| < 2^9
	ln2Lo   = -2.12194440e-4     // ln 2 - ln2Hi
	expfMax = 87.0               // within (-expfMax, expfMax) the fast path neither overflows nor goes subnormal
	magic   = 12582912.0         // 1.5 * 2^23: adding it rounds a float32 to an integer (ties to even)
	tanhfLo = 0.625              // below, tanh uses its own odd polynomial (Cephes tanhf)
	sqrt2pi = 0.7978845608028654 // sqrt(2/pi)
)

// expf returns e**x in float32, within 2 ulp: Cephes expf (S. Moshier),
// Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6
// polynomial for e**r and an exact scaling by 2**n. Arguments outside
// (-87, 87), NaN and ±Inf take math.Exp, which handles overflow,
// subnormal results and the special values.
func expf(x float32) float32 {
	if !(x > -expfMax && x < expfMax) {
		return float32(math.Exp(float64(x)))
	}
	n := float32(x*log2e) + magic // the conversion stops the compiler fusing the rounding away
	n -= magic
	r := x - n*ln2Hi
	r -= n * ln2Lo
	z := r * r
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*z + r + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// expAffineGo is the portable expAffine, with expf inlined by hand (it is
// over the compiler's inlining budget, and a call per element costs as much
// as the polynomial). For a = 1, c = 0 the argument is x exactly.
func expAffineGo(dst, x []float32, a, c float32) float64 {
	dst = dst[:len(x)]
	var sum float64
	for i, v := range x {
		v = a*v + c
		if !(v > -expfMax && v < expfMax) {
			e := float32(math.Exp(float64(v)))
			dst[i] = e
			sum += float64(e)
			continue
		}
		n := float32(v*log2e) + magic
		n -= magic
		r := v - n*ln2Hi
		r -= n * ln2Lo
		p := float32(1.9875691500e-4)
		p = p*r + 1.3981999507e-3
		p = p*r + 8.3334519073e-3
		p = p*r + 4.1665795894e-2
		p = p*r + 1.6666665459e-1
		p = p*r + 5.0000001201e-1
		p = p*(r*r) + r + 1
		e := p * math.Float32frombits(uint32(int32(n)+127)<<23)
		dst[i] = e
		sum += float64(e)
	}
	return sum
}
