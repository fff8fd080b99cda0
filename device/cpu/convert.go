package cpu

import (
	"math"

	"github.com/omniflow-go/omniflow/tensor"
)

// Conversions between float32 and the 16-bit float formats weights and
// activations are stored in, over raw bit patterns ([]uint16), spread over
// threads; the scalar conversions are package tensor's. Narrowing
// rounds to nearest, ties to even; NaNs stay NaN with their sign and the
// top bits of their payload, quieted (as x86's VCVTPS2PH and Arm's FCVT
// do); widening is exact. dst and src must have the same length.

// F32ToBF16 rounds src to bfloat16 (the top 16 bits of a float32: 8
// exponent bits, 7 mantissa bits). Values past the largest bfloat16 round
// to ±Inf; subnormals round like any other value.
func F32ToBF16(threads int, dst []uint16, src []float32) {
	mustLen("F32ToBF16", "dst", dst, len(src))
	convertChunks(threads, len(src), func(lo, hi int) {
		d := dst[lo:hi]
		for i, f := range src[lo:hi] {
			d[i] = tensor.F32ToBF16(f)
		}
	})
}

// BF16ToF32 widens bfloat16 src exactly.
func BF16ToF32(threads int, dst []float32, src []uint16) {
	mustLen("BF16ToF32", "dst", dst, len(src))
	convertChunks(threads, len(src), func(lo, hi int) {
		d := dst[lo:hi]
		for i, h := range src[lo:hi] {
			d[i] = math.Float32frombits(uint32(h) << 16)
		}
	})
}

// F32ToF16 rounds src to IEEE 754 binary16 (5 exponent bits, 10 mantissa
// bits): values of magnitude >= 65520 round to ±Inf, small ones to
// binary16 subnormals (multiples of 2^-24) or ±0.
func F32ToF16(threads int, dst []uint16, src []float32) {
	mustLen("F32ToF16", "dst", dst, len(src))
	convertChunks(threads, len(src), func(lo, hi int) {
		d := dst[lo:hi]
		for i, f := range src[lo:hi] {
			d[i] = tensor.F32ToF16(f)
		}
	})
}

// F16ToF32 widens binary16 src exactly (subnormals, infinities and NaNs
// included).
func F16ToF32(threads int, dst []float32, src []uint16) {
	mustLen("F16ToF32", "dst", dst, len(src))
	convertChunks(threads, len(src), func(lo, hi int) {
		d := dst[lo:hi]
		for i, h := range src[lo:hi] {
			d[i] = tensor.F16ToF32(h)
		}
	})
}

func convertChunks(threads, n int, fn func(lo, hi int)) {
	const chunk = 1 << 14
	ParallelFor(threads, (n+chunk-1)/chunk, 4, func(lo, hi int) {
		fn(lo*chunk, min(hi*chunk, n))
	})
}
