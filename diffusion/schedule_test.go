package diffusion

import (
	"math"
	"testing"
)

// TestPresetSchedules: the loop's samplers give the schedules of the
// pipelines they follow, recomputed here from the formulas in float64.
func TestPresetSchedules(t *testing.T) {
	shift := func(s, sigma float64) float64 { return s * sigma / (1 + (s-1)*sigma) }
	t.Run("wan unipc", func(t *testing.T) {
		// diffusers' UniPC with flow sigmas: σ = 1 − linspace(1, 1/N, n+1),
		// reversed without its trailing 0, shifted; timestep = ⌊σ·N⌋.
		pr, _ := LookupPreset("tiny-wan2.2-t2v")
		for _, n := range []int{2, 4, 40} {
			p := pr.Defaults
			p.Steps = n
			s, err := NewScheduler(pr, p)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Timesteps()
			for i := range n {
				a := 1 + float64(n-i)*(1.0/1000-1)/float64(n) // linspace(1, 1/N, n+1)[n−i]
				want := math.Floor(shift(p.Shift, 1-a) * 1000)
				if got[i] != want {
					t.Errorf("%d steps: timestep %d = %v, want %v", n, i, got[i], want)
				}
			}
		}
	})
	t.Run("z-image euler", func(t *testing.T) {
		// Flow-matching Euler with σ_min = 0: linspace(σ_max, 0, n), shifted.
		pr, _ := LookupPreset("tiny-z-image")
		p := pr.Defaults
		p.Steps = 4
		s, err := NewScheduler(pr, p)
		if err != nil {
			t.Fatal(err)
		}
		want := []float64{1000, 1000 * 6.0 / 7, 600, 0} // shift 3 of 1, 2/3, 1/3, 0
		for i, w := range want {
			if g := s.Timesteps()[i]; math.Abs(g-w) > 1e-3 {
				t.Errorf("timestep %d = %v, want %v", i, g, w)
			}
		}
		if sig := s.Sigmas(); len(sig) != 5 || sig[3] != 0 || sig[4] != 0 {
			t.Errorf("sigmas %v: the last step is zero-length", sig)
		}
	})
}
