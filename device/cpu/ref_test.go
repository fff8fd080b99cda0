package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Test scaffolding shared by the kernel tests: seeded inputs, float64
// references, tolerance checks, benchmark metrics.

// Tolerances are written as multiples of these, with the reason beside
// each use.
const (
	eps32 = 0x1p-23 // float32 machine epsilon (ulp of 1)
	u32   = 0x1p-24 // float32 unit roundoff: one correctly rounded op
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// randSlice returns n uniform values in [lo, hi).
func randSlice(rng *rand.Rand, n int, lo, hi float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = lo + (hi-lo)*rng.Float32()
	}
	return s
}

// randNormal returns n standard normal values times sd.
func randNormal(rng *rand.Rand, n int, sd float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * sd)
	}
	return s
}

func f64s(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// checkClose fails t at the first few elements where
// |got - want| > abs + rel*|want|; NaNs must match NaNs and infinities must
// match exactly.
func checkClose(t testing.TB, name string, got []float32, want []float64, rel, abs float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", name, len(got), len(want))
	}
	bad := 0
	for i, g := range got {
		w := float64(want[i])
		gv := float64(g)
		switch {
		case math.IsNaN(w) || math.IsNaN(gv):
			if math.IsNaN(w) != math.IsNaN(gv) {
				bad++
				if bad <= 5 {
					t.Errorf("%s[%d] = %v, want %v", name, i, g, w)
				}
			}
			continue
		case math.IsInf(w, 0) || math.IsInf(gv, 0):
			if gv != w {
				bad++
				if bad <= 5 {
					t.Errorf("%s[%d] = %v, want %v", name, i, g, w)
				}
			}
			continue
		}
		d := math.Abs(gv - w)
		if d > abs+rel*math.Abs(w) {
			bad++
			if bad <= 5 {
				t.Errorf("%s[%d] = %.9g, want %.9g (diff %.3g, allowed %.3g)", name, i, g, w, d, abs+rel*math.Abs(w))
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d elements out of tolerance", name, bad, len(got))
	}
}

// checkTol is checkClose with a tolerance per element.
func checkTol(t testing.TB, name string, got []float32, want, tol []float64) {
	t.Helper()
	bad := 0
	for i, g := range got {
		w, gv := want[i], float64(g)
		ok := gv == w || math.Abs(gv-w) <= tol[i] || math.IsNaN(w) && math.IsNaN(gv)
		if !ok {
			bad++
			if bad <= 5 {
				t.Errorf("%s[%d] = %.9g, want %.9g (diff %.3g, allowed %.3g)", name, i, g, w, math.Abs(gv-w), tol[i])
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d elements out of tolerance", name, bad, len(got))
	}
}

// rounded returns want rounded to float32 (and back): the reference for a
// kernel whose result is one correctly rounded operation.
func rounded(want []float64) []float64 {
	r := make([]float64, len(want))
	for i, w := range want {
		r[i] = float64(float32(w))
	}
	return r
}

// mustPanic fails t unless f panics.
func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", name)
		}
	}()
	f()
}

// reportGBs reports bytes moved per op as GB/s.
func reportGBs(b *testing.B, bytes float64) {
	b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// reportGFLOPs reports floating-point operations per op as GFLOP/s.
func reportGFLOPs(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprint(n)
}
