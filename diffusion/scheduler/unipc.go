package scheduler

import (
	"fmt"
	"math"
	"slices"
)

// FlowUniPCConfig configures FlowUniPC. The fields are diffusers'
// UniPCMultistepScheduler config keys for use_flow_sigmas=True, where
// predict_x0 is always true; DefaultFlowUniPCConfig returns diffusers'
// defaults and WanFlowUniPCConfig the configuration Wan pipelines use.
type FlowUniPCConfig struct {
	// NumTrainTimesteps is num_train_timesteps (1000).
	NumTrainTimesteps int
	// FlowShift is flow_shift: σ' = s·σ / (1 + (s−1)·σ). Dynamic shifting
	// with exponent μ is FlowShift = eᵘ (diffusers sets exactly that).
	FlowShift float64
	// PredictionType is FlowPrediction (Wan), or Epsilon, VPrediction or
	// SamplePred under the flow parametrization α = 1−σ.
	PredictionType PredictionType
	// SolverOrder is solver_order p of UniP (1 to 3; 2 for guided sampling).
	// With the corrector the order of accuracy is p+1.
	SolverOrder int
	// SolverType is solver_type: BH1 (B(h) = h) or BH2 (B(h) = eʰ − 1).
	SolverType SolverType
	// LowerOrderFinal (lower_order_final) caps the order at the number of
	// steps left, so the last step is first order.
	LowerOrderFinal bool
	// DisableCorrector lists steps i whose following corrector (the UniC
	// applied at step i+1) is skipped (disable_corrector).
	DisableCorrector []int
	// FinalSigmasType (final_sigmas_type) is FinalSigmaZero or FinalSigmaMin.
	FinalSigmasType FinalSigmas
}

// DefaultFlowUniPCConfig returns diffusers' UniPCMultistepScheduler defaults
// with use_flow_sigmas=True and prediction_type="flow_prediction":
// flow_shift 1, solver_order 2, bh2, lower_order_final, final sigma zero.
func DefaultFlowUniPCConfig() FlowUniPCConfig {
	return FlowUniPCConfig{
		NumTrainTimesteps: 1000,
		FlowShift:         1,
		PredictionType:    FlowPrediction,
		SolverOrder:       2,
		SolverType:        BH2,
		LowerOrderFinal:   true,
		FinalSigmasType:   FinalSigmaZero,
	}
}

// WanFlowUniPCConfig is the scheduler of diffusers' Wan pipelines:
// the defaults above with flow_shift = shift (Wan 2.1 uses 5.0 at 720p and
// 3.0 at 480p).
func WanFlowUniPCConfig(shift float64) FlowUniPCConfig {
	c := DefaultFlowUniPCConfig()
	c.FlowShift = shift
	return c
}

// FlowUniPC is UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector
// Framework for Fast Sampling of Diffusion Models", arXiv:2302.04867) on flow
// sigmas, diffusers' UniPCMultistepScheduler (scheduling_unipc_multistep.py)
// with use_flow_sigmas=True and predict_x0=True: the sampler of Wan 2.x.
//
// # Schedule
//
// set_timesteps(n) takes a = linspace(1, 1/N, n+1), σ = 1 − a, shifts it
// (σ' = s·σ/(1+(s−1)·σ)), reverses it and drops the trailing 0, so
// σ₀ = shift(1 − 1/N) and σₙ₋₁ = shift((1 − 1/N)/n); timesteps are
// int64(σ·N) (truncated, from the float64 sigmas) and sigmas are stored in
// float32 with a final 0 (or σₙ₋₁ for FinalSigmaMin).
//
// # Notation
//
// Flow sigmas are a noise schedule x_t = α_t·x₀ + σ_t·ε with α_t = 1 − σ_t
// (diffusers' _sigma_to_alpha_sigma_t), half log-SNR λ_t = log α_t − log σ_t,
// and step size h = λ_t − λ_s (λ grows as noise falls). The model output is
// first turned into a data prediction m = x₀(x, σ): for flow prediction
// x₀ = x − σ·v; for ε, (x − σ·ε)/α; for v, α·x − σ·v.
//
// The exact solution of the data-prediction ODE from s to t is
//
//	x_t = (σ_t/σ_s)·x_s + σ_t ∫ e^λ x₀(λ) dλ
//
// and UniPC expands x₀ in λ around s. With hh = −h, φ₁ = e^hh − 1 and the
// divided differences D_k = (m_{s_k} − m_s)/r_k, r_k = (λ_{s_k} − λ_s)/h:
//
//	UniP-p:  x_t = (σ_t/σ_s)·x_s − α_t·φ₁·m_s − α_t·B(h)·Σ_{k<p} ρ_k·D_k
//	UniC-p:  x_t^c = (σ_t/σ_s)·x_s^c − α_t·φ₁·m_s
//	               − α_t·B(h)·(Σ_{k<p} ρ_k·D_k + ρ_p·(m_t − m_s))
//
// where ρ solves R·ρ = g, R_{jk} = r_k^j (with r_p = 1) and
// g_j = hh·φ_{j+1}(hh)·j!/B(h), φ_{k+1}(x) = (φ_k(x) − 1/k!)/x (Alg. 1–2 of
// the paper, with B(h) = hh for bh1 and e^hh − 1 for bh2). As diffusers does,
// UniP-2 uses ρ = ½ instead of solving, UniP-p≥3 solves the leading
// (p−1)×(p−1) system, and UniC-1 uses ρ = ½.
//
// # One step
//
// Step i (x = xᵢ from the previous predictor, output at σᵢ):
//  1. mᵢ = x₀(xᵢ, σᵢ), from the uncorrected xᵢ.
//  2. If i > 0 (and the corrector is enabled): xᵢ ← UniC(xᵢ₋₁ᶜ, mᵢ₋₁, …;
//     mᵢ) with the order of the previous predictor.
//  3. The predictor order is p = min(solver_order, steps taken + 1), and with
//     lower_order_final also ≤ n − i (so the step to σ = 0 is first order).
//  4. xᵢ₊₁ = UniP-p(xᵢᶜ; mᵢ, mᵢ₋₁, …).
//
// A first-order step is exactly the flow-matching Euler step
// x + (σᵢ₊₁ − σᵢ)·v, and the step to σ = 0 returns mᵢ, the data prediction.
// (With bh1, diffusers computes that last step as m − α·B(h)·0 with
// B(h) = hh = −∞, which by our reading of the code is NaN; here the absent
// term is simply left out.) An order ≥ 2 step to σ = 0, which diffusers would
// also turn into NaN or ∞, is an ErrStep: it needs LowerOrderFinal.
//
// Both updates are linear in the stored values, so Step folds them into
// per-step coefficients (computed in float64) and makes one pass over the
// latent. The previous corrected sample and solver_order past data
// predictions are kept in float32, as diffusers keeps them.
type FlowUniPC struct {
	cfg FlowUniPCConfig

	sigmas    []float64 // n+1, float32 values
	timesteps []float64
	alpha     []float64 // 1 − σ per sigma
	lambda    []float64 // log α − log σ per sigma (+Inf at σ = 0)

	// Generation state, reset by SetTimesteps.
	next           int // step expected next; −1 before the first Step
	lowerOrderNums int // steps taken, capped at solver_order
	lastOrder      int // order of the last predictor = order of the next corrector
	haveLast       bool
	hist           [][]float32 // hist[a] = data prediction of a steps ago; len solver_order+1
	last           []float32   // corrected sample of the previous step
}

var _ Scheduler = (*FlowUniPC)(nil)

// NewFlowUniPC validates cfg and returns a scheduler; call SetTimesteps
// before Step.
func NewFlowUniPC(cfg FlowUniPCConfig) (*FlowUniPC, error) {
	const name = "flow unipc"
	if cfg.NumTrainTimesteps < 1 {
		return nil, fmt.Errorf("%s: num_train_timesteps %d < 1: %w", name, cfg.NumTrainTimesteps, ErrConfig)
	}
	if !finite(cfg.FlowShift) || cfg.FlowShift <= 0 {
		return nil, fmt.Errorf("%s: flow_shift %v, want a finite value > 0: %w", name, cfg.FlowShift, ErrConfig)
	}
	switch cfg.PredictionType {
	case FlowPrediction, Epsilon, VPrediction, SamplePred:
	default:
		return nil, fmt.Errorf("%s: prediction_type %q: %w", name, cfg.PredictionType, ErrConfig)
	}
	if cfg.SolverOrder < 1 || cfg.SolverOrder > 3 {
		return nil, fmt.Errorf("%s: solver_order %d, want 1 to 3: %w", name, cfg.SolverOrder, ErrConfig)
	}
	switch cfg.SolverType {
	case BH1, BH2:
	default:
		return nil, fmt.Errorf("%s: solver_type %q, want %q or %q: %w", name, cfg.SolverType, BH1, BH2, ErrConfig)
	}
	switch cfg.FinalSigmasType {
	case FinalSigmaZero, FinalSigmaMin:
	default:
		return nil, fmt.Errorf("%s: final_sigmas_type %q: %w", name, cfg.FinalSigmasType, ErrConfig)
	}
	cfg.DisableCorrector = slices.Clone(cfg.DisableCorrector)
	return &FlowUniPC{cfg: cfg, next: -1}, nil
}

// SetTimesteps builds the flow-sigma schedule for n steps and resets the
// multistep state (buffers are kept for reuse).
func (s *FlowUniPC) SetTimesteps(n int) error {
	if err := checkSteps("flow unipc", n); err != nil {
		return err
	}
	T := float64(s.cfg.NumTrainTimesteps)
	shift := s.cfg.FlowShift
	a := linspace(1, 1/T, n+1)
	sig := make([]float64, n) // reversed, without the 0 from a[0] = 1
	for k := range sig {
		v := 1 - a[n-k]
		sig[k] = shift * v / (1 + (shift-1)*v)
	}
	s.timesteps = make([]float64, n)
	s.sigmas = make([]float64, n+1)
	for k, v := range sig {
		s.timesteps[k] = float64(int64(v * T))
		s.sigmas[k] = float64(float32(v))
	}
	if s.cfg.FinalSigmasType == FinalSigmaMin {
		s.sigmas[n] = s.sigmas[n-1]
	}
	s.alpha = make([]float64, n+1)
	s.lambda = make([]float64, n+1)
	for k, v := range s.sigmas {
		s.alpha[k] = 1 - v
		s.lambda[k] = math.Log(s.alpha[k]) - math.Log(v)
	}
	s.next = -1
	s.lowerOrderNums = 0
	s.lastOrder = 0
	s.haveLast = false
	return nil
}

// Timesteps returns the integer timesteps int64(σ·N).
func (s *FlowUniPC) Timesteps() []float64 { return clone(s.timesteps) }

// Sigmas returns the n+1 sigmas.
func (s *FlowUniPC) Sigmas() []float64 { return clone(s.sigmas) }

// InitNoiseSigma is 1.
func (s *FlowUniPC) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput is the identity.
func (s *FlowUniPC) ScaleModelInput(sample []float32, step int) {}

// unipcStep is one step's update folded into coefficients over the data
// predictions by age (age 0 is this step's).
type unipcStep struct {
	x0Sample, x0Out float64 // m = x0Sample·x + x0Out·output

	corrector bool
	cLast     float64   // on the previous corrected sample
	c         []float64 // on m by age

	pX float64   // on the (corrected) current sample
	p  []float64 // on m by age

	order int // predictor order
}

// Step takes step i in place. Steps must be consecutive: the first Step
// after SetTimesteps may start at any index (diffusers' begin index, for
// image-to-image), each later one must be the next.
func (s *FlowUniPC) Step(modelOutput, sample []float32, step int) error {
	const name = "flow unipc"
	n := len(s.timesteps)
	if err := checkStep(name, n, modelOutput, sample, step); err != nil {
		return err
	}
	if s.next >= 0 && step != s.next {
		return fmt.Errorf("%s: step %d after step %d; steps must be consecutive: %w", name, step, s.next-1, ErrStep)
	}
	if s.next >= 0 && len(sample) != len(s.last) {
		return fmt.Errorf("%s: sample has %d values, earlier steps %d: %w", name, len(sample), len(s.last), ErrLength)
	}
	co, err := s.coefficients(step)
	if err != nil {
		return err
	}

	// Buffers: solver_order+1 data predictions (the corrector of order p
	// reads p past ones besides this step's) and the last corrected sample.
	order := s.cfg.SolverOrder
	if s.hist == nil || len(s.last) != len(sample) {
		s.last = make([]float32, len(sample))
		s.hist = make([][]float32, order+1)
		for a := range s.hist {
			s.hist[a] = make([]float32, len(sample))
		}
	}
	// Age the history: the oldest buffer takes this step's prediction.
	oldest := s.hist[order]
	copy(s.hist[1:], s.hist[:order])
	s.hist[0] = oldest

	s.apply(co, modelOutput, sample)

	s.lastOrder = co.order
	s.lowerOrderNums = min(s.lowerOrderNums+1, order)
	s.haveLast = true
	s.next = step + 1
	return nil
}

// coefficients works out step i's update; it changes nothing, so a step
// that fails leaves the generation as it was.
func (s *FlowUniPC) coefficients(i int) (unipcStep, error) {
	var co unipcStep
	n := len(s.timesteps)
	sig, alpha := s.sigmas[i], s.alpha[i]
	switch s.cfg.PredictionType {
	case FlowPrediction: // x₀ = x − σ·v
		co.x0Sample, co.x0Out = 1, -sig
	case Epsilon: // x₀ = (x − σ·ε)/α
		co.x0Sample, co.x0Out = 1/alpha, -sig/alpha
	case VPrediction: // x₀ = α·x − σ·v
		co.x0Sample, co.x0Out = alpha, -sig
	case SamplePred:
		co.x0Sample, co.x0Out = 0, 1
	}

	// Predictor order: warm-up, then lower_order_final.
	p := s.cfg.SolverOrder
	if s.cfg.LowerOrderFinal {
		p = min(p, n-i)
	}
	p = min(p, s.lowerOrderNums+1)
	co.order = p

	// Corrector of xᵢ over the step i−1 → i, with the previous order q.
	q := 0
	if i > 0 && s.haveLast && !slices.Contains(s.cfg.DisableCorrector, i-1) {
		q = s.lastOrder
	}
	size := max(q+1, p)
	co.c = make([]float64, size)
	co.p = make([]float64, size)

	if q > 0 {
		co.corrector = true
		// Ages: mᵢ is 0, mᵢ₋₁ (the expansion point s) is 1, mᵢ₋₁₋ₖ is 1+k.
		u := s.uniUpdate(i-1, i, q, true)
		co.cLast = u.x
		co.c[1] = u.m0
		for k, w := range u.mk {
			co.c[1+k+1] = w
		}
		co.c[0] = u.mt
	}
	u := s.uniUpdate(i, i+1, p, false)
	co.pX = u.x
	co.p[0] = u.m0
	for k, w := range u.mk {
		co.p[k+1] = w
	}
	for _, w := range append(append([]float64{co.x0Sample, co.x0Out, co.cLast, co.pX}, co.c...), co.p...) {
		if !finite(w) {
			return co, fmt.Errorf("flow unipc: step %d: order-%d update from σ=%v to σ=%v is singular (a multistep step to σ = 0 needs LowerOrderFinal): %w",
				i, p, s.sigmas[i], s.sigmas[i+1], ErrStep)
		}
	}
	return co, nil
}

// uniWeights are the weights of one UniP or UniC update: on the starting
// sample, on m at the expansion point s, on the k-th earlier m (mk[k−1]),
// and (UniC only) on the new m at t.
type uniWeights struct {
	x, m0, mt float64
	mk        []float64
}

// uniUpdate expands UniP-order (corrector false) or UniC-order (corrector
// true) from sigma index si to ti into weights:
//
//	x_t = (σ_t/σ_s)·x − α_t·φ₁·m_s − α_t·B·(Σ_k ρ_k·(m_k − m_s)/r_k [+ ρ_p·(m_t − m_s)])
//
// The earlier points are si−1, si−2, …, as many as order−1.
func (s *FlowUniPC) uniUpdate(si, ti, order int, corrector bool) uniWeights {
	sigT, sigS := s.sigmas[ti], s.sigmas[si]
	alphaT := s.alpha[ti]
	h := s.lambda[ti] - s.lambda[si]
	hh := -h // predict_x0
	phi1 := math.Expm1(hh)

	w := uniWeights{x: sigT / sigS, m0: -alphaT * phi1}
	if order == 1 && !corrector {
		// No correction term at all: diffusers adds α_t·B·0, which is
		// NaN for bh1 at σ_t = 0 (B = −∞); the term is zero.
		return w
	}
	var B float64
	if s.cfg.SolverType == BH1 {
		B = hh
	} else {
		B = math.Expm1(hh)
	}

	// r_k for the order−1 earlier points, then r = 1 for the point t.
	rks := make([]float64, order)
	for k := 1; k < order; k++ {
		rks[k-1] = (s.lambda[si-k] - s.lambda[si]) / h
	}
	rks[order-1] = 1

	var rho []float64
	switch {
	case corrector && order == 1:
		rho = []float64{0.5}
	case !corrector && order == 2:
		rho = []float64{0.5}
	default:
		// g_j = hh·φ_{j+1}(hh)·j!/B via hφ_k: hφ₁/hh − 1 = hh·φ₂, then
		// hφ_{k+1} = hφ_k/hh − 1/(k+1)!  (diffusers' recursion).
		g := make([]float64, order)
		hphi := phi1/hh - 1
		fact := 1.0
		for j := 1; j <= order; j++ {
			g[j-1] = hphi * fact / B
			fact *= float64(j + 1)
			hphi = hphi/hh - 1/fact
		}
		m := order // UniC solves the full system
		if !corrector {
			m = order - 1 // UniP: the leading (p−1)×(p−1) block
		}
		R := make([][]float64, m)
		for j := range R {
			R[j] = make([]float64, m)
			for k := range R[j] {
				R[j][k] = math.Pow(rks[k], float64(j))
			}
		}
		rho = solve(R, g[:m])
	}

	// Fold Σ_k ρ_k·(m_k − m_s)/r_k into weights.
	scale := -alphaT * B
	w.mk = make([]float64, order-1)
	for k := 1; k < order; k++ {
		c := rho[k-1] / rks[k-1]
		w.mk[k-1] = scale * c
		w.m0 -= scale * c
	}
	if corrector {
		w.mt = scale * rho[order-1]
		w.m0 -= scale * rho[order-1]
	}
	return w
}

// solve returns x with A·x = b by Gaussian elimination with partial
// pivoting (A is at most 3×3 here); a singular A gives non-finite values,
// which the caller reports.
func solve(A [][]float64, b []float64) []float64 {
	n := len(b)
	M := make([][]float64, n)
	for i := range M {
		M[i] = append(append([]float64(nil), A[i]...), b[i])
	}
	for col := range n {
		piv := col
		for r := col + 1; r < n; r++ {
			if math.Abs(M[r][col]) > math.Abs(M[piv][col]) {
				piv = r
			}
		}
		M[col], M[piv] = M[piv], M[col]
		for r := col + 1; r < n; r++ {
			f := M[r][col] / M[col][col]
			for c := col; c <= n; c++ {
				M[r][c] -= f * M[col][c]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		v := M[r][n]
		for c := r + 1; c < n; c++ {
			v -= M[r][c] * x[c]
		}
		x[r] = v / M[r][r]
	}
	return x
}

// apply runs the folded update over the latent: per element, the data
// prediction (stored as float32), the corrected sample (stored as the new
// last sample), then the predictor into sample. One loop per number of
// history entries read, so no buffer is touched that the step does not use.
// Sums are in float64: the weights on neighbouring predictions can be large
// and of opposite sign (ρ_k/r_k), and float32 sums would cancel.
func (s *FlowUniPC) apply(co unipcStep, out, sample []float32) {
	hist, last := s.hist, s.last
	ages := len(co.p)
	a, b := co.x0Sample, co.x0Out
	var c, p [4]float64
	copy(c[:], co.c)
	copy(p[:], co.p)
	cl, px, corr := co.cLast, co.pX, co.corrector
	parallelFor(len(sample), func(lo, hi int) {
		x := sample[lo:hi]
		o := out[lo:hi][:len(x)]
		l := last[lo:hi][:len(x)]
		h0 := hist[0][lo:hi][:len(x)]
		switch ages {
		case 1: // no corrector, first order
			for j := range x {
				xj := float64(x[j])
				m := float32(a*xj + b*float64(o[j]))
				h0[j] = m
				l[j] = x[j]
				x[j] = float32(px*xj + p[0]*float64(m))
			}
		case 2:
			h1 := hist[1][lo:hi][:len(x)]
			for j := range x {
				xj := float64(x[j])
				m32 := float32(a*xj + b*float64(o[j]))
				h0[j] = m32
				m, m1 := float64(m32), float64(h1[j])
				if corr {
					xj = float64(float32(cl*float64(l[j]) + c[0]*m + c[1]*m1))
				}
				l[j] = float32(xj)
				x[j] = float32(px*xj + p[0]*m + p[1]*m1)
			}
		case 3:
			h1 := hist[1][lo:hi][:len(x)]
			h2 := hist[2][lo:hi][:len(x)]
			for j := range x {
				xj := float64(x[j])
				m32 := float32(a*xj + b*float64(o[j]))
				h0[j] = m32
				m, m1, m2 := float64(m32), float64(h1[j]), float64(h2[j])
				if corr {
					xj = float64(float32(cl*float64(l[j]) + c[0]*m + c[1]*m1 + c[2]*m2))
				}
				l[j] = float32(xj)
				x[j] = float32(px*xj + p[0]*m + p[1]*m1 + p[2]*m2)
			}
		default: // 4: the third-order corrector (the predictor reads at most ages 0–2)
			h1 := hist[1][lo:hi][:len(x)]
			h2 := hist[2][lo:hi][:len(x)]
			h3 := hist[3][lo:hi][:len(x)]
			for j := range x {
				xj := float64(x[j])
				m32 := float32(a*xj + b*float64(o[j]))
				h0[j] = m32
				m, m1, m2, m3 := float64(m32), float64(h1[j]), float64(h2[j]), float64(h3[j])
				if corr {
					xj = float64(float32(cl*float64(l[j]) + c[0]*m + c[1]*m1 + c[2]*m2 + c[3]*m3))
				}
				l[j] = float32(xj)
				x[j] = float32(px*xj + p[0]*m + p[1]*m1 + p[2]*m2)
			}
		}
	})
}
