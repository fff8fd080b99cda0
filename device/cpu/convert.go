package cpu

import "math"

// Conversions between float32 and the 16-bit float formats weights and
// activations are stored in, over raw bit patterns ([]uint16). Narrowing
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
			d[i] = f32ToBF16(f)
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
			d[i] = f32ToF16(f)
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
			d[i] = f16ToF32(h)
		}
	})
}

func convertChunks(threads, n int, fn func(lo, hi int)) {
	const chunk = 1 << 14
	ParallelFor(threads, (n+chunk-1)/chunk, 4, func(lo, hi int) {
		fn(lo*chunk, min(hi*chunk, n))
	})
}

func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep sign and top payload, set the quiet bit
		return uint16(b>>16) | 0x40
	}
	// Add half an ulp of bfloat16 minus one, plus the lsb of the result: ties
	// go to even, and a carry into the exponent (up to Inf) is correct.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// f32ToF16 follows F. Giesen's float_to_half_fast3_rtne (public domain,
// 2016): normal results by integer rounding of the rebased bits, subnormal
// results by one float addition whose own rounding (to nearest even) does
// the work.
func f32ToF16(f float32) uint16 {
	const (
		f32Inf      = 0xff << 23
		f16Max      = (127 + 16) << 23                   // 2^16: everything from here up is Inf
		denormMagic = ((127 - 15) + (23 - 10) + 1) << 23 // 0.5: aligns 2^-24 with the float32 lsb
	)
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	b &^= 1 << 31
	switch {
	case b > f32Inf: // NaN
		return sign | 0x7e00 | uint16(b>>13)&0x3ff
	case b >= f16Max: // overflow (also Inf)
		return sign | 0x7c00
	case b < 113<<23: // below 2^-14: a binary16 subnormal or zero
		v := math.Float32frombits(b) + math.Float32frombits(denormMagic)
		return sign | uint16(math.Float32bits(v)-denormMagic)
	}
	b += 0xfff + (b>>13)&1      // round half to even at the binary16 lsb
	b -= (127 - 15) << 23       // rebias the exponent (b >= 113<<23: no wrap)
	return sign | uint16(b>>13) // a carry past 0x7bff gives 0x7c00, Inf: correct
}

func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1f
	m := uint32(h) & 0x3ff
	switch e {
	case 0x1f: // Inf, NaN (payload kept)
		return math.Float32frombits(sign | 0x7f800000 | m<<13)
	case 0:
		// Zero or subnormal: m * 2^-24, exact in float32.
		return math.Float32frombits(sign | math.Float32bits(float32(m)*0x1p-24))
	}
	return math.Float32frombits(sign | (e+127-15)<<23 | m<<13)
}
