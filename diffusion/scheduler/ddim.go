package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// DDIMConfig configures DDIM. The fields are diffusers' DDIMScheduler config
// keys (plus Eta and Noise, which diffusers takes per step call);
// DefaultDDIMConfig returns diffusers' defaults except ClipSample.
type DDIMConfig struct {
	// NumTrainTimesteps is num_train_timesteps T (1000).
	NumTrainTimesteps int
	// BetaStart, BetaEnd and BetaSchedule define the training betas:
	// BetaLinear spaces β linearly from BetaStart to BetaEnd over T steps;
	// BetaScaledLinear spaces √β linearly and squares (Stable Diffusion:
	// 0.00085 to 0.012).
	BetaStart, BetaEnd float64
	BetaSchedule       BetaSchedule
	// ClipSample clamps the predicted x₀ to ±ClipSampleRange. Off here by
	// default (diffusers' class default is on; latent models turn it off).
	ClipSample      bool
	ClipSampleRange float64
	// SetAlphaToOne (set_alpha_to_one) makes the ᾱ after the last step 1,
	// so the last step returns the predicted x₀; otherwise it is ᾱ₀.
	SetAlphaToOne bool
	// StepsOffset (steps_offset) is added to "leading" timesteps.
	StepsOffset int
	// PredictionType is Epsilon, VPrediction or SamplePred.
	PredictionType PredictionType
	// TimestepSpacing is SpacingLeading, SpacingTrailing or SpacingLinspace.
	TimestepSpacing TimestepSpacing
	// Eta (η, in [0, 1]) weighs the fresh noise of each step: 0 is the
	// deterministic DDIM of the paper, 1 has DDPM's variance.
	Eta float64
	// Noise supplies that fresh noise when Eta > 0 and Step is used
	// (StepNoise takes it as an argument instead).
	Noise NoiseSource
}

// DefaultDDIMConfig returns diffusers' DDIMScheduler defaults (linear betas
// 0.0001 to 0.02 over 1000 steps, set_alpha_to_one, leading spacing,
// epsilon, eta 0), with ClipSample off.
func DefaultDDIMConfig() DDIMConfig {
	return DDIMConfig{
		NumTrainTimesteps: 1000,
		BetaStart:         0.0001,
		BetaEnd:           0.02,
		BetaSchedule:      BetaLinear,
		ClipSampleRange:   1,
		SetAlphaToOne:     true,
		PredictionType:    Epsilon,
		TimestepSpacing:   SpacingLeading,
	}
}

// StableDiffusionDDIMConfig returns what DDIMScheduler.from_config reads from
// a Stable Diffusion 1.x scheduler_config.json: scaled-linear betas 0.00085
// to 0.012, set_alpha_to_one off, steps_offset 1, clip_sample off, leading
// spacing, epsilon prediction.
func StableDiffusionDDIMConfig() DDIMConfig {
	c := DefaultDDIMConfig()
	c.BetaStart, c.BetaEnd, c.BetaSchedule = 0.00085, 0.012, BetaScaledLinear
	c.SetAlphaToOne = false
	c.StepsOffset = 1
	return c
}

// DDIM is the denoising diffusion implicit model sampler (Song, Meng and
// Ermon 2021, "Denoising Diffusion Implicit Models", arXiv:2010.02502),
// diffusers' DDIMScheduler (scheduling_ddim.py).
//
// With ᾱ_t = Π_{i≤t}(1 − β_i) the model sees x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε.
// From the model output it forms x̂₀ and ε̂ (epsilon: x̂₀ = (x − √(1−ᾱ_t)·ε)/√ᾱ_t;
// v: x̂₀ = √ᾱ_t·x − √(1−ᾱ_t)·v, ε̂ = √ᾱ_t·v + √(1−ᾱ_t)·x), then takes the
// paper's Eq. 12 with the σ_t(η) of Eq. 16:
//
//	σ_t = η·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev)
//	x_prev = √ᾱ_prev·x̂₀ + √(1 − ᾱ_prev − σ_t²)·ε̂ + σ_t·z,  z ~ N(0, I)
//
// where prev = t − T/n (integer division, for every spacing, as diffusers
// does) and ᾱ_prev for prev < 0 is 1 (SetAlphaToOne) or ᾱ₀.
//
// Betas and ᾱ are computed in float64 (diffusers holds them in float32);
// the per-element update is in float64, stored as float32.
type DDIM struct {
	cfg           DDIMConfig
	alphasCumprod []float64
	finalAlpha    float64

	timesteps []int
	ratio     int // T / n
	noise     []float32
}

var _ Scheduler = (*DDIM)(nil)

// NewDDIM validates cfg and returns a scheduler; call SetTimesteps before
// Step.
func NewDDIM(cfg DDIMConfig) (*DDIM, error) {
	const name = "ddim"
	T := cfg.NumTrainTimesteps
	if T < 1 {
		return nil, fmt.Errorf("%s: num_train_timesteps %d < 1: %w", name, T, ErrConfig)
	}
	if !finite(cfg.BetaStart) || !finite(cfg.BetaEnd) || cfg.BetaStart < 0 || cfg.BetaEnd < 0 || cfg.BetaStart >= 1 || cfg.BetaEnd >= 1 {
		return nil, fmt.Errorf("%s: betas %v to %v, want in [0, 1): %w", name, cfg.BetaStart, cfg.BetaEnd, ErrConfig)
	}
	switch cfg.PredictionType {
	case Epsilon, VPrediction, SamplePred:
	default:
		return nil, fmt.Errorf("%s: prediction_type %q: %w", name, cfg.PredictionType, ErrConfig)
	}
	switch cfg.TimestepSpacing {
	case SpacingLeading, SpacingTrailing, SpacingLinspace:
	default:
		return nil, fmt.Errorf("%s: timestep_spacing %q: %w", name, cfg.TimestepSpacing, ErrConfig)
	}
	if !(cfg.Eta >= 0 && cfg.Eta <= 1) {
		return nil, fmt.Errorf("%s: eta %v, want in [0, 1]: %w", name, cfg.Eta, ErrConfig)
	}
	if cfg.ClipSample && !(cfg.ClipSampleRange > 0) {
		return nil, fmt.Errorf("%s: clip_sample_range %v, want > 0: %w", name, cfg.ClipSampleRange, ErrConfig)
	}

	betas := make([]float64, T)
	switch cfg.BetaSchedule {
	case BetaLinear:
		for i, v := range linspace(cfg.BetaStart, cfg.BetaEnd, T) {
			betas[i] = v
		}
	case BetaScaledLinear:
		for i, v := range linspace(math.Sqrt(cfg.BetaStart), math.Sqrt(cfg.BetaEnd), T) {
			betas[i] = v * v
		}
	default:
		return nil, fmt.Errorf("%s: beta_schedule %q: %w", name, cfg.BetaSchedule, ErrConfig)
	}
	ac := make([]float64, T)
	prod := 1.0
	for i, b := range betas {
		prod *= 1 - b
		ac[i] = prod
	}
	final := ac[0]
	if cfg.SetAlphaToOne {
		final = 1
	}
	return &DDIM{cfg: cfg, alphasCumprod: ac, finalAlpha: final}, nil
}

// SetTimesteps picks n of the T training timesteps (1 <= n <= T):
//
//	leading:  (0, r, 2r, …, (n−1)r) reversed + steps_offset, r = T/n (integer)
//	trailing: round(arange(T, 0, −T/n)) − 1
//	linspace: round(linspace(0, T−1, n)) reversed
//
// Rounding is NumPy's (half to even, on NumPy's float arithmetic). For some
// n NumPy's arange(T, 0, −T/n) yields n+1 values, the last −1 after the
// subtraction; diffusers then runs an extra step at timestep −1. That value
// is dropped here, so every schedule has n steps.
func (s *DDIM) SetTimesteps(n int) error {
	const name = "ddim"
	if err := checkSteps(name, n); err != nil {
		return err
	}
	T := s.cfg.NumTrainTimesteps
	if n > T {
		return fmt.Errorf("%s: %d inference steps > %d training timesteps: %w", name, n, T, ErrConfig)
	}
	ts := make([]int, n)
	switch s.cfg.TimestepSpacing {
	case SpacingLeading:
		r := T / n
		for i := range n {
			ts[n-1-i] = i*r + s.cfg.StepsOffset
		}
	case SpacingTrailing:
		a := arange(float64(T), 0, -float64(T)/float64(n))
		if len(a) < n {
			return fmt.Errorf("%s: trailing spacing gave %d timesteps for %d steps: %w", name, len(a), n, ErrConfig)
		}
		for i := range n {
			ts[i] = int(math.RoundToEven(a[i])) - 1
		}
	case SpacingLinspace:
		for i, v := range linspace(0, float64(T-1), n) {
			ts[n-1-i] = int(math.RoundToEven(v))
		}
	}
	for i, t := range ts {
		if t < 0 || t >= T {
			return fmt.Errorf("%s: timestep %d (step %d) outside [0, %d); check steps_offset: %w", name, t, i, T, ErrConfig)
		}
	}
	s.timesteps = ts
	s.ratio = T / n
	return nil
}

// Timesteps returns the integer training timesteps, largest first.
func (s *DDIM) Timesteps() []float64 {
	if s.timesteps == nil {
		return nil
	}
	out := make([]float64, len(s.timesteps))
	for i, t := range s.timesteps {
		out[i] = float64(t)
	}
	return out
}

// Sigmas is nil: DDIM works with ᾱ, not sigmas.
func (s *DDIM) Sigmas() []float64 { return nil }

// InitNoiseSigma is 1.
func (s *DDIM) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput is the identity.
func (s *DDIM) ScaleModelInput(sample []float32, step int) {}

// Step takes step i in place. With Eta > 0 it draws len(sample) normal
// values from cfg.Noise. It keeps no other state: steps may be taken in any
// order.
func (s *DDIM) Step(modelOutput, sample []float32, step int) error {
	if s.cfg.Eta > 0 {
		if s.cfg.Noise == nil {
			return fmt.Errorf("ddim: eta %v needs a NoiseSource (DDIMConfig.Noise) or StepNoise: %w", s.cfg.Eta, ErrConfig)
		}
		if err := checkStep("ddim", len(s.timesteps), modelOutput, sample, step); err != nil {
			return err
		}
		if cap(s.noise) < len(sample) {
			s.noise = make([]float32, len(sample))
		}
		s.noise = s.noise[:len(sample)]
		s.cfg.Noise.FillNormal(s.noise)
		return s.StepNoise(modelOutput, sample, s.noise, step)
	}
	return s.StepNoise(modelOutput, sample, nil, step)
}

// StepNoise is Step with the variance noise z given (diffusers'
// variance_noise); z is read only when Eta > 0 and must then have
// len(sample) values.
func (s *DDIM) StepNoise(modelOutput, sample, z []float32, step int) error {
	const name = "ddim"
	if err := checkStep(name, len(s.timesteps), modelOutput, sample, step); err != nil {
		return err
	}
	eta := s.cfg.Eta
	if eta > 0 && len(z) != len(sample) {
		return fmt.Errorf("%s: noise has %d values, sample %d: %w", name, len(z), len(sample), ErrLength)
	}
	t := s.timesteps[step]
	prev := t - s.ratio
	at := s.alphasCumprod[t]
	ap := s.finalAlpha
	if prev >= 0 {
		ap = s.alphasCumprod[prev]
	}
	bt := 1 - at
	sqA, sqB := math.Sqrt(at), math.Sqrt(bt)

	// Eq. 16, then Eq. 12's coefficients.
	variance := (1 - ap) / bt * (1 - at/ap)
	std := eta * math.Sqrt(variance)
	dir := math.Sqrt(max(0, 1-ap-std*std))
	sqAp := math.Sqrt(ap)

	// x̂₀ = ax·x + ao·out and ε̂ = ex·x + eo·out for each prediction type.
	var ax, ao, ex, eo float64
	switch s.cfg.PredictionType {
	case Epsilon: // x̂₀ = (x − √(1−ᾱ)·ε)/√ᾱ
		ax, ao, ex, eo = 1/sqA, -sqB/sqA, 0, 1
	case VPrediction: // x̂₀ = √ᾱ·x − √(1−ᾱ)·v, ε̂ = √ᾱ·v + √(1−ᾱ)·x
		ax, ao, ex, eo = sqA, -sqB, sqB, sqA
	case SamplePred: // ε̂ = (x − √ᾱ·x̂₀)/√(1−ᾱ)
		ax, ao, ex, eo = 0, 1, 1/sqB, -sqA/sqB
	}
	clip, lim := s.cfg.ClipSample, s.cfg.ClipSampleRange
	parallelFor(len(sample), func(lo, hi int) {
		x := sample[lo:hi]
		o := modelOutput[lo:hi][:len(x)]
		for j := range x {
			xj, oj := float64(x[j]), float64(o[j])
			x0 := ax*xj + ao*oj
			if clip {
				x0 = max(-lim, min(lim, x0))
			}
			v := sqAp*x0 + dir*(ex*xj+eo*oj)
			if eta > 0 {
				v += std * float64(z[lo+j])
			}
			x[j] = float32(v)
		}
	})
	return nil
}

// NormalNoise is a seeded NoiseSource (math/rand/v2 PCG): the same seed
// gives the same noise.
type NormalNoise struct{ r *rand.Rand }

// NewNormalNoise returns a NoiseSource seeded with seed.
func NewNormalNoise(seed uint64) *NormalNoise {
	return &NormalNoise{r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// FillNormal fills dst with standard-normal samples.
func (n *NormalNoise) FillNormal(dst []float32) {
	for i := range dst {
		dst[i] = float32(n.r.NormFloat64())
	}
}
