package scheduler

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Scheduler is one sampler of a denoise loop. A value serves one generation:
// create it with its New function, call SetTimesteps, then call Step once per
// step with the model output for that step. Values are not safe for
// concurrent use; two generations use two values.
type Scheduler interface {
	// SetTimesteps builds the schedule for n inference steps (n >= 1) and
	// resets any multistep state.
	SetTimesteps(n int) error
	// Timesteps returns the model's timestep input for each step (diffusers'
	// `timesteps`, in [0, num_train_timesteps]); a fresh copy.
	Timesteps() []float64
	// Sigmas returns the noise level of each step plus the final one
	// (length n+1), or nil for a scheduler without sigmas (DDIM); a copy.
	Sigmas() []float64
	// InitNoiseSigma is the standard deviation of the initial noise.
	InitNoiseSigma() float64
	// ScaleModelInput scales sample in place before the model sees it at
	// step. It is the identity for the schedulers here and is kept so the
	// denoise loop can treat every scheduler alike.
	ScaleModelInput(sample []float32, step int)
	// Step advances sample in place from step to step+1, given the model's
	// output at step. modelOutput is only read.
	Step(modelOutput, sample []float32, step int) error
}

// Errors returned by the schedulers, for errors.Is; messages add the details.
var (
	// ErrConfig reports an invalid configuration or argument (n < 1, an
	// unknown schedule name, a shift <= 0, ...).
	ErrConfig = errors.New("scheduler: invalid configuration")
	// ErrNotSet reports a Step before SetTimesteps.
	ErrNotSet = errors.New("scheduler: timesteps not set")
	// ErrStep reports a step index out of range, or out of order for a
	// multistep scheduler.
	ErrStep = errors.New("scheduler: bad step")
	// ErrLength reports slices of different lengths, or a latent whose
	// length changed within one generation.
	ErrLength = errors.New("scheduler: length mismatch")
)

// Names of the options, spelled as in diffusers' scheduler configs so a
// scheduler_config.json maps onto them directly.
type (
	// PredictionType is what the model predicts.
	PredictionType string
	// TimestepSpacing is how DDIM spreads inference steps over the training
	// timesteps (Table 2 of Lin et al. 2023, "Common Diffusion Noise
	// Schedules and Sample Steps are Flawed").
	TimestepSpacing string
	// BetaSchedule is the training noise schedule of a DDPM-type model.
	BetaSchedule string
	// SolverType is UniPC's B(h).
	SolverType string
	// TimeShiftType is the resolution-dependent shift of flow matching.
	TimeShiftType string
	// FinalSigmas is the sigma appended after the last UniPC step.
	FinalSigmas string
)

const (
	Epsilon        PredictionType = "epsilon"         // ε, the added noise
	VPrediction    PredictionType = "v_prediction"    // v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans & Ho 2022)
	SamplePred     PredictionType = "sample"          // x₀ itself
	FlowPrediction PredictionType = "flow_prediction" // velocity ε − x₀ of x_σ = (1−σ)x₀ + σε

	SpacingLinspace TimestepSpacing = "linspace"
	SpacingLeading  TimestepSpacing = "leading"
	SpacingTrailing TimestepSpacing = "trailing"

	BetaLinear       BetaSchedule = "linear"
	BetaScaledLinear BetaSchedule = "scaled_linear"

	BH1 SolverType = "bh1" // B(h) = h
	BH2 SolverType = "bh2" // B(h) = eʰ − 1

	TimeShiftExponential TimeShiftType = "exponential" // eᵘ / (eᵘ + (1/σ − 1))
	TimeShiftLinear      TimeShiftType = "linear"      // μ / (μ + (1/σ − 1))

	FinalSigmaZero FinalSigmas = "zero"      // end at σ = 0: the last step returns x₀
	FinalSigmaMin  FinalSigmas = "sigma_min" // end at the last step's σ (a no-op last step)
)

// NoiseSource fills slices with independent standard-normal samples. DDIM
// with eta > 0 draws len(sample) values from it per step, in step order.
type NoiseSource interface {
	FillNormal(dst []float32)
}

// checkStep validates the common Step arguments.
func checkStep(name string, n int, modelOutput, sample []float32, step int) error {
	if n == 0 {
		return fmt.Errorf("%s: Step before SetTimesteps: %w", name, ErrNotSet)
	}
	if step < 0 || step >= n {
		return fmt.Errorf("%s: step %d out of range [0, %d): %w", name, step, n, ErrStep)
	}
	if len(modelOutput) != len(sample) {
		return fmt.Errorf("%s: model output has %d values, sample %d: %w", name, len(modelOutput), len(sample), ErrLength)
	}
	return nil
}

func checkSteps(name string, n int) error {
	if n < 1 {
		return fmt.Errorf("%s: %d inference steps, want at least 1: %w", name, n, ErrConfig)
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// linspace is numpy.linspace(start, stop, num) with endpoint=True, computed
// the way NumPy does (y[i] = i·step + start, y[num−1] = stop exactly), so
// schedules round exactly as in diffusers.
func linspace(start, stop float64, num int) []float64 {
	y := make([]float64, num)
	if num == 1 {
		y[0] = start
		return y
	}
	step := (stop - start) / float64(num-1)
	for i := range y {
		// The conversion rounds the product, so the compiler cannot fuse
		// the multiply and add into an FMA that NumPy does not do.
		y[i] = float64(float64(i)*step) + start
	}
	y[num-1] = stop
	return y
}

// arange is numpy.arange(start, stop, step) for float arguments: the length
// is ceil((stop−start)/step) and y[i] = start + i·delta, where delta is
// (start+step) − start as NumPy's fill computes it.
func arange(start, stop, step float64) []float64 {
	n := int(math.Ceil((stop - start) / step))
	if n <= 0 {
		return nil
	}
	y := make([]float64, n)
	next := start + step
	delta := next - start
	for i := range y {
		y[i] = start + float64(float64(i)*delta)
	}
	y[0] = start
	if n > 1 {
		y[1] = next
	}
	return y
}

func clone(s []float64) []float64 {
	if s == nil {
		return nil
	}
	return append([]float64(nil), s...)
}

// parallelMin is the least number of elements worth a goroutine: below it
// the update runs on the calling goroutine.
const parallelMin = 1 << 16

// parallelFor runs fn over [0, n) in contiguous chunks on up to GOMAXPROCS
// goroutines and returns when all are done. Every update here is
// elementwise, so the result does not depend on the split.
func parallelFor(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/parallelMin)
	if workers <= 1 {
		fn(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
