package scheduler_test

import (
	"errors"
	"testing"

	"github.com/omniflow-go/omniflow/diffusion/scheduler"
)

// every returns a fresh value of each scheduler, without timesteps.
func every(t *testing.T) map[string]scheduler.Scheduler {
	t.Helper()
	fm, err := scheduler.NewFlowMatchEuler(scheduler.DefaultFlowMatchEulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	up, err := scheduler.NewFlowUniPC(scheduler.WanFlowUniPCConfig(5))
	if err != nil {
		t.Fatal(err)
	}
	dd, err := scheduler.NewDDIM(scheduler.StableDiffusionDDIMConfig())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]scheduler.Scheduler{"flowmatch": fm, "unipc": up, "ddim": dd}
}

func TestSchedulerErrors(t *testing.T) {
	for name, s := range every(t) {
		t.Run(name, func(t *testing.T) {
			x := make([]float32, 16)
			if err := s.Step(x, x, 0); !errors.Is(err, scheduler.ErrNotSet) {
				t.Errorf("Step before SetTimesteps: err = %v, want ErrNotSet", err)
			}
			for _, n := range []int{0, -3} {
				if err := s.SetTimesteps(n); !errors.Is(err, scheduler.ErrConfig) {
					t.Errorf("SetTimesteps(%d): err = %v, want ErrConfig", n, err)
				}
			}
			if err := s.SetTimesteps(4); err != nil {
				t.Fatal(err)
			}
			for _, step := range []int{-1, 4, 100} {
				if err := s.Step(x, x, step); !errors.Is(err, scheduler.ErrStep) {
					t.Errorf("Step(%d) of 4: err = %v, want ErrStep", step, err)
				}
			}
			if err := s.Step(x[:15], x, 0); !errors.Is(err, scheduler.ErrLength) {
				t.Errorf("model output shorter than sample: err = %v, want ErrLength", err)
			}
			if err := s.Step(x, x[:3], 0); !errors.Is(err, scheduler.ErrLength) {
				t.Errorf("sample shorter than model output: err = %v, want ErrLength", err)
			}
			if err := s.Step(nil, nil, 0); err != nil {
				t.Errorf("empty latent: %v", err)
			}
		})
	}
}

func TestSchedulerContract(t *testing.T) {
	for name, s := range every(t) {
		t.Run(name, func(t *testing.T) {
			if s.Timesteps() != nil {
				t.Errorf("timesteps before SetTimesteps: %v", s.Timesteps())
			}
			if err := s.SetTimesteps(6); err != nil {
				t.Fatal(err)
			}
			ts := s.Timesteps()
			if len(ts) != 6 {
				t.Fatalf("%d timesteps, want 6", len(ts))
			}
			for i := range ts {
				if ts[i] < 0 || ts[i] > 1000 || (i > 0 && ts[i] >= ts[i-1]) {
					t.Errorf("timesteps %v: want decreasing values in [0, 1000]", ts)
					break
				}
			}
			ts[0] = -1
			if s.Timesteps()[0] == -1 {
				t.Error("Timesteps returns the scheduler's own slice")
			}
			if sig := s.Sigmas(); sig != nil {
				if len(sig) != 7 {
					t.Errorf("%d sigmas, want 7", len(sig))
				}
				sig[0] = -1
				if s.Sigmas()[0] == -1 {
					t.Error("Sigmas returns the scheduler's own slice")
				}
			} else if name != "ddim" {
				t.Error("no sigmas")
			}
			if s.InitNoiseSigma() != 1 {
				t.Errorf("InitNoiseSigma = %v, want 1", s.InitNoiseSigma())
			}
			x := normals(1, 32)
			y := append([]float32(nil), x...)
			s.ScaleModelInput(x, 0)
			for i := range x {
				if x[i] != y[i] {
					t.Fatal("ScaleModelInput is not the identity")
				}
			}
		})
	}
}

// Latents large enough to be split across goroutines give the same result
// as the same update run serially (the split is elementwise).
func TestParallelStepMatchesSerial(t *testing.T) {
	const big = 1<<18 + 37
	for name, s := range every(t) {
		t.Run(name, func(t *testing.T) {
			if err := s.SetTimesteps(5); err != nil {
				t.Fatal(err)
			}
			x := normals(1, big)
			v := normals(2, big)
			for i := range 3 {
				if err := s.Step(v, x, i); err != nil {
					t.Fatal(err)
				}
			}
			// The last 1000 values, stepped alone (serially), must match.
			ref := every(t)[name]
			if err := ref.SetTimesteps(5); err != nil {
				t.Fatal(err)
			}
			tail := normals(1, big)[big-1000:]
			vt := v[big-1000:]
			for i := range 3 {
				if err := ref.Step(vt, tail, i); err != nil {
					t.Fatal(err)
				}
			}
			for j := range tail {
				if tail[j] != x[big-1000+j] {
					t.Fatalf("element %d: parallel %v, serial %v", big-1000+j, x[big-1000+j], tail[j])
				}
			}
		})
	}
}

// No argument combination panics: bad ones are errors.
func FuzzStepArguments(f *testing.F) {
	f.Add(uint8(0), 4, 0, uint16(8), uint16(8))
	f.Add(uint8(1), 1, 0, uint16(0), uint16(0))
	f.Add(uint8(2), 3, 5, uint16(3), uint16(2))
	f.Add(uint8(1), 2, -1, uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, kind uint8, n, step int, lenOut, lenSample uint16) {
		var s scheduler.Scheduler
		switch kind % 3 {
		case 0:
			s, _ = scheduler.NewFlowMatchEuler(scheduler.DefaultFlowMatchEulerConfig())
		case 1:
			s, _ = scheduler.NewFlowUniPC(scheduler.WanFlowUniPCConfig(5))
		default:
			s, _ = scheduler.NewDDIM(scheduler.DefaultDDIMConfig())
		}
		n %= 2000
		if err := s.SetTimesteps(n); err != nil {
			if n >= 1 && n <= 1000 {
				t.Fatalf("SetTimesteps(%d): %v", n, err)
			}
			return
		}
		out := make([]float32, lenOut%4096)
		sample := make([]float32, lenSample%4096)
		for range 3 {
			_ = s.Step(out, sample, step)
			step++
		}
	})
}

func TestParallelDDIMNoiseMatchesSerial(t *testing.T) {
	const big = 1<<18 + 37
	c := scheduler.DefaultDDIMConfig()
	c.Eta = 0.8
	a := newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, 5)
	b := newDDIM(t, func(cc *scheduler.DDIMConfig) { *cc = c }, 5)
	x, v, z := normals(1, big), normals(2, big), normals(3, big)
	tail := append([]float32(nil), x[big-1000:]...)
	if err := a.StepNoise(v, x, z, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.StepNoise(v[big-1000:], tail, z[big-1000:], 1); err != nil {
		t.Fatal(err)
	}
	for j := range tail {
		if tail[j] != x[big-1000+j] {
			t.Fatalf("element %d: parallel %v, serial %v", big-1000+j, x[big-1000+j], tail[j])
		}
	}
}
