package scheduler_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/omniflow-go/omniflow/diffusion/scheduler"
)

// uniPCSigmasReference is diffusers' use_flow_sigmas schedule in closed
// form: a = linspace(1, 1/N, n+1) has 1 − a_j = (1 − 1/N)·j/n, and the k-th
// sigma (after the flip and dropping 0) is shift((1 − 1/N)·(n−k)/n).
func uniPCSigmasReference(T int, shift float64, n int) (sigmas, timesteps []float64) {
	for k := range n {
		u := (1 - 1/float64(T)) * float64(n-k) / float64(n)
		s := shift * u / (1 + (shift-1)*u)
		sigmas = append(sigmas, s)
		timesteps = append(timesteps, math.Trunc(s*float64(T)))
	}
	return append(sigmas, 0), timesteps
}

func newUniPC(t testing.TB, mod func(*scheduler.FlowUniPCConfig), n int) *scheduler.FlowUniPC {
	t.Helper()
	c := scheduler.WanFlowUniPCConfig(5)
	if mod != nil {
		mod(&c)
	}
	s, err := scheduler.NewFlowUniPC(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(n); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFlowUniPCScheduleMatchesFormula(t *testing.T) {
	for _, tc := range []struct {
		shift float64
		n     int
	}{{5, 5}, {5, 50}, {3, 20}, {3, 40}, {1, 10}, {12, 40}, {5, 1}, {5, 2}} {
		t.Run(fmt.Sprintf("shift%v/N%d", tc.shift, tc.n), func(t *testing.T) {
			s := newUniPC(t, func(c *scheduler.FlowUniPCConfig) { c.FlowShift = tc.shift }, tc.n)
			wantS, wantT := uniPCSigmasReference(1000, tc.shift, tc.n)
			closeAll(t, "sigmas", s.Sigmas(), wantS, 1e-7) // float32 values
			closeAll(t, "timesteps", s.Timesteps(), wantT, 0)
		})
	}
	t.Run("final sigma_min", func(t *testing.T) {
		s := newUniPC(t, func(c *scheduler.FlowUniPCConfig) { c.FinalSigmasType = scheduler.FinalSigmaMin }, 5)
		sig := s.Sigmas()
		if sig[5] != sig[4] {
			t.Errorf("final sigma %v, want the last step's %v", sig[5], sig[4])
		}
	})
}

func TestFlowUniPCHandValues(t *testing.T) {
	// N=5, shift 5: 1 − a = 0.999·(5, 4, 3, 2, 1)/5 = 0.999, 0.7992, 0.5994,
	// 0.3996, 0.1998, and 5u/(1 + 4u):
	//   4.995/4.996 = 0.99979984, 3.996/4.1968 = 0.95215402,
	//   2.997/3.3976 = 0.88209324, 1.998/2.5984 = 0.76893473,
	//   0.999/1.7992 = 0.55524678;
	// timesteps truncate σ·1000: 999, 952, 882, 768, 555.
	s := newUniPC(t, nil, 5)
	closeAll(t, "sigmas", s.Sigmas(), []float64{4.995 / 4.996, 3.996 / 4.1968, 2.997 / 3.3976, 1.998 / 2.5984, 0.999 / 1.7992, 0}, 1e-7)
	closeAll(t, "timesteps", s.Timesteps(), []float64{999, 952, 882, 768, 555}, 0)
}

// phi2 and phi3 in closed form: φ₂(x) = (eˣ − 1 − x)/x², φ₃(x) = (eˣ − 1 − x − x²/2)/x³.
func phi2(x float64) float64 { return (math.Expm1(x) - x) / (x * x) }
func phi3(x float64) float64 { return (math.Expm1(x) - x - x*x/2) / (x * x * x) }

// The first steps and the last one, written out from the UniPC paper
// (Zhao et al. 2023, Alg. 1–2; data prediction, hh = −h) with the
// simplifications diffusers makes (ρ = ½ for UniP-2 and UniC-1):
//
//	step 0 (UniP-1): x₁ = (σ₁/σ₀)x₀ − α₁(e^{−h}−1)m₀. With e^{−h} = α₀σ₁/(σ₀α₁),
//	  α = 1−σ and m₀ = x₀ − σ₀v₀ this is x₀·[σ₁ + α₁] + v₀·[α₀σ₁ − α₁σ₀]
//	  = x₀ + (σ₁ − σ₀)·v₀: the flow-matching Euler step.
//	step 1: x₁ᶜ = (σ₁/σ₀)x₀ − α₁(e^{−h₀}−1)m₀ − α₁B(h₀)·½(m₁ − m₀)          (UniC-1)
//	        x₂  = (σ₂/σ₁)x₁ᶜ − α₂(e^{−h₁}−1)m₁ − α₂B(h₁)·½(m₀ − m₁)/r,    (UniP-2)
//	        r = (λ₀ − λ₁)/h₁
//	step 2: UniC-2 solves [1 1; r 1]·ρ = [g₁; g₂], g_j = hh·φ_{j+1}(hh)·j!/B (Cramer),
//	        x₂ᶜ = (σ₂/σ₁)x₁ᶜ − α₂(e^{−h₁}−1)m₁ − α₂B(h₁)(ρ₁(m₀ − m₁)/r + ρ₂(m₂ − m₁))
//	        then UniP-2 from σ₂ to σ₃ as above.
//	last step (UniP-1 to σ = 0, α = 1): x = 0·x + (−1)(−1)·m = x − σ·v.
func TestFlowUniPCStepsByFormula(t *testing.T) {
	for _, bh := range []scheduler.SolverType{scheduler.BH2, scheduler.BH1} {
		t.Run(string(bh), func(t *testing.T) {
			const n, size = 6, 333
			s := newUniPC(t, func(c *scheduler.FlowUniPCConfig) { c.SolverType = bh }, n)
			sig := s.Sigmas()
			alpha := func(i int) float64 { return 1 - sig[i] }
			lambda := func(i int) float64 { return math.Log(alpha(i)) - math.Log(sig[i]) }
			B := func(h float64) float64 {
				if bh == scheduler.BH1 {
					return -h
				}
				return math.Expm1(-h)
			}
			vs := make([][]float32, n)
			for i := range vs {
				vs[i] = normals(uint64(40+i), size)
			}
			x := normals(7, size)
			xs := [][]float64{to64(x)} // x_i as the scheduler produced them
			step := func(i int) []float64 {
				if err := s.Step(vs[i], x, i); err != nil {
					t.Fatal(err)
				}
				xs = append(xs, to64(x))
				return xs[i+1]
			}
			m := func(i int) []float64 { // data prediction at step i
				out := make([]float64, size)
				for j := range out {
					out[j] = xs[i][j] - sig[i]*float64(vs[i][j])
				}
				return out
			}

			// Step 0: the Euler step.
			want := make([]float64, size)
			for j := range want {
				want[j] = xs[0][j] + (sig[1]-sig[0])*float64(vs[0][j])
			}
			closeSample(t, "step 0", func() []float32 { step(0); return x }(), want, 2e-6)

			// Step 1: UniC-1, then UniP-2.
			step(1)
			m0, m1 := m(0), m(1)
			h0 := lambda(1) - lambda(0)
			x1c := make([]float64, size)
			for j := range x1c {
				x1c[j] = sig[1]/sig[0]*xs[0][j] - alpha(1)*math.Expm1(-h0)*m0[j] - alpha(1)*B(h0)*0.5*(m1[j]-m0[j])
			}
			h1 := lambda(2) - lambda(1)
			r := (lambda(0) - lambda(1)) / h1
			for j := range want {
				want[j] = sig[2]/sig[1]*x1c[j] - alpha(2)*math.Expm1(-h1)*m1[j] - alpha(2)*B(h1)*0.5*(m0[j]-m1[j])/r
			}
			closeSample(t, "step 1", x, want, 1e-5)

			// Step 2: UniC-2 (order of step 1's predictor), then UniP-2.
			step(2)
			m2 := m(2)
			hh := -h1
			g1 := hh * phi2(hh) / B(h1)
			g2 := hh * phi3(hh) * 2 / B(h1)
			det := 1 - r
			rho1, rho2 := (g1-g2)/det, (g2-r*g1)/det
			x2c := make([]float64, size)
			for j := range x2c {
				x2c[j] = sig[2]/sig[1]*x1c[j] - alpha(2)*math.Expm1(hh)*m1[j] -
					alpha(2)*B(h1)*(rho1*(m0[j]-m1[j])/r+rho2*(m2[j]-m1[j]))
			}
			h2 := lambda(3) - lambda(2)
			r2 := (lambda(1) - lambda(2)) / h2
			for j := range want {
				want[j] = sig[3]/sig[2]*x2c[j] - alpha(3)*math.Expm1(-h2)*m2[j] - alpha(3)*B(h2)*0.5*(m1[j]-m2[j])/r2
			}
			closeSample(t, "step 2", x, want, 1e-5)

			// The rest; the last step returns the data prediction.
			for i := 3; i < n; i++ {
				step(i)
			}
			closeSample(t, "last step", x, m(n-1), 1e-6)
		})
	}
}

// uniPCReference is diffusers' UniPCMultistepScheduler.step for flow sigmas,
// re-written in float64 in diffusers' own structure (model_outputs list,
// multistep_uni_p_bh_update / multistep_uni_c_bh_update with rks, D1s, R
// and b), with φ_k from its power series Σ_j x^j/(j+k)! and the linear
// systems solved by gonum. It takes the sigmas as given (checked apart).
type uniPCReference struct {
	sigmas          []float64
	order           int
	bh1             bool
	lowerOrderFinal bool
	disable         []int
	pred            scheduler.PredictionType

	modelOutputs   [][]float64
	lowerOrderNums int
	thisOrder      int
	lastSample     []float64
	stepIndex      int
}

func (r *uniPCReference) lambda(i int) float64 {
	return math.Log(1-r.sigmas[i]) - math.Log(r.sigmas[i])
}

// phi is φ_k(x) = Σ_{j≥0} x^j/(j+k)!.
func phi(k int, x float64) float64 {
	term := 1.0
	for i := 2; i <= k; i++ {
		term /= float64(i)
	}
	sum := 0.0
	for j := 0; j < 80; j++ {
		sum += term
		term *= x / float64(j+k+1)
	}
	return sum
}

func (r *uniPCReference) coeffs(h float64, order int) (hh, hphi1, B float64, b []float64) {
	hh = -h
	hphi1 = math.Expm1(hh)
	B = math.Expm1(hh)
	if r.bh1 {
		B = hh
	}
	fact := 1.0
	for j := 1; j <= order; j++ {
		fact *= float64(j)
		b = append(b, hh*phi(j+1, hh)*fact/B)
	}
	return
}

func solveDense(R [][]float64, b []float64) []float64 {
	n := len(b)
	A := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			A.Set(i, j, R[i][j])
		}
	}
	var x mat.VecDense
	if err := x.SolveVec(A, mat.NewVecDense(n, slices.Clone(b))); err != nil {
		panic(err)
	}
	return x.RawVector().Data
}

func (r *uniPCReference) convert(out, x []float64) []float64 {
	s := r.sigmas[r.stepIndex]
	a := 1 - s
	m := make([]float64, len(x))
	for j := range m {
		switch r.pred {
		case scheduler.FlowPrediction:
			m[j] = x[j] - s*out[j]
		case scheduler.Epsilon:
			m[j] = (x[j] - s*out[j]) / a
		case scheduler.VPrediction:
			m[j] = a*x[j] - s*out[j]
		case scheduler.SamplePred:
			m[j] = out[j]
		}
	}
	return m
}

func (r *uniPCReference) predictor(x []float64, order int) []float64 {
	i := r.stepIndex
	mo := r.modelOutputs
	m0 := mo[len(mo)-1]
	sigT, sigS := r.sigmas[i+1], r.sigmas[i]
	alphaT := 1 - sigT
	h := r.lambda(i+1) - r.lambda(i)
	var rks []float64
	var D1s [][]float64
	for k := 1; k < order; k++ {
		rk := (r.lambda(i-k) - r.lambda(i)) / h
		mi := mo[len(mo)-1-k]
		d := make([]float64, len(x))
		for j := range d {
			d[j] = (mi[j] - m0[j]) / rk
		}
		rks, D1s = append(rks, rk), append(D1s, d)
	}
	rks = append(rks, 1)
	_, hphi1, B, b := r.coeffs(h, order)
	var rhos []float64
	switch {
	case len(D1s) == 0:
	case order == 2:
		rhos = []float64{0.5}
	default:
		R := make([][]float64, order-1)
		for row := range R {
			for k := range order - 1 {
				R[row] = append(R[row], math.Pow(rks[k], float64(row)))
			}
		}
		rhos = solveDense(R, b[:order-1])
	}
	out := make([]float64, len(x))
	for j := range out {
		res := 0.0
		for k := range D1s {
			res += rhos[k] * D1s[k][j]
		}
		out[j] = sigT/sigS*x[j] - alphaT*hphi1*m0[j]
		if len(D1s) > 0 {
			out[j] -= alphaT * B * res
		}
	}
	return out
}

func (r *uniPCReference) corrector(mt, last, this []float64, order int) []float64 {
	i := r.stepIndex
	mo := r.modelOutputs
	m0 := mo[len(mo)-1]
	sigT, sigS := r.sigmas[i], r.sigmas[i-1]
	alphaT := 1 - sigT
	h := r.lambda(i) - r.lambda(i-1)
	var rks []float64
	var D1s [][]float64
	for k := 1; k < order; k++ {
		rk := (r.lambda(i-k-1) - r.lambda(i-1)) / h
		mi := mo[len(mo)-1-k]
		d := make([]float64, len(last))
		for j := range d {
			d[j] = (mi[j] - m0[j]) / rk
		}
		rks, D1s = append(rks, rk), append(D1s, d)
	}
	rks = append(rks, 1)
	_, hphi1, B, b := r.coeffs(h, order)
	rhos := []float64{0.5}
	if order > 1 {
		R := make([][]float64, order)
		for row := range R {
			for k := range order {
				R[row] = append(R[row], math.Pow(rks[k], float64(row)))
			}
		}
		rhos = solveDense(R, b)
	}
	out := make([]float64, len(last))
	for j := range out {
		res := 0.0
		for k := range D1s {
			res += rhos[k] * D1s[k][j]
		}
		out[j] = sigT/sigS*last[j] - alphaT*hphi1*m0[j] - alphaT*B*(res+rhos[order-1]*(mt[j]-m0[j]))
	}
	return out
}

func (r *uniPCReference) step(out, x []float64) []float64 {
	n := len(r.sigmas) - 1
	i := r.stepIndex
	useCorrector := i > 0 && !slices.Contains(r.disable, i-1) && r.lastSample != nil
	mc := r.convert(out, x)
	if useCorrector {
		x = r.corrector(mc, r.lastSample, x, r.thisOrder)
	}
	r.modelOutputs = append(r.modelOutputs, mc)
	if len(r.modelOutputs) > r.order {
		r.modelOutputs = r.modelOutputs[1:]
	}
	thisOrder := r.order
	if r.lowerOrderFinal {
		thisOrder = min(r.order, n-i)
	}
	r.thisOrder = min(thisOrder, r.lowerOrderNums+1)
	r.lastSample = x
	prev := r.predictor(x, r.thisOrder)
	if r.lowerOrderNums < r.order {
		r.lowerOrderNums++
	}
	r.stepIndex++
	return prev
}

// Whole trajectories against the reference, for every order, B(h),
// prediction type and corrector setting, with a model whose output depends
// on the sample (so errors would compound).
func TestFlowUniPCMatchesReference(t *testing.T) {
	type variant struct {
		order   int
		bh      scheduler.SolverType
		pred    scheduler.PredictionType
		final   scheduler.FinalSigmas
		lof     bool
		disable []int
		n       int
	}
	var vs []variant
	for _, order := range []int{1, 2, 3} {
		for _, bh := range []scheduler.SolverType{scheduler.BH1, scheduler.BH2} {
			vs = append(vs, variant{order, bh, scheduler.FlowPrediction, scheduler.FinalSigmaZero, true, nil, 10})
		}
	}
	vs = append(vs,
		variant{2, scheduler.BH2, scheduler.FlowPrediction, scheduler.FinalSigmaZero, true, nil, 1},
		variant{2, scheduler.BH2, scheduler.FlowPrediction, scheduler.FinalSigmaZero, true, nil, 2},
		variant{3, scheduler.BH2, scheduler.FlowPrediction, scheduler.FinalSigmaZero, true, nil, 3},
		variant{2, scheduler.BH2, scheduler.FlowPrediction, scheduler.FinalSigmaZero, true, []int{0, 1, 4}, 8},
		variant{2, scheduler.BH2, scheduler.FlowPrediction, scheduler.FinalSigmaMin, false, nil, 8},
		variant{3, scheduler.BH1, scheduler.FlowPrediction, scheduler.FinalSigmaMin, true, nil, 8},
		variant{2, scheduler.BH2, scheduler.Epsilon, scheduler.FinalSigmaZero, true, nil, 8},
		variant{2, scheduler.BH2, scheduler.VPrediction, scheduler.FinalSigmaZero, true, nil, 8},
		variant{2, scheduler.BH1, scheduler.SamplePred, scheduler.FinalSigmaZero, true, nil, 8},
		variant{2, scheduler.BH2, scheduler.FlowPrediction, scheduler.FinalSigmaZero, true, nil, 50},
	)
	for _, v := range vs {
		name := fmt.Sprintf("order%d/%s/%s/%s/lof=%v/disable=%v/N%d", v.order, v.bh, v.pred, v.final, v.lof, v.disable, v.n)
		t.Run(name, func(t *testing.T) {
			s := newUniPC(t, func(c *scheduler.FlowUniPCConfig) {
				c.SolverOrder, c.SolverType, c.PredictionType = v.order, v.bh, v.pred
				c.FinalSigmasType, c.LowerOrderFinal, c.DisableCorrector = v.final, v.lof, v.disable
			}, v.n)
			ref := &uniPCReference{sigmas: s.Sigmas(), order: v.order, bh1: v.bh == scheduler.BH1,
				lowerOrderFinal: v.lof, disable: v.disable, pred: v.pred}
			const size = 200
			x := normals(5, size)
			xr := to64(x)
			for i := range v.n {
				// model(x, i) = −0.4·x + d_i: depends on the sample.
				d := normals(uint64(100+i), size)
				out, outR := make([]float32, size), make([]float64, size)
				for j := range out {
					out[j] = float32(-0.4*float64(x[j]) + float64(d[j]))
					outR[j] = -0.4*xr[j] + float64(d[j])
				}
				if err := s.Step(out, x, i); err != nil {
					t.Fatal(err)
				}
				xr = ref.step(outR, xr)
				closeSample(t, fmt.Sprintf("step %d", i), x, xr, 3e-5)
			}
		})
	}
}

// A perfect flow model (v = ε − x₀) makes every data prediction exactly x₀,
// so all divided differences vanish and UniPC lands on x₀ in any number of
// steps; on Gaussian data (curved paths) the error falls as 1/N² (the final
// first-order step to σ = 0 caps the order at 2), far below Euler's.
func TestFlowUniPCConvergence(t *testing.T) {
	t.Run("perfect model", func(t *testing.T) {
		for _, n := range []int{1, 2, 5, 10} {
			s := newUniPC(t, nil, n)
			const size = 1000
			x0, eps := normals(1, size), normals(2, size)
			sig0 := s.Sigmas()[0]
			x := make([]float32, size)
			v := make([]float32, size)
			for j := range x {
				x[j] = float32((1-sig0)*float64(x0[j]) + sig0*float64(eps[j]))
				v[j] = eps[j] - x0[j]
			}
			for i := range n {
				if err := s.Step(v, x, i); err != nil {
					t.Fatal(err)
				}
			}
			if d := maxAbsDiff32(x, to64(x0)); d > 1e-5 {
				t.Errorf("N=%d: max |x − x₀| = %.3g, want ≤ 1e-5", n, d)
			}
		}
	})
	t.Run("gaussian data", func(t *testing.T) {
		const size = 512
		g := newGaussianFlow(size)
		eps := normals(3, size)
		run := func(s scheduler.Scheduler, n int) float64 {
			sig := s.Sigmas()
			x, end := g.start(eps, sig[0])
			for i := range n {
				if err := s.Step(g.velocity(x, sig[i]), x, i); err != nil {
					t.Fatal(err)
				}
			}
			return maxAbsDiff32(x, end)
		}
		unipc := func(shift float64, n int) float64 {
			return run(newUniPC(t, func(c *scheduler.FlowUniPCConfig) { c.FlowShift = shift }, n), n)
		}
		euler := func(shift float64, n int) float64 {
			c := scheduler.DefaultFlowMatchEulerConfig()
			c.Shift = shift
			s, err := scheduler.NewFlowMatchEuler(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetTimesteps(n); err != nil {
				t.Fatal(err)
			}
			return run(s, n)
		}
		e10, e20, e40, e80 := unipc(1, 10), unipc(1, 20), unipc(1, 40), unipc(1, 80)
		t.Logf("UniPC-2 bh2 shift 1: N=10 %.3g, 20 %.3g, 40 %.3g, 80 %.3g; Euler N=10 %.3g", e10, e20, e40, e80, euler(1, 10))
		for _, r := range []float64{e20 / e40, e40 / e80} {
			if r < 3.3 || r > 5 {
				t.Errorf("error ratio on doubling N = %.3g, want ≈ 4 (second order)", r)
			}
		}
		if eu := euler(1, 10); e10 > eu/5 {
			t.Errorf("N=10: UniPC error %.3g, Euler %.3g; want UniPC 5× smaller", e10, eu)
		}
		if u, eu := unipc(5, 40), euler(5, 40); u > eu/4 {
			t.Errorf("shift 5, N=40: UniPC error %.3g, Euler %.3g; want UniPC 4× smaller", u, eu)
		}
	})
}

func TestFlowUniPCStepOrderAndState(t *testing.T) {
	const size = 64
	v := normals(1, size)
	t.Run("consecutive steps", func(t *testing.T) {
		s := newUniPC(t, nil, 5)
		x := normals(2, size)
		if err := s.Step(v, x, 0); err != nil {
			t.Fatal(err)
		}
		before := slices.Clone(x)
		for _, bad := range []int{0, 2, 4} {
			if err := s.Step(v, x, bad); !errors.Is(err, scheduler.ErrStep) {
				t.Errorf("step %d after step 0: err = %v, want ErrStep", bad, err)
			}
		}
		if !slices.Equal(x, before) {
			t.Error("a rejected step changed the sample")
		}
		if err := s.Step(v, x[:size-1], 1); !errors.Is(err, scheduler.ErrLength) {
			t.Errorf("shorter latent: err = %v, want ErrLength", err)
		}
		if err := s.Step(v[:size-1], x[:size-1], 1); !errors.Is(err, scheduler.ErrLength) {
			t.Errorf("latent length changed mid-generation: err = %v, want ErrLength", err)
		}
		if err := s.Step(v, x, 1); err != nil {
			t.Errorf("step 1 after the rejected calls: %v", err)
		}
	})
	t.Run("SetTimesteps resets", func(t *testing.T) {
		s := newUniPC(t, nil, 4)
		a := normals(3, size)
		for i := range 4 {
			if err := s.Step(v, a, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetTimesteps(4); err != nil {
			t.Fatal(err)
		}
		b := normals(3, size)
		fresh := newUniPC(t, nil, 4)
		c := normals(3, size)
		for i := range 4 {
			if err := s.Step(v, b, i); err != nil {
				t.Fatal(err)
			}
			if err := fresh.Step(v, c, i); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(b, c) {
			t.Error("a reused scheduler gives a different trajectory from a fresh one")
		}
	})
	t.Run("begin index", func(t *testing.T) {
		// Image-to-image starts at a later step: first order, no corrector,
		// so the first update is the Euler step.
		s := newUniPC(t, nil, 10)
		sig := s.Sigmas()
		x := normals(4, size)
		want := make([]float64, size)
		for j := range want {
			want[j] = float64(x[j]) + (sig[4]-sig[3])*float64(v[j])
		}
		if err := s.Step(v, x, 3); err != nil {
			t.Fatal(err)
		}
		closeSample(t, "step 3 first", x, want, 2e-6)
		if err := s.Step(v, x, 4); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("multistep to zero needs lower_order_final", func(t *testing.T) {
		s := newUniPC(t, func(c *scheduler.FlowUniPCConfig) { c.LowerOrderFinal = false }, 3)
		x := normals(5, size)
		for i := range 2 {
			if err := s.Step(v, x, i); err != nil {
				t.Fatal(err)
			}
		}
		before := slices.Clone(x)
		if err := s.Step(v, x, 2); !errors.Is(err, scheduler.ErrStep) {
			t.Errorf("order-2 step to σ=0: err = %v, want ErrStep", err)
		}
		if !slices.Equal(x, before) {
			t.Error("the failed step changed the sample")
		}
	})
}

func TestFlowUniPCConfigErrors(t *testing.T) {
	mods := []func(*scheduler.FlowUniPCConfig){
		func(c *scheduler.FlowUniPCConfig) { c.NumTrainTimesteps = 0 },
		func(c *scheduler.FlowUniPCConfig) { c.FlowShift = 0 },
		func(c *scheduler.FlowUniPCConfig) { c.FlowShift = math.Inf(1) },
		func(c *scheduler.FlowUniPCConfig) { c.SolverOrder = 0 },
		func(c *scheduler.FlowUniPCConfig) { c.SolverOrder = 4 },
		func(c *scheduler.FlowUniPCConfig) { c.SolverType = "midpoint" },
		func(c *scheduler.FlowUniPCConfig) { c.PredictionType = "noise" },
		func(c *scheduler.FlowUniPCConfig) { c.FinalSigmasType = "one" },
	}
	for i, mod := range mods {
		c := scheduler.DefaultFlowUniPCConfig()
		mod(&c)
		if _, err := scheduler.NewFlowUniPC(c); !errors.Is(err, scheduler.ErrConfig) {
			t.Errorf("config %d: err = %v, want ErrConfig", i, err)
		}
	}
}
