package scheduler

import (
	"fmt"
	"math"
)

// FlowMatchEulerConfig configures FlowMatchEuler. The fields are diffusers'
// FlowMatchEulerDiscreteScheduler config keys; DefaultFlowMatchEulerConfig
// returns diffusers' defaults.
type FlowMatchEulerConfig struct {
	// NumTrainTimesteps is num_train_timesteps (1000): timestep = σ·N.
	NumTrainTimesteps int
	// Shift is the static shift (shift, default 1): σ' = s·σ / (1 + (s−1)·σ).
	// Ignored when UseDynamicShifting is set.
	Shift float64
	// UseDynamicShifting (use_dynamic_shifting) replaces the static shift by
	// the resolution-dependent time shift with exponent Mu.
	UseDynamicShifting bool
	// Mu is the time-shift exponent, diffusers' set_timesteps(mu=...); see
	// CalculateShift. Used only with UseDynamicShifting.
	Mu float64
	// TimeShiftType (time_shift_type) is TimeShiftExponential (default):
	// σ' = eᵘ / (eᵘ + (1/σ − 1)), or TimeShiftLinear: σ' = μ / (μ + (1/σ − 1)).
	TimeShiftType TimeShiftType
	// ShiftTerminal (shift_terminal; 0 = off) stretches the shifted schedule
	// so that its last sigma is exactly this value (LTX-Video).
	ShiftTerminal float64
}

// DefaultFlowMatchEulerConfig returns diffusers' defaults: 1000 training
// timesteps, shift 1 (no shift), static shifting, exponential time shift.
func DefaultFlowMatchEulerConfig() FlowMatchEulerConfig {
	return FlowMatchEulerConfig{NumTrainTimesteps: 1000, Shift: 1, TimeShiftType: TimeShiftExponential}
}

// CalculateShift is the resolution-dependent μ that diffusers' flow-matching
// pipelines (Flux, Z-Image, ...) pass to set_timesteps: μ grows linearly
// from baseShift at baseSeqLen image tokens to maxShift at maxSeqLen
// (diffusers' defaults: 256, 4096, 0.5, 1.15).
func CalculateShift(imageSeqLen, baseSeqLen, maxSeqLen int, baseShift, maxShift float64) float64 {
	m := (maxShift - baseShift) / float64(maxSeqLen-baseSeqLen)
	b := baseShift - m*float64(baseSeqLen)
	return float64(imageSeqLen)*m + b
}

// FlowMatchEuler is the Euler sampler of rectified-flow / flow-matching
// models, diffusers' FlowMatchEulerDiscreteScheduler
// (scheduling_flow_match_euler_discrete.py); Z-Image, Flux and SD3 use it.
//
// The model sees x_σ = (1−σ)·x₀ + σ·ε and predicts the velocity
// v = dx/dσ = ε − x₀, so one Euler step from σᵢ to σᵢ₊₁ is
//
//	x ← x + (σᵢ₊₁ − σᵢ)·v
//
// which is exact when v is (it is constant along the straight path).
//
// The schedule is diffusers' set_timesteps(n), including its quirks:
//   - σ_max and σ_min come from the training schedule σ = (N, N−1, …, 1)/N
//     with the static shift already applied (in float32, as the constructor
//     does in torch); set_timesteps then spaces n values linearly between
//     them and applies the shift again. With Shift s ≠ 1 the last sigma is
//     therefore shift(shift(1/N)), not shift(1/N). Dynamic shifting skips the
//     first shift. SetSigmaMin overrides σ_min, as Z-Image's pipeline does
//     with scheduler.sigma_min = 0.
//   - sigmas are stored in float32 (reported here as float64) and
//     timesteps are σ·N computed in float32; a final σ = 0 is appended.
type FlowMatchEuler struct {
	cfg      FlowMatchEulerConfig
	sigmaMax float64
	sigmaMin float64

	sigmas    []float64 // n+1 values, each a float32 value
	sigmas32  []float32
	timesteps []float64 // n values
}

var _ Scheduler = (*FlowMatchEuler)(nil)

// NewFlowMatchEuler validates cfg and returns a scheduler; call SetTimesteps
// (or SetSigmas) before Step.
func NewFlowMatchEuler(cfg FlowMatchEulerConfig) (*FlowMatchEuler, error) {
	const name = "flow match euler"
	if cfg.NumTrainTimesteps < 1 {
		return nil, fmt.Errorf("%s: num_train_timesteps %d < 1: %w", name, cfg.NumTrainTimesteps, ErrConfig)
	}
	if !finite(cfg.Shift) || cfg.Shift <= 0 {
		return nil, fmt.Errorf("%s: shift %v, want a finite value > 0: %w", name, cfg.Shift, ErrConfig)
	}
	if cfg.TimeShiftType == "" {
		cfg.TimeShiftType = TimeShiftExponential
	}
	switch cfg.TimeShiftType {
	case TimeShiftExponential:
		if cfg.UseDynamicShifting && !finite(math.Exp(cfg.Mu)) {
			return nil, fmt.Errorf("%s: mu %v overflows exp: %w", name, cfg.Mu, ErrConfig)
		}
	case TimeShiftLinear:
		if cfg.UseDynamicShifting && (!finite(cfg.Mu) || cfg.Mu <= 0) {
			return nil, fmt.Errorf("%s: linear time shift needs mu > 0, got %v: %w", name, cfg.Mu, ErrConfig)
		}
	default:
		return nil, fmt.Errorf("%s: time_shift_type %q, want %q or %q: %w", name, cfg.TimeShiftType, TimeShiftExponential, TimeShiftLinear, ErrConfig)
	}
	if !finite(cfg.ShiftTerminal) || cfg.ShiftTerminal < 0 || cfg.ShiftTerminal >= 1 {
		return nil, fmt.Errorf("%s: shift_terminal %v, want 0 (off) or in (0, 1): %w", name, cfg.ShiftTerminal, ErrConfig)
	}

	// The training schedule's ends, as the constructor computes them in
	// float32 torch: σ = timesteps / N for timesteps N and 1, shifted.
	n32 := float32(cfg.NumTrainTimesteps)
	hi, lo := float32(1), float32(1)/n32
	if !cfg.UseDynamicShifting {
		hi, lo = shiftF32(cfg.Shift, hi), shiftF32(cfg.Shift, lo)
	}
	return &FlowMatchEuler{cfg: cfg, sigmaMax: float64(hi), sigmaMin: float64(lo)}, nil
}

// shiftF32 is s·σ / (1 + (s−1)·σ) in float32 arithmetic, as torch computes it
// on the float32 training sigmas. The conversions keep each operation
// rounded (no fused multiply-add).
func shiftF32(s float64, sigma float32) float32 {
	num := float32(float32(s) * sigma)
	den := 1 + float32(float32(s-1)*sigma)
	return num / den
}

// SetSigmaMin replaces σ_min, the low end of the linear spacing that
// SetTimesteps shifts; it takes effect at the next SetTimesteps. Z-Image's
// pipeline sets 0, so its schedule runs from 1 to exactly 0.
func (s *FlowMatchEuler) SetSigmaMin(v float64) error {
	if !finite(v) || v < 0 || v >= s.sigmaMax {
		return fmt.Errorf("flow match euler: sigma_min %v, want in [0, %v): %w", v, s.sigmaMax, ErrConfig)
	}
	s.sigmaMin = v
	return nil
}

// SetTimesteps builds the schedule of diffusers' set_timesteps(n): n sigmas
// spaced linearly from σ_max to σ_min in timestep units, shifted, then 0.
func (s *FlowMatchEuler) SetTimesteps(n int) error {
	if err := checkSteps("flow match euler", n); err != nil {
		return err
	}
	T := float64(s.cfg.NumTrainTimesteps)
	t := linspace(s.sigmaMax*T, s.sigmaMin*T, n)
	sig := make([]float64, n)
	for i, v := range t {
		sig[i] = v / T
	}
	s.finish(sig)
	return nil
}

// SetSigmas builds the schedule from explicit unshifted sigmas, diffusers'
// set_timesteps(sigmas=...): the values are rounded to float32 and then
// shifted like the linear spacing; a final 0 is appended. Each must lie in
// [0, 1].
func (s *FlowMatchEuler) SetSigmas(sigmas []float64) error {
	if err := checkSteps("flow match euler", len(sigmas)); err != nil {
		return err
	}
	sig := make([]float64, len(sigmas))
	for i, v := range sigmas {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("flow match euler: sigma[%d] = %v, want in [0, 1]: %w", i, v, ErrConfig)
		}
		sig[i] = float64(float32(v))
	}
	s.finish(sig)
	return nil
}

// finish shifts sig (float64, unshifted) and stores sigmas and timesteps.
func (s *FlowMatchEuler) finish(sig []float64) {
	c := s.cfg
	for i, v := range sig {
		switch {
		case !c.UseDynamicShifting:
			sig[i] = c.Shift * v / (1 + (c.Shift-1)*v)
		case c.TimeShiftType == TimeShiftLinear:
			sig[i] = c.Mu / (c.Mu + (1/v - 1))
		default:
			e := math.Exp(c.Mu)
			sig[i] = e / (e + (1/v - 1))
		}
	}
	if c.ShiftTerminal != 0 {
		// stretch_shift_to_terminal: scale 1−σ so the last value becomes
		// 1 − shift_terminal.
		scale := (1 - sig[len(sig)-1]) / (1 - c.ShiftTerminal)
		for i, v := range sig {
			sig[i] = 1 - (1-v)/scale
		}
	}
	n := len(sig)
	s.sigmas32 = make([]float32, n+1)
	s.sigmas = make([]float64, n+1)
	s.timesteps = make([]float64, n)
	T := float32(c.NumTrainTimesteps)
	for i, v := range sig {
		s.sigmas32[i] = float32(v)
		s.sigmas[i] = float64(s.sigmas32[i])
		s.timesteps[i] = float64(s.sigmas32[i] * T)
	}
}

// Timesteps returns σ·num_train_timesteps per step (float32 values).
func (s *FlowMatchEuler) Timesteps() []float64 { return clone(s.timesteps) }

// Sigmas returns the n+1 sigmas, the last one 0.
func (s *FlowMatchEuler) Sigmas() []float64 { return clone(s.sigmas) }

// InitNoiseSigma is 1: generation starts from x₁ = ε.
func (s *FlowMatchEuler) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput is the identity.
func (s *FlowMatchEuler) ScaleModelInput(sample []float32, step int) {}

// Step applies x ← x + (σᵢ₊₁ − σᵢ)·v in place, in float32 as diffusers does.
// It keeps no state: any step may be taken in any order.
func (s *FlowMatchEuler) Step(modelOutput, sample []float32, step int) error {
	if err := checkStep("flow match euler", len(s.timesteps), modelOutput, sample, step); err != nil {
		return err
	}
	dt := s.sigmas32[step+1] - s.sigmas32[step]
	parallelFor(len(sample), func(lo, hi int) {
		x, v := sample[lo:hi], modelOutput[lo:hi]
		for i := range x {
			x[i] += float32(dt * v[i])
		}
	})
	return nil
}
