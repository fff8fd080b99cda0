package scheduler_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/omniflow-go/omniflow/diffusion/scheduler"
)

// roundHalfEven is round(p/q) for non-negative integers, ties to even, in
// exact integer arithmetic. An exact half is NaN: NumPy rounds the float it
// computed, which may lie just below or above the half (see the hand values).
func roundHalfEven(p, q int) float64 {
	r, rem := p/q, p%q
	if 2*rem == q {
		return math.NaN()
	}
	if 2*rem > q || (2*rem == q && r%2 == 1) {
		r++
	}
	return float64(r)
}

// ddimTimestepsReference writes out diffusers' DDIMScheduler.set_timesteps
// (scheduling_ddim.py) in exact integer arithmetic:
//
//	leading:  i·(T//n) + steps_offset, i = n−1 … 0
//	trailing: round(T − i·T/n) − 1,    i = 0 … n−1
//	linspace: round(i·(T−1)/(n−1)),    i = n−1 … 0
func ddimTimestepsReference(spacing scheduler.TimestepSpacing, T, n, offset int) []float64 {
	var ts []float64
	for k := range n {
		switch spacing {
		case scheduler.SpacingLeading:
			ts = append(ts, float64((n-1-k)*(T/n)+offset))
		case scheduler.SpacingTrailing:
			ts = append(ts, roundHalfEven(T*(n-k), n)-1)
		case scheduler.SpacingLinspace:
			if n == 1 {
				ts = append(ts, 0)
			} else {
				ts = append(ts, roundHalfEven((n-1-k)*(T-1), n-1))
			}
		}
	}
	return ts
}

func newDDIM(t testing.TB, mod func(*scheduler.DDIMConfig), n int) *scheduler.DDIM {
	t.Helper()
	c := scheduler.DefaultDDIMConfig()
	if mod != nil {
		mod(&c)
	}
	s, err := scheduler.NewDDIM(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(n); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDDIMTimestepsMatchFormula(t *testing.T) {
	for _, sp := range []scheduler.TimestepSpacing{scheduler.SpacingLeading, scheduler.SpacingTrailing, scheduler.SpacingLinspace} {
		for _, n := range []int{1, 3, 7, 10, 25, 48, 50, 61, 100, 480, 999, 1000} {
			for _, offset := range []int{0, 1} {
				if offset == 1 && (sp != scheduler.SpacingLeading || n > 999) {
					continue
				}
				t.Run(fmt.Sprintf("%s/N%d/offset%d", sp, n, offset), func(t *testing.T) {
					s := newDDIM(t, func(c *scheduler.DDIMConfig) { c.TimestepSpacing, c.StepsOffset = sp, offset }, n)
					got, want := s.Timesteps(), ddimTimestepsReference(sp, 1000, n, offset)
					// Exact halves (NaN) are settled by NumPy's float rounding:
					// compare the rest, and check those against the hand values.
					for i, w := range want {
						if math.IsNaN(w) {
							want[i] = got[i]
						}
					}
					closeAll(t, "timesteps", got, want, 0)
				})
			}
		}
	}
}

func TestDDIMTimestepsHandValues(t *testing.T) {
	tests := []struct {
		name    string
		spacing scheduler.TimestepSpacing
		n       int
		offset  int
		want    []float64
	}{
		// T//n = 100: 900, 800, …, 0 (+1 with steps_offset=1, Stable Diffusion).
		{"leading/N10", scheduler.SpacingLeading, 10, 0, []float64{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}},
		{"leading/N10/offset1", scheduler.SpacingLeading, 10, 1, []float64{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}},
		// arange(1000, 0, −100) − 1.
		{"trailing/N10", scheduler.SpacingTrailing, 10, 0, []float64{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}},
		// 1000/7 = 142.857…: 1000, 857.14, 714.29, 571.43, 428.57, 285.71, 142.86 → round − 1.
		{"trailing/N7", scheduler.SpacingTrailing, 7, 0, []float64{999, 856, 713, 570, 428, 285, 142}},
		// 999·k/9 = 111·k.
		{"linspace/N10", scheduler.SpacingLinspace, 10, 0, []float64{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}},
		// 999/2 = 499.5 rounds half to even: 500.
		{"linspace/N3", scheduler.SpacingLinspace, 3, 0, []float64{999, 500, 0}},
		// T//n = 333: 666, 333, 0.
		{"leading/N3", scheduler.SpacingLeading, 3, 0, []float64{666, 333, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newDDIM(t, func(c *scheduler.DDIMConfig) { c.TimestepSpacing, c.StepsOffset = tc.spacing, tc.offset }, tc.n)
			closeAll(t, "timesteps", s.Timesteps(), tc.want, 0)
		})
	}
	t.Run("trailing/N48 (NumPy float arange)", func(t *testing.T) {
		// Exactly, 1000 − 3·1000/48 = 937.5, which rounds (half to even) to
		// 938. NumPy's arange fills 1000 + 3·δ with δ = (1000 − 20.833…) − 1000
		// = −20.833333333333371, so it computes 937.49999999999989 → 937,
		// and diffusers' timestep is 937 − 1 = 936.
		s := newDDIM(t, func(c *scheduler.DDIMConfig) { c.TimestepSpacing = scheduler.SpacingTrailing }, 48)
		if got := s.Timesteps()[3]; got != 936 {
			t.Errorf("timesteps[3] = %v, want 936", got)
		}
	})
	t.Run("linspace/N61 (NumPy float linspace)", func(t *testing.T) {
		// Exactly, 30·999/60 = 499.5 → 500 (half to even). NumPy's linspace
		// computes 30·(999/60) with 999/60 = 16.649999999999998579, which
		// is 499.49999999999994316 → 499. Position 30 from the end is index 30.
		s := newDDIM(t, func(c *scheduler.DDIMConfig) { c.TimestepSpacing = scheduler.SpacingLinspace }, 61)
		if got := s.Timesteps()[30]; got != 499 {
			t.Errorf("timesteps[30] = %v, want 499", got)
		}
	})
	t.Run("trailing/N61 (NumPy yields 62 values)", func(t *testing.T) {
		// ceil(1000/(1000/61)) = 62 in float64, so NumPy's arange has a 62nd
		// value ≈ 0 → timestep −1. It is dropped: 61 steps, the last
		// round(1000/61) − 1 = 16 − 1 = 15.
		s := newDDIM(t, func(c *scheduler.DDIMConfig) { c.TimestepSpacing = scheduler.SpacingTrailing }, 61)
		ts := s.Timesteps()
		if len(ts) != 61 || ts[60] != 15 {
			t.Errorf("%d timesteps ending %v, want 61 ending 15", len(ts), ts[len(ts)-1])
		}
	})
}

// alphasCumprod is ᾱ_t = Π_{i≤t}(1 − β_i) with β from the beta schedule:
// linear β_i = b₀ + (b₁ − b₀)·i/(T−1); scaled_linear β_i = (√b₀ + (√b₁ − √b₀)·i/(T−1))².
func alphasCumprod(c scheduler.DDIMConfig) []float64 {
	T := c.NumTrainTimesteps
	out := make([]float64, T)
	p := 1.0
	for i := range T {
		f := float64(i) / float64(T-1)
		var beta float64
		if c.BetaSchedule == scheduler.BetaScaledLinear {
			r := math.Sqrt(c.BetaStart) + (math.Sqrt(c.BetaEnd)-math.Sqrt(c.BetaStart))*f
			beta = r * r
		} else {
			beta = c.BetaStart + (c.BetaEnd-c.BetaStart)*f
		}
		p *= 1 - beta
		out[i] = p
	}
	return out
}

// ddimStepReference is Eq. 12 of Song et al. with σ_t(η) from Eq. 16.
func ddimStepReference(c scheduler.DDIMConfig, n int, t int, out, x, z []float32) []float64 {
	ac := alphasCumprod(c)
	prev := t - c.NumTrainTimesteps/n
	at := ac[t]
	ap := ac[0]
	if c.SetAlphaToOne {
		ap = 1
	}
	if prev >= 0 {
		ap = ac[prev]
	}
	sigma := c.Eta * math.Sqrt((1-ap)/(1-at)) * math.Sqrt(1-at/ap)
	res := make([]float64, len(x))
	for j := range x {
		xt, o := float64(x[j]), float64(out[j])
		var x0, eps float64
		switch c.PredictionType {
		case scheduler.Epsilon:
			x0, eps = (xt-math.Sqrt(1-at)*o)/math.Sqrt(at), o
		case scheduler.VPrediction:
			x0 = math.Sqrt(at)*xt - math.Sqrt(1-at)*o
			eps = math.Sqrt(at)*o + math.Sqrt(1-at)*xt
		case scheduler.SamplePred:
			x0, eps = o, (xt-math.Sqrt(at)*o)/math.Sqrt(1-at)
		}
		if c.ClipSample {
			x0 = math.Max(-c.ClipSampleRange, math.Min(c.ClipSampleRange, x0))
		}
		res[j] = math.Sqrt(ap)*x0 + math.Sqrt(1-ap-sigma*sigma)*eps
		if c.Eta > 0 {
			res[j] += sigma * float64(z[j])
		}
	}
	return res
}

func TestDDIMStepFormula(t *testing.T) {
	type variant struct {
		name string
		mod  func(*scheduler.DDIMConfig)
	}
	vs := []variant{
		{"default/epsilon", func(c *scheduler.DDIMConfig) {}},
		{"sd/epsilon", func(c *scheduler.DDIMConfig) { *c = scheduler.StableDiffusionDDIMConfig() }},
		{"sd/v/trailing", func(c *scheduler.DDIMConfig) {
			*c = scheduler.StableDiffusionDDIMConfig()
			c.PredictionType, c.TimestepSpacing, c.StepsOffset = scheduler.VPrediction, scheduler.SpacingTrailing, 0
		}},
		{"sample/linspace", func(c *scheduler.DDIMConfig) {
			c.PredictionType, c.TimestepSpacing = scheduler.SamplePred, scheduler.SpacingLinspace
		}},
		{"epsilon/eta0.7", func(c *scheduler.DDIMConfig) { c.Eta = 0.7 }},
		{"sd/v/eta1", func(c *scheduler.DDIMConfig) {
			*c = scheduler.StableDiffusionDDIMConfig()
			c.PredictionType, c.Eta = scheduler.VPrediction, 1
		}},
		{"epsilon/clip0.5", func(c *scheduler.DDIMConfig) { c.ClipSample, c.ClipSampleRange = true, 0.5 }},
	}
	const n, size = 10, 300
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			c := scheduler.DefaultDDIMConfig()
			v.mod(&c)
			s := newDDIM(t, v.mod, n)
			ts := s.Timesteps()
			for _, step := range []int{0, 4, n - 1} {
				x := normals(uint64(10+step), size)
				out := normals(uint64(20+step), size)
				z := normals(uint64(30+step), size)
				want := ddimStepReference(c, n, int(ts[step]), out, x, z)
				if err := s.StepNoise(out, x, z, step); err != nil {
					t.Fatal(err)
				}
				closeSample(t, fmt.Sprintf("step %d (t=%v)", step, ts[step]), x, want, 2e-6)
			}
		})
	}
}

func TestDDIMHandValues(t *testing.T) {
	// Stable Diffusion, N=10, leading + offset 1: the last step is t = 1 with
	// prev = 1 − 100 < 0, so ᾱ_prev = ᾱ₀ = 1 − β₀ = 1 − (√0.00085)² = 0.99915
	// (set_alpha_to_one off). For a sample-predicting model (x̂₀ = out) and
	// out = x: ε̂ = (x − √ᾱ₁·x)/√(1−ᾱ₁), so
	// x_prev = √0.99915·x + √0.00085·(1 − √ᾱ₁)/√(1−ᾱ₁)·x.
	// ᾱ₁ = 0.99915·(1 − β₁), β₁ = (√0.00085 + (√0.012 − √0.00085)/999)².
	c := scheduler.StableDiffusionDDIMConfig()
	c.PredictionType = scheduler.SamplePred
	s := newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, 10)
	if ts := s.Timesteps(); ts[9] != 1 {
		t.Fatalf("last timestep %v, want 1", ts[9])
	}
	r := math.Sqrt(0.00085) + (math.Sqrt(0.012)-math.Sqrt(0.00085))/999
	a1 := 0.99915 * (1 - r*r)
	k := math.Sqrt(0.99915) + math.Sqrt(0.00085)*(1-math.Sqrt(a1))/math.Sqrt(1-a1)
	x := []float32{1, -2, 0.5}
	out := slices.Clone(x)
	if err := s.Step(out, x, 9); err != nil {
		t.Fatal(err)
	}
	closeSample(t, "last step", x, []float64{k, -2 * k, 0.5 * k}, 1e-6)
}

// An oracle model that knows x₀ predicts ε̂ = (x_t − √ᾱ_t·x₀)/√(1−ᾱ_t)
// (or v̂ = √ᾱ_t·ε̂ − √(1−ᾱ_t)·x₀), so x̂₀ = x₀ at every step; with ᾱ = 1
// after the last step the loop must end at x₀ from pure noise, with or
// without fresh noise (σ_t(η) is 0 for the last step).
func TestDDIMOracleReachesData(t *testing.T) {
	const size = 500
	x0 := normals(1, size)
	for _, pred := range []scheduler.PredictionType{scheduler.Epsilon, scheduler.VPrediction} {
		for _, sp := range []scheduler.TimestepSpacing{scheduler.SpacingLeading, scheduler.SpacingTrailing} {
			for _, eta := range []float64{0, 1} {
				t.Run(fmt.Sprintf("%s/%s/eta%v", pred, sp, eta), func(t *testing.T) {
					c := scheduler.StableDiffusionDDIMConfig()
					c.PredictionType, c.TimestepSpacing, c.StepsOffset = pred, sp, 0
					c.SetAlphaToOne, c.Eta, c.Noise = true, eta, scheduler.NewNormalNoise(9)
					ac := alphasCumprod(c)
					const n = 10
					s := newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, n)
					x := normals(2, size) // pure noise
					for i, tf := range s.Timesteps() {
						a := ac[int(tf)]
						out := make([]float32, size)
						for j := range out {
							eps := (float64(x[j]) - math.Sqrt(a)*float64(x0[j])) / math.Sqrt(1-a)
							if pred == scheduler.VPrediction {
								out[j] = float32(math.Sqrt(a)*eps - math.Sqrt(1-a)*float64(x0[j]))
							} else {
								out[j] = float32(eps)
							}
						}
						if err := s.Step(out, x, i); err != nil {
							t.Fatal(err)
						}
					}
					if d := maxAbsDiff32(x, to64(x0)); d > 2e-5 {
						t.Errorf("max |x − x₀| = %.3g, want ≤ 2e-5", d)
					}
				})
			}
		}
	}
	t.Run("exact noise stays on its path", func(t *testing.T) {
		// x_T = √ᾱ_T·x₀ + √(1−ᾱ_T)·ε and the model returns ε: every step lands
		// on √ᾱ_prev·x₀ + √(1−ᾱ_prev)·ε, and without set_alpha_to_one the
		// end is √ᾱ₀·x₀ + √(1−ᾱ₀)·ε with ᾱ₀ = 0.99915.
		c := scheduler.StableDiffusionDDIMConfig()
		ac := alphasCumprod(c)
		s := newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, 20)
		eps := normals(3, size)
		t0 := int(s.Timesteps()[0])
		x := make([]float32, size)
		for j := range x {
			x[j] = float32(math.Sqrt(ac[t0])*float64(x0[j]) + math.Sqrt(1-ac[t0])*float64(eps[j]))
		}
		for i := range 20 {
			if err := s.Step(eps, x, i); err != nil {
				t.Fatal(err)
			}
		}
		want := make([]float64, size)
		for j := range want {
			want[j] = math.Sqrt(0.99915)*float64(x0[j]) + math.Sqrt(0.00085)*float64(eps[j])
		}
		closeSample(t, "end", x, want, 2e-5)
	})
}

func TestDDIMNoise(t *testing.T) {
	run := func(seed uint64) []float32 {
		c := scheduler.DefaultDDIMConfig()
		c.Eta, c.Noise = 0.5, scheduler.NewNormalNoise(seed)
		s := newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, 5)
		x := normals(1, 100)
		out := normals(2, 100)
		for i := range 5 {
			if err := s.Step(out, x, i); err != nil {
				t.Fatal(err)
			}
		}
		return x
	}
	if a, b := run(7), run(7); !slices.Equal(a, b) {
		t.Error("same seed, different results")
	}
	if a, b := run(7), run(8); slices.Equal(a, b) {
		t.Error("different seeds, same results")
	}
	// Step with eta > 0 uses the source exactly as StepNoise uses its z.
	c := scheduler.DefaultDDIMConfig()
	c.Eta, c.Noise = 0.5, scheduler.NewNormalNoise(4)
	a := newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, 5)
	b := newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, 5)
	z := make([]float32, 100)
	scheduler.NewNormalNoise(4).FillNormal(z)
	xa, xb, out := normals(1, 100), normals(1, 100), normals(2, 100)
	if err := a.Step(out, xa, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.StepNoise(out, xb, z, 0); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(xa, xb) {
		t.Error("Step and StepNoise with the same noise differ")
	}
}

func TestDDIMErrors(t *testing.T) {
	mods := []func(*scheduler.DDIMConfig){
		func(c *scheduler.DDIMConfig) { c.NumTrainTimesteps = 0 },
		func(c *scheduler.DDIMConfig) { c.BetaEnd = 1 },
		func(c *scheduler.DDIMConfig) { c.BetaStart = -0.1 },
		func(c *scheduler.DDIMConfig) { c.BetaSchedule = "squaredcos_cap_v2" },
		func(c *scheduler.DDIMConfig) { c.PredictionType = scheduler.FlowPrediction },
		func(c *scheduler.DDIMConfig) { c.TimestepSpacing = "even" },
		func(c *scheduler.DDIMConfig) { c.Eta = 1.5 },
		func(c *scheduler.DDIMConfig) { c.Eta = math.NaN() },
		func(c *scheduler.DDIMConfig) { c.ClipSample, c.ClipSampleRange = true, 0 },
	}
	for i, mod := range mods {
		c := scheduler.DefaultDDIMConfig()
		mod(&c)
		if _, err := scheduler.NewDDIM(c); !errors.Is(err, scheduler.ErrConfig) {
			t.Errorf("config %d: err = %v, want ErrConfig", i, err)
		}
	}
	s, err := scheduler.NewDDIM(scheduler.DefaultDDIMConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(1001); !errors.Is(err, scheduler.ErrConfig) {
		t.Errorf("n > T: err = %v, want ErrConfig", err)
	}
	c := scheduler.DefaultDDIMConfig()
	c.StepsOffset = 100
	s, _ = scheduler.NewDDIM(c)
	if err := s.SetTimesteps(10); !errors.Is(err, scheduler.ErrConfig) {
		t.Errorf("offset past T: err = %v, want ErrConfig", err)
	}
	c = scheduler.DefaultDDIMConfig()
	c.Eta = 0.5
	s = newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, 4)
	x := make([]float32, 8)
	if err := s.Step(x, x, 0); !errors.Is(err, scheduler.ErrConfig) {
		t.Errorf("eta > 0 without a noise source: err = %v, want ErrConfig", err)
	}
	if err := s.StepNoise(x, x, x[:4], 0); !errors.Is(err, scheduler.ErrLength) {
		t.Errorf("short noise: err = %v, want ErrLength", err)
	}
}
