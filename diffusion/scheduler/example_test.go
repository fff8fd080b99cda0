package scheduler_test

import (
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/diffusion/scheduler"
)

// Z-Image's schedule: static shift 3 and, as its pipeline sets,
// sigma_min = 0, so the last step's sigma is exactly 0.
func ExampleFlowMatchEuler() {
	cfg := scheduler.DefaultFlowMatchEulerConfig()
	cfg.Shift = 3
	s, err := scheduler.NewFlowMatchEuler(cfg)
	if err != nil {
		panic(err)
	}
	if err := s.SetSigmaMin(0); err != nil {
		panic(err)
	}
	if err := s.SetTimesteps(4); err != nil {
		panic(err)
	}
	fmt.Printf("sigmas    %.4g\n", s.Sigmas())
	fmt.Printf("timesteps %.4g\n", s.Timesteps())
	// Output:
	// sigmas    [1 0.8571 0.6 0 0]
	// timesteps [1000 857.1 600 0]
}

// Wan 2.1 at 720p: UniPC on flow sigmas with shift 5.
func ExampleFlowUniPC() {
	s, err := scheduler.NewFlowUniPC(scheduler.WanFlowUniPCConfig(5))
	if err != nil {
		panic(err)
	}
	if err := s.SetTimesteps(5); err != nil {
		panic(err)
	}
	fmt.Println("timesteps", s.Timesteps())
	fmt.Printf("sigmas    %.4f\n", s.Sigmas())
	// Output:
	// timesteps [999 952 882 768 555]
	// sigmas    [0.9998 0.9522 0.8821 0.7689 0.5552 0.0000]
}

// Stable Diffusion 1.x's DDIM: leading spacing with steps_offset 1.
func ExampleDDIM() {
	s, err := scheduler.NewDDIM(scheduler.StableDiffusionDDIMConfig())
	if err != nil {
		panic(err)
	}
	if err := s.SetTimesteps(10); err != nil {
		panic(err)
	}
	fmt.Println(s.Timesteps())
	// Output:
	// [901 801 701 601 501 401 301 201 101 1]
}

// A denoise loop: the model here is a perfect flow model for a known x₀
// (velocity ε − x₀), so the loop must end at x₀.
func ExampleScheduler() {
	x0 := []float32{0.5, -1, 2}
	noise := []float32{1.2, 0.3, -0.7}

	var s scheduler.Scheduler
	s, err := scheduler.NewFlowUniPC(scheduler.WanFlowUniPCConfig(3))
	if err != nil {
		panic(err)
	}
	if err := s.SetTimesteps(8); err != nil {
		panic(err)
	}
	sigma0 := s.Sigmas()[0]
	latent := make([]float32, len(noise))
	for i := range latent { // x at σ₀ = (1−σ₀)x₀ + σ₀ε
		latent[i] = float32((1-sigma0)*float64(x0[i]) + sigma0*float64(noise[i]))
	}
	velocity := make([]float32, len(noise))
	for i := range s.Timesteps() {
		for j := range velocity {
			velocity[j] = noise[j] - x0[j] // model(latent, timestep)
		}
		if err := s.Step(velocity, latent, i); err != nil {
			panic(err)
		}
	}
	worst := 0.0
	for j := range latent {
		worst = math.Max(worst, math.Abs(float64(latent[j]-x0[j])))
	}
	fmt.Println("reached x0:", worst < 1e-5)
	// Output:
	// reached x0: true
}
