package scheduler_test

import (
	"math"
	"math/rand/v2"
	"testing"
)

// normals returns n seeded standard-normal float32 values.
func normals(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// uniform returns n seeded values in [lo, hi).
func uniform(seed uint64, n int, lo, hi float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 2))
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*r.Float64()
	}
	return out
}

func to64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func maxAbsDiff32(a []float32, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-b[i]))
	}
	return m
}

// closeAll fails when got and want differ anywhere by more than tol.
func closeAll(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d\n got %v\nwant %v", what, len(got), len(want), got, want)
	}
	for i := range got {
		if !(math.Abs(got[i]-want[i]) <= tol) {
			t.Errorf("%s[%d] = %.10g, want %.10g (|diff| %.3g > %.3g)", what, i, got[i], want[i], math.Abs(got[i]-want[i]), tol)
		}
	}
}

// closeSample fails when a float32 latent differs from its float64
// reference by more than tol (absolute, plus tol relative to the value).
func closeSample(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		d := math.Abs(float64(got[i]) - want[i])
		if !(d <= tol*(1+math.Abs(want[i]))) {
			if bad < 5 {
				t.Errorf("%s[%d] = %.9g, want %.9g (|diff| %.3g)", what, i, got[i], want[i], d)
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d values off in all", what, bad)
	}
}

// gaussianFlow is the exact velocity field of flow matching for data
// x₀ ~ N(mu, s²) per element, x_σ = (1−σ)x₀ + σε. The marginal at σ is
// N((1−σ)μ, (1−σ)²s² + σ²); the ODE keeps z = (x − (1−σ)μ)/√((1−σ)²s² + σ²)
// fixed, so x ends at μ + s·z, and v = dx/dσ = −μ + z·d√(…)/dσ:
//
//	v(x, σ) = −μ + (x − (1−σ)μ)·(σ − (1−σ)s²) / ((1−σ)²s² + σ²)
type gaussianFlow struct{ mu, s []float64 }

func newGaussianFlow(n int) gaussianFlow {
	return gaussianFlow{mu: uniform(11, n, -1, 1), s: uniform(12, n, 0.3, 1.5)}
}

func (g gaussianFlow) velocity(x []float32, sigma float64) []float32 {
	v := make([]float32, len(x))
	for i := range x {
		mu, s2 := g.mu[i], g.s[i]*g.s[i]
		a := 1 - sigma
		v[i] = float32(-mu + (float64(x[i])-a*mu)*(sigma-a*s2)/(a*a*s2+sigma*sigma))
	}
	return v
}

// start returns x at sigma on the path of noise eps, and the path's end.
func (g gaussianFlow) start(eps []float32, sigma float64) (x []float32, end []float64) {
	x = make([]float32, len(eps))
	end = make([]float64, len(eps))
	for i, e := range eps {
		mu, s := g.mu[i], g.s[i]
		a := 1 - sigma
		x[i] = float32(a*mu + math.Sqrt(a*a*s*s+sigma*sigma)*float64(e))
		end[i] = mu + s*float64(e)
	}
	return x, end
}
