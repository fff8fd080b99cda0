package cpu

import (
	"fmt"
	"math"
	"testing"
)

// ulpErr returns |got - want| in units of the float32 ulp at want.
func ulpErr(got float32, want float64) float64 {
	w := float32(want)
	if float64(got) == want || got == w {
		return 0
	}
	a := float32(math.Abs(want))
	ulp := float64(math.Nextafter32(a, float32(math.Inf(1))) - a)
	if a < 0x1p-126 {
		ulp = 0x1p-149
	}
	return math.Abs(float64(got)-want) / ulp
}

// testExpAffine checks expAffine (whichever implementation this CPU runs)
// over the whole float32 range in use.
func testExpAffine(t *testing.T) {
	rng := newRand(20)
	for _, tc := range []struct {
		a, c float32
		n    int
	}{{1, 0, 1000}, {1, 0, 1}, {0.125, -3, 333}, {-1, 0, 4096}, {2, 0, 17}} {
		t.Run(fmt.Sprintf("a=%g/c=%g/n=%d", tc.a, tc.c, tc.n), func(t *testing.T) {
			x := randSlice(rng, tc.n, -120, 120)
			if tc.n > 8 {
				copy(x, []float32{0, float32(math.Inf(-1)), float32(math.Inf(1)), float32(math.NaN()), -87.5, 88.5, 1e-20, -1e-20})
			}
			dst := make([]float32, tc.n)
			sum := expAffine(dst, x, tc.a, tc.c)
			want := 0.0
			for i, v := range x {
				arg := float64(tc.a*v + tc.c) // the kernel may fuse this; its rounding is part of the input
				w := math.Exp(arg)
				if !math.IsNaN(w) {
					want += float64(float32(w))
				}
				// Cephes expf's documented bound is about 1 ulp; the argument's rounding
				// (half an ulp of a*x, amplified by |arg|) comes on top, so allow
				// 2 ulp + |arg|*u32 relative.
				if math.IsNaN(w) != (dst[i] != dst[i]) || ulpErr(dst[i], w) > 2+math.Abs(arg)*u32/eps32*2 {
					t.Errorf("exp(%g*%g%+g) = %g, want %g (%.2f ulp)", tc.a, v, tc.c, dst[i], w, ulpErr(dst[i], w))
				}
			}
			if math.IsNaN(want) || math.IsInf(want, 0) {
				return
			}
			// float64 accumulation of float32 values: relative 1e-12 is loose.
			if math.Abs(sum-want) > 1e-12*math.Abs(want)+1e-300 && !(math.IsInf(sum, 0) && math.IsInf(want, 0)) {
				t.Errorf("sum = %g, want %g", sum, want)
			}
		})
	}
}

func TestExpAffine(t *testing.T) { testExpAffine(t) }

func TestScalarMathf(t *testing.T) {
	rng := newRand(21)
	worst := map[string]float64{}
	for i := range 200000 {
		x := (rng.Float32() - 0.5) * 40
		if i%2 == 0 {
			x /= 1000
		}
		for _, f := range []struct {
			name string
			got  float32
			want float64
		}{
			{"expf", expf(x), math.Exp(float64(x))},
		} {
			worst[f.name] = max(worst[f.name], ulpErr(f.got, f.want))
		}
	}
	// Measured 1.0 ulp: Cephes's polynomial is good to about 1 ulp.
	for name, bound := range map[string]float64{"expf": 2} {
		if worst[name] > bound {
			t.Errorf("%s: worst error %.2f ulp, want <= %g", name, worst[name], bound)
		}
	}
	for _, tc := range []struct {
		got, want float32
	}{
		{expf(float32(math.Inf(-1))), 0}, {expf(float32(math.Inf(1))), float32(math.Inf(1))}, {expf(0), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
	if v := expf(float32(math.NaN())); v == v {
		t.Errorf("expf(NaN) = %v", v)
	}
}

func TestMaxF32(t *testing.T) {
	rng := newRand(22)
	for _, n := range []int{1, 3, 15, 16, 17, 31, 64, 65, 200, 1000} {
		x := randNormal(rng, n, 10)
		want := x[0]
		for _, v := range x {
			want = max(want, v)
		}
		if got := maxF32(x); got != want {
			t.Errorf("n=%d: maxF32 = %v, want %v", n, got, want)
		}
		for i := range x {
			x[i] = float32(math.Inf(-1))
		}
		if got := maxF32(x); !math.IsInf(float64(got), -1) {
			t.Errorf("n=%d: maxF32(all -Inf) = %v", n, got)
		}
	}
}

func BenchmarkExp(b *testing.B) {
	x, dst := randNormal(newRand(1), 4096, 3), make([]float32, 4096)
	b.Run("cpu/f32/4K", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			expAffine(dst, x, 1, 0)
		}
		reportGBs(b, 8*4096)
	})
}
