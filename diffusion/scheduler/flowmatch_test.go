package scheduler_test

import (
	"errors"
	"math"
	"testing"

	"github.com/omniflow-go/omniflow/diffusion/scheduler"
)

// flowMatchReference re-derives diffusers' FlowMatchEulerDiscreteScheduler
// schedule in float64 from its definition (scheduling_flow_match_euler_discrete.py):
//
//	__init__:       σ_train = (N, …, 1)/N, statically shifted unless dynamic;
//	                σ_max = σ_train[0], σ_min = σ_train[−1]
//	set_timesteps:  u_i = σ_max + (σ_min − σ_max)·i/(n−1)
//	                σ_i = shift(u_i)            static: s·u/(1+(s−1)u)
//	                                            exponential: eᵘ/(eᵘ + 1/u − 1)
//	                                            linear:      μ/(μ + 1/u − 1)
//	                shift_terminal: σ ← 1 − (1−σ)·(1−term)/(1−σ_last)
//	                timesteps = σ·N; sigmas += [0]
func flowMatchReference(c scheduler.FlowMatchEulerConfig, n int, sigmaMin *float64) (sigmas, timesteps []float64) {
	T := float64(c.NumTrainTimesteps)
	shift := func(u float64) float64 {
		switch {
		case !c.UseDynamicShifting:
			return c.Shift * u / (1 + (c.Shift-1)*u)
		case c.TimeShiftType == scheduler.TimeShiftLinear:
			return c.Mu / (c.Mu + 1/u - 1)
		default:
			return math.Exp(c.Mu) / (math.Exp(c.Mu) + 1/u - 1)
		}
	}
	hi, lo := 1.0, 1/T
	if !c.UseDynamicShifting {
		hi, lo = shift(hi), shift(lo)
	}
	if sigmaMin != nil {
		lo = *sigmaMin
	}
	for i := range n {
		u := hi
		if n > 1 {
			u = hi + (lo-hi)*float64(i)/float64(n-1)
		}
		sigmas = append(sigmas, shift(u))
	}
	if c.ShiftTerminal != 0 {
		scale := (1 - sigmas[n-1]) / (1 - c.ShiftTerminal)
		for i := range sigmas {
			sigmas[i] = 1 - (1-sigmas[i])/scale
		}
	}
	for _, s := range sigmas {
		timesteps = append(timesteps, s*T)
	}
	return append(sigmas, 0), timesteps
}

func TestFlowMatchEulerScheduleMatchesFormula(t *testing.T) {
	zero := 0.0
	cfg := func(mod func(*scheduler.FlowMatchEulerConfig)) scheduler.FlowMatchEulerConfig {
		c := scheduler.DefaultFlowMatchEulerConfig()
		mod(&c)
		return c
	}
	tests := []struct {
		name     string
		cfg      scheduler.FlowMatchEulerConfig
		n        int
		sigmaMin *float64
	}{
		{"N4/shift1", cfg(func(c *scheduler.FlowMatchEulerConfig) {}), 4, nil},
		{"N4/shift3", cfg(func(c *scheduler.FlowMatchEulerConfig) { c.Shift = 3 }), 4, nil},
		{"N1/shift3", cfg(func(c *scheduler.FlowMatchEulerConfig) { c.Shift = 3 }), 1, nil},
		{"N28/shift3", cfg(func(c *scheduler.FlowMatchEulerConfig) { c.Shift = 3 }), 28, nil},
		{"N50/shift7", cfg(func(c *scheduler.FlowMatchEulerConfig) { c.Shift = 7 }), 50, nil},
		{"N9/shift3/sigma_min0 (Z-Image)", cfg(func(c *scheduler.FlowMatchEulerConfig) { c.Shift = 3 }), 9, &zero},
		{"N28/dynamic/exp/mu1.15", cfg(func(c *scheduler.FlowMatchEulerConfig) { c.UseDynamicShifting, c.Mu = true, 1.15 }), 28, nil},
		{"N8/dynamic/linear/mu2", cfg(func(c *scheduler.FlowMatchEulerConfig) {
			c.UseDynamicShifting, c.Mu, c.TimeShiftType = true, 2, scheduler.TimeShiftLinear
		}), 8, nil},
		{"N20/shift3/terminal0.1", cfg(func(c *scheduler.FlowMatchEulerConfig) { c.Shift, c.ShiftTerminal = 3, 0.1 }), 20, nil},
		{"N10/T100/shift2", cfg(func(c *scheduler.FlowMatchEulerConfig) { c.NumTrainTimesteps, c.Shift = 100, 2 }), 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scheduler.NewFlowMatchEuler(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.sigmaMin != nil {
				if err := s.SetSigmaMin(*tc.sigmaMin); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.SetTimesteps(tc.n); err != nil {
				t.Fatal(err)
			}
			wantS, wantT := flowMatchReference(tc.cfg, tc.n, tc.sigmaMin)
			// Sigmas are float32 values (half an ulp below 1 is 3e-8), and
			// σ_max/σ_min come from float32 arithmetic; timesteps are a
			// float32 product near 1000 (ulp 6e-5).
			closeAll(t, "sigmas", s.Sigmas(), wantS, 2e-7)
			closeAll(t, "timesteps", s.Timesteps(), wantT, 2e-4)
			for i, v := range s.Sigmas() {
				if v != float64(float32(v)) {
					t.Errorf("sigma[%d] = %v is not a float32 value", i, v)
				}
			}
		})
	}
}

func TestFlowMatchEulerHandValues(t *testing.T) {
	sched := func(t *testing.T, shift float64, mod func(*scheduler.FlowMatchEuler)) *scheduler.FlowMatchEuler {
		t.Helper()
		c := scheduler.DefaultFlowMatchEulerConfig()
		c.Shift = shift
		s, err := scheduler.NewFlowMatchEuler(c)
		if err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			mod(s)
		}
		return s
	}
	t.Run("N4/shift1", func(t *testing.T) {
		// σ_min = 1/1000, spacing (1 − 0.001)/3 = 0.333: 1, 0.667, 0.334, 0.001.
		s := sched(t, 1, nil)
		if err := s.SetTimesteps(4); err != nil {
			t.Fatal(err)
		}
		closeAll(t, "sigmas", s.Sigmas(), []float64{1, 0.667, 0.334, 0.001, 0}, 1e-7)
		closeAll(t, "timesteps", s.Timesteps(), []float64{1000, 667, 334, 1}, 1e-4)
	})
	t.Run("N4/shift3", func(t *testing.T) {
		// σ_min = shift(1/1000) = 3·0.001/(1 + 2·0.001) = 0.003/1.002 = 1/334.
		// u = linspace(1, 1/334, 4) = 1, 223/334, 112/334, 1/334, shifted again:
		//   3·(223/334)/(1 + 2·223/334) = 669/780 = 223/260 = 0.857692…
		//   3·(112/334)/(1 + 2·112/334) = 336/558 = 56/93   = 0.602150…
		//   3·(1/334)/(1 + 2/334)       = 3/336   = 1/112   = 0.008928…
		// (the double shift: shift₃∘shift₃ = shift₉, and 9·0.001/1.008 = 1/112).
		s := sched(t, 3, nil)
		if err := s.SetTimesteps(4); err != nil {
			t.Fatal(err)
		}
		closeAll(t, "sigmas", s.Sigmas(), []float64{1, 223.0 / 260, 56.0 / 93, 1.0 / 112, 0}, 1e-7)
	})
	t.Run("N4/shift3/sigma_min0 (Z-Image)", func(t *testing.T) {
		// u = 1, 2/3, 1/3, 0; 3·(2/3)/(1 + 4/3) = 6/7; 3·(1/3)/(1 + 2/3) = 0.6.
		s := sched(t, 3, func(s *scheduler.FlowMatchEuler) {
			if err := s.SetSigmaMin(0); err != nil {
				t.Fatal(err)
			}
		})
		if err := s.SetTimesteps(4); err != nil {
			t.Fatal(err)
		}
		closeAll(t, "sigmas", s.Sigmas(), []float64{1, 6.0 / 7, 0.6, 0, 0}, 1e-7)
		closeAll(t, "timesteps", s.Timesteps(), []float64{1000, 6000.0 / 7, 600, 0}, 1e-4)
	})
	t.Run("sigmas=[0.5]/shift3", func(t *testing.T) {
		// 3·0.5/(1 + 2·0.5) = 1.5/2 = 0.75 → timestep 750.
		s := sched(t, 3, nil)
		if err := s.SetSigmas([]float64{0.5}); err != nil {
			t.Fatal(err)
		}
		closeAll(t, "sigmas", s.Sigmas(), []float64{0.75, 0}, 0)
		closeAll(t, "timesteps", s.Timesteps(), []float64{750}, 0)
	})
	t.Run("N4/dynamic/mu=ln3", func(t *testing.T) {
		// e^μ = 3, and 3/(3 + 1/u − 1) = 3u/(1 + 2u): shift 3 applied once to
		// linspace(1, 0.001, 4) = 1, 0.667, 0.334, 0.001 (no shift in __init__):
		//   3·0.667/(1 + 1.334) = 2.001/2.334, 3·0.334/1.668 = 1.002/1.668,
		//   3·0.001/1.002 = 1/334.
		c := scheduler.DefaultFlowMatchEulerConfig()
		c.UseDynamicShifting, c.Mu = true, math.Log(3)
		s, err := scheduler.NewFlowMatchEuler(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(4); err != nil {
			t.Fatal(err)
		}
		closeAll(t, "sigmas", s.Sigmas(), []float64{1, 2.001 / 2.334, 1.002 / 1.668, 1.0 / 334, 0}, 1e-7)
	})
}

func TestFlowMatchEulerStepFormula(t *testing.T) {
	c := scheduler.DefaultFlowMatchEulerConfig()
	c.Shift = 3
	s, err := scheduler.NewFlowMatchEuler(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(8); err != nil {
		t.Fatal(err)
	}
	sig := s.Sigmas()
	for _, step := range []int{0, 3, 7} {
		x := normals(uint64(step), 257)
		v := normals(uint64(step)+100, 257)
		want := make([]float64, len(x))
		for i := range x {
			// prev = sample + (σ_next − σ)·model_output
			want[i] = float64(x[i]) + (sig[step+1]-sig[step])*float64(v[i])
		}
		if err := s.Step(v, x, step); err != nil {
			t.Fatal(err)
		}
		closeSample(t, "step", x, want, 1e-6)
	}
}

// A model whose velocity is exactly ε − x₀ moves x along the straight line
// x_σ = (1−σ)x₀ + σε, which Euler follows exactly: from pure noise the loop
// must end at x₀.
func TestFlowMatchEulerPerfectModelReachesData(t *testing.T) {
	cfgs := map[string]func() (*scheduler.FlowMatchEuler, int){
		"shift1/N4": func() (*scheduler.FlowMatchEuler, int) {
			s, _ := scheduler.NewFlowMatchEuler(scheduler.DefaultFlowMatchEulerConfig())
			return s, 4
		},
		"shift3/N28": func() (*scheduler.FlowMatchEuler, int) {
			c := scheduler.DefaultFlowMatchEulerConfig()
			c.Shift = 3
			s, _ := scheduler.NewFlowMatchEuler(c)
			return s, 28
		},
		"Z-Image/N9": func() (*scheduler.FlowMatchEuler, int) {
			c := scheduler.DefaultFlowMatchEulerConfig()
			c.Shift = 3
			s, _ := scheduler.NewFlowMatchEuler(c)
			_ = s.SetSigmaMin(0)
			return s, 9
		},
	}
	for name, mk := range cfgs {
		t.Run(name, func(t *testing.T) {
			s, n := mk()
			if err := s.SetTimesteps(n); err != nil {
				t.Fatal(err)
			}
			const size = 1000
			x0, eps := normals(1, size), normals(2, size)
			x := append([]float32(nil), eps...) // σ₀ = 1: pure noise
			if s.Sigmas()[0] != 1 {
				t.Fatalf("σ₀ = %v, want 1", s.Sigmas()[0])
			}
			v := make([]float32, size)
			for i := range v {
				v[i] = eps[i] - x0[i]
			}
			for step := range n {
				if err := s.Step(v, x, step); err != nil {
					t.Fatal(err)
				}
			}
			if d := maxAbsDiff32(x, to64(x0)); d > 1e-5 {
				t.Errorf("max |x − x₀| = %.3g after %d steps, want ≤ 1e-5", d, n)
			}
		})
	}
}

// On Gaussian data the exact velocity is curved in σ, so Euler has a
// first-order error: doubling the steps must about halve it.
func TestFlowMatchEulerConvergesFirstOrder(t *testing.T) {
	const size = 512
	g := newGaussianFlow(size)
	eps := normals(3, size)
	errAt := func(n int) float64 {
		s, err := scheduler.NewFlowMatchEuler(scheduler.DefaultFlowMatchEulerConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(n); err != nil {
			t.Fatal(err)
		}
		sig := s.Sigmas()
		x, end := g.start(eps, sig[0])
		for i := range n {
			if err := s.Step(g.velocity(x, sig[i]), x, i); err != nil {
				t.Fatal(err)
			}
		}
		return maxAbsDiff32(x, end)
	}
	e20, e40, e80 := errAt(20), errAt(40), errAt(80)
	t.Logf("Euler max error: N=20 %.3g, N=40 %.3g, N=80 %.3g", e20, e40, e80)
	for _, r := range []float64{e20 / e40, e40 / e80} {
		if r < 1.6 || r > 2.6 {
			t.Errorf("error ratio on doubling N = %.3g, want ≈ 2 (first order)", r)
		}
	}
}

func TestFlowMatchEulerErrors(t *testing.T) {
	bad := []scheduler.FlowMatchEulerConfig{
		{NumTrainTimesteps: 0, Shift: 1},
		{NumTrainTimesteps: 1000, Shift: 0},
		{NumTrainTimesteps: 1000, Shift: math.NaN()},
		{NumTrainTimesteps: 1000, Shift: 1, TimeShiftType: "cubic"},
		{NumTrainTimesteps: 1000, Shift: 1, UseDynamicShifting: true, TimeShiftType: scheduler.TimeShiftLinear, Mu: 0},
		{NumTrainTimesteps: 1000, Shift: 1, UseDynamicShifting: true, Mu: 1000},
		{NumTrainTimesteps: 1000, Shift: 1, ShiftTerminal: 1},
	}
	for i, c := range bad {
		if _, err := scheduler.NewFlowMatchEuler(c); !errors.Is(err, scheduler.ErrConfig) {
			t.Errorf("config %d %+v: err = %v, want ErrConfig", i, c, err)
		}
	}
	s, err := scheduler.NewFlowMatchEuler(scheduler.DefaultFlowMatchEulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{-0.1, 1, 2, math.NaN()} {
		if err := s.SetSigmaMin(v); !errors.Is(err, scheduler.ErrConfig) {
			t.Errorf("SetSigmaMin(%v): err = %v, want ErrConfig", v, err)
		}
	}
	for _, sig := range [][]float64{nil, {}, {0.5, 1.5}, {-0.1}, {math.NaN()}} {
		if err := s.SetSigmas(sig); !errors.Is(err, scheduler.ErrConfig) {
			t.Errorf("SetSigmas(%v): err = %v, want ErrConfig", sig, err)
		}
	}
}
