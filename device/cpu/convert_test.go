package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
)

// refF16 is binary16 by its definition (IEEE 754-2008, 3.6):
// (-1)^s 2^(e-15) (1 + m/1024), subnormals 2^-14 (m/1024).
func refF16(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e, m := int(h>>10)&0x1f, float64(h&0x3ff)
	switch e {
	case 0x1f:
		if m == 0 {
			return s * math.Inf(1)
		}
		return math.NaN()
	case 0:
		return s * math.Ldexp(m/1024, -14)
	}
	return s * math.Ldexp(1+m/1024, e-15)
}

// refRound rounds x to the nearest value with mbits fraction bits and
// minimum normal exponent emin (below it, the fixed spacing of the
// subnormals), ties to even, in float64 (where every float32 is exact and
// x/ulp is an exact integer plus a fraction). Results above max become Inf.
func refRound(x float64, mbits, emin int, max float64) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	_, e := math.Frexp(math.Abs(x)) // |x| = f*2^e, f in [0.5, 1)
	ulp := math.Ldexp(1, max0(e-1, emin)-mbits)
	r := math.RoundToEven(x/ulp) * ulp
	if math.Abs(r) > max {
		return math.Copysign(math.Inf(1), x)
	}
	return r
}

func max0(a, b int) int {
	if a > b {
		return a
	}
	return b
}

const (
	maxF16  = 65504
	maxBF16 = (2 - 0x1p-7) * 0x1p127
)

func TestF16Exhaustive(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	wide := make([]float32, len(src))
	F16ToF32(2, wide, src)
	back := make([]uint16, len(src))
	F32ToF16(2, back, wide)
	for i, h := range src {
		w := refF16(h)
		got := float64(wide[i])
		if math.IsNaN(w) {
			// NaN stays NaN: sign and payload kept, quiet bit set.
			if !math.IsNaN(got) || back[i] != h|0x200 {
				t.Errorf("f16 %#04x (NaN): widened %v, back %#04x, want NaN and %#04x", h, got, back[i], h|0x200)
			}
			continue
		}
		if got != w || math.Signbit(got) != math.Signbit(w) {
			t.Errorf("F16ToF32(%#04x) = %v, want %v", h, got, w)
		}
		if back[i] != h {
			t.Errorf("F32ToF16(F16ToF32(%#04x)) = %#04x", h, back[i])
		}
		if tensor.F16ToF32(h) != wide[i] {
			t.Errorf("F16ToF32(%#04x) = %v, tensor.F16ToF32 = %v", h, wide[i], tensor.F16ToF32(h))
		}
	}
}

func TestBF16Exhaustive(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	wide := make([]float32, len(src))
	BF16ToF32(2, wide, src)
	back := make([]uint16, len(src))
	F32ToBF16(2, back, wide)
	for i, h := range src {
		// bfloat16 is the top half of a float32 by definition.
		w := math.Float32frombits(uint32(h) << 16)
		if w != w {
			if wide[i] == wide[i] || back[i] != h|0x40 {
				t.Errorf("bf16 %#04x (NaN): widened %v, back %#04x, want NaN and %#04x", h, wide[i], back[i], h|0x40)
			}
			continue
		}
		if math.Float32bits(wide[i]) != math.Float32bits(w) || back[i] != h {
			t.Errorf("bf16 %#04x: widened %v (want %v), back %#04x", h, wide[i], w, back[i])
		}
	}
}

// narrowingInputs returns float32 bit patterns spread over the whole range
// (a stride through all 2^32), every midpoint between consecutive finite
// binary16 and between consecutive bfloat16 values in the binary16 range
// (the ties), and the edges.
func narrowingInputs() []float32 {
	var xs []float32
	for b := uint64(0); b < 1<<32; b += 997 {
		xs = append(xs, math.Float32frombits(uint32(b)))
	}
	for h := uint16(0); h < 0x7bff; h++ {
		lo, hi := refF16(h), refF16(h+1)
		xs = append(xs, float32((lo+hi)/2), -float32((lo+hi)/2))
	}
	for h := uint32(0); h < 0x7f7f; h += 3 {
		lo, hi := math.Float32frombits(h<<16), math.Float32frombits((h+1)<<16)
		xs = append(xs, float32((float64(lo)+float64(hi))/2))
	}
	return append(xs, 65504, 65519.99, 65520, 65536, 1e10, 0x1p-24, 0x1p-25, 0x1.000002p-25, 0x1p-26, 5.9604645e-08,
		math.MaxFloat32, maxBF16, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1)))
}

func TestF32ToF16Rounding(t *testing.T) {
	xs := narrowingInputs()
	got := make([]uint16, len(xs))
	F32ToF16(2, got, xs)
	bad := 0
	for i, x := range xs {
		if x != x {
			if g := refF16(got[i]); !math.IsNaN(g) {
				t.Errorf("F32ToF16(NaN %#08x) = %#04x, not NaN", math.Float32bits(x), got[i])
			}
			continue
		}
		// binary16: 10 fraction bits, minimum normal exponent -14.
		w := refRound(float64(x), 10, -14, maxF16)
		g := refF16(got[i])
		if g != w || math.Signbit(g) != math.Signbit(w) && w == 0 {
			if bad++; bad <= 10 {
				t.Errorf("F32ToF16(%g = %#08x) = %#04x = %g, want %g", x, math.Float32bits(x), got[i], g, w)
			}
		}
		if got[i] != tensor.F32ToF16(x) {
			if bad++; bad <= 10 {
				t.Errorf("F32ToF16(%g) = %#04x, tensor.F32ToF16 = %#04x", x, got[i], tensor.F32ToF16(x))
			}
		}
	}
	t.Logf("%d inputs", len(xs))
}

func TestF32ToBF16Rounding(t *testing.T) {
	xs := narrowingInputs()
	got := make([]uint16, len(xs))
	F32ToBF16(2, got, xs)
	bad := 0
	for i, x := range xs {
		g := math.Float32frombits(uint32(got[i]) << 16)
		if x != x {
			if g == g {
				t.Errorf("F32ToBF16(NaN) = %#04x, not NaN", got[i])
			}
			continue
		}
		// bfloat16: 7 fraction bits, float32's exponent range (subnormals from 2^-126).
		w := refRound(float64(x), 7, -126, maxBF16)
		if float64(g) != w {
			if bad++; bad <= 10 {
				t.Errorf("F32ToBF16(%g = %#08x) = %#04x = %g, want %g", x, math.Float32bits(x), got[i], g, w)
			}
		}
		if got[i] != tensor.F32ToBF16(x) {
			if bad++; bad <= 10 {
				t.Errorf("F32ToBF16(%g) = %#04x, tensor.F32ToBF16 = %#04x", x, got[i], tensor.F32ToBF16(x))
			}
		}
	}
}

func TestConvertKnownValues(t *testing.T) {
	for _, c := range []struct {
		f    float32
		f16  uint16
		bf16 uint16
	}{
		// binary16 values from IEEE 754-2008 / Wikipedia's "Half-precision" table;
		// bfloat16 ones are the float32's top half, rounded.
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{65504, 0x7bff, 0x4780},       // largest binary16; bfloat16 rounds it up to 65536
		{0x1p-14, 0x0400, 0x3880},     // smallest normal binary16
		{0x1p-24, 0x0001, 0x3380},     // smallest subnormal binary16
		{0.333333343, 0x3555, 0x3eab}, // 1/3
		{3.14159274, 0x4248, 0x4049},  // pi
		{0, 0x0000, 0x0000},
		{float32(math.Inf(-1)), 0xfc00, 0xff80},
		{1 + 0x1p-11, 0x3c00, 0x3f80},   // tie in binary16 -> even (down)
		{1 + 3*0x1p-11, 0x3c02, 0x3f80}, // tie in binary16 -> even (up)
		{1 + 0x1p-8, 0x3c04, 0x3f80},    // tie in bfloat16 -> even (down)
		{1 + 3*0x1p-8, 0x3c0c, 0x3f82},  // tie in bfloat16 -> even (up)
	} {
		h, b := make([]uint16, 1), make([]uint16, 1)
		F32ToF16(1, h, []float32{c.f})
		F32ToBF16(1, b, []float32{c.f})
		if h[0] != c.f16 || b[0] != c.bf16 {
			t.Errorf("%g: f16 %#04x (want %#04x), bf16 %#04x (want %#04x)", c.f, h[0], c.f16, b[0], c.bf16)
		}
	}
	mustPanic(t, "length", func() { F32ToF16(1, make([]uint16, 2), make([]float32, 3)) })
}

func BenchmarkConvert(b *testing.B) {
	const n = 1 << 22
	rng := newRand(1)
	f := randNormal(rng, n, 1)
	h := make([]uint16, n)
	out := make([]float32, n)
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"F32ToF16", func() { F32ToF16(0, h, f) }},
		{"F16ToF32", func() { F16ToF32(0, out, h) }},
		{"F32ToBF16", func() { F32ToBF16(0, h, f) }},
		{"BF16ToF32", func() { BF16ToF32(0, out, h) }},
	} {
		b.Run(fmt.Sprintf("%s/cpu/4M", c.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.fn()
			}
			reportGBs(b, 6*n)
		})
	}
}
