package nn_test

// Float64 references for the layers, written as plain loops from the
// layers' definitions (PyTorch's and Hugging Face's), never through the
// code under test or the device kernels. Each reference value carries a
// first-order bound on how far a correct float32 evaluation of the same
// expression, on the same float32 inputs and weights, may lie from it; the
// tests accept a layer's output when it is within twice that bound (the
// factor covers the second-order terms the bounds drop and the reference's
// own float64 rounding, about 2^-29 of a float32 bound).
//
// The bounds use Higham, "Accuracy and Stability of Numerical Algorithms"
// (2nd ed., 2002): u = 2^-24 is float32's unit roundoff (§2.1), and a sum
// or dot product of n terms evaluated in float32, in any order, blocked or
// with FMA, lies within γ_n·Σ|terms| of the exact value, γ_n = n·u/(1−n·u)
// (Lemma 3.1, eq. 3.5). An error already in an input propagates through
// the exact derivative (first order). Elementwise functions (exp, erf,
// tanh) are taken as evaluated at x(1+θ), |θ| ≤ 4u, with a result within
// 8u relative: device/cpu documents expf within 2 ulp (4u) and its erfc
// fit within 1.2e-7 (2u), and the rational forms around them add a few
// roundings.

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
)

// u is float32's unit roundoff (Higham 2002, §2.1).
const u = 0x1p-24

// gamma is Higham's γ_n = n·u/(1−n·u).
func gamma(n int) float64 { return float64(n) * u / (1 - float64(n)*u) }

// approx is a float64 reference: values v and, per value, a first-order
// bound e on the error of a correct float32 evaluation.
type approx struct{ v, e []float64 }

func newApprox(n int) approx { return approx{make([]float64, n), make([]float64, n)} }

// exact is a float32 tensor's values, exact in float64.
func exact(t *tensor.Tensor) approx { return approx{f64(t), make([]float64, t.NumElements())} }

// f64 reads a float32 tensor, in row-major order.
func f64(t *tensor.Tensor) []float64 {
	c, err := t.Contiguous()
	if err != nil {
		panic(err)
	}
	defer c.Release()
	out := make([]float64, c.NumElements())
	for i, v := range c.Float32s() {
		out[i] = float64(v)
	}
	return out
}

// f64OrNil is f64 for an optional weight.
func f64OrNil(t *tensor.Tensor) []float64 {
	if t == nil {
		return nil
	}
	return f64(t)
}

// uniform returns a tensor of seeded values in [lo, hi) from mem (nil: the
// default allocator).
func uniform(mem memory.Allocator, seed uint64, lo, hi float64, shape ...int) *tensor.Tensor {
	t, err := tensor.New(tensor.Float32, shape, tensor.WithAllocator(mem))
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := range t.Float32s() {
		t.Float32s()[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return t
}

// perturbed is a Source whose rank-1 weights (norm scales, biases) are
// nn.Random's plus U(−0.5, 0.5), so that a norm's scale is not all ones
// and its bias not all zeros, and a layer that ignored either would fail.
type perturbed struct{ seed uint64 }

func (p perturbed) Tensor(name string, shape []int, init nn.Init) (*tensor.Tensor, error) {
	t, err := nn.Random(p.seed).Tensor(name, shape, init)
	if err != nil || len(shape) != 1 {
		return t, err
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(p.seed, h.Sum64()))
	for i := range t.Float32s() {
		t.Float32s()[i] += float32(rng.Float64() - 0.5)
	}
	return t, nil
}

// checkClose compares a layer's output with a reference: shape exactly,
// values within twice the reference's bound. It also fails when the bound
// exceeds 1e-3 of the largest value, which would let a wrong index, scale
// or missing term through. (The single-kernel layers' bounds are near
// 1e-6 of their values, the attention layers' a few 1e-5 to 2e-4: the
// first-order bound adds worst cases through the norm, the scores and the
// softmax, and the observed errors stay below a few thousandths of it.)
func checkClose(t *testing.T, got *tensor.Tensor, shape []int, want approx) {
	t.Helper()
	if !tensor.SameShape(got.Shape(), shape) {
		t.Fatalf("shape %v, want %v", got.Shape(), shape)
	}
	g := f64(got)
	if len(g) != len(want.v) {
		t.Fatalf("%d values, reference has %d", len(g), len(want.v))
	}
	var maxV, maxE float64
	for i := range want.v {
		maxV, maxE = max(maxV, math.Abs(want.v[i])), max(maxE, want.e[i])
	}
	if maxE > 1e-3*maxV {
		t.Fatalf("error bound %.3g is more than 1e-3 of the largest value %.3g: the test would not catch much", maxE, maxV)
	}
	bad := 0
	for i := range want.v {
		if d := math.Abs(g[i] - want.v[i]); !(d <= 2*want.e[i]) {
			if bad++; bad <= 5 {
				t.Errorf("element %d: %.9g, want %.9g (off by %.3g, bound %.3g)", i, g[i], want.v[i], d, 2*want.e[i])
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d elements out of bounds in all", bad)
	}
}

// refLinear is y[r] = W·x[r] + b. Bound: a dot product of In terms plus
// the bias, γ_{In+1}·(Σ|W x| + |b|), and the input's error through |W|.
func refLinear(l *nn.Linear, x approx) approx {
	w, b := f64(l.W), f64OrNil(l.B)
	rows := len(x.v) / l.In
	y := newApprox(rows * l.Out)
	for r := 0; r < rows; r++ {
		xv, xe := x.v[r*l.In:(r+1)*l.In], x.e[r*l.In:(r+1)*l.In]
		for o := 0; o < l.Out; o++ {
			var s, abs, prop float64
			if b != nil {
				s, abs = b[o], math.Abs(b[o])
			}
			for i, wi := range w[o*l.In : (o+1)*l.In] {
				s += wi * xv[i]
				abs += math.Abs(wi * xv[i])
				prop += math.Abs(wi) * xe[i]
			}
			y.v[r*l.Out+o] = s
			y.e[r*l.Out+o] = gamma(l.In+1)*abs + prop
		}
	}
	return y
}

// activation is an elementwise function and its derivative.
type activation struct{ f, df func(float64) float64 }

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// Phi is the standard normal CDF, via float64 erfc.
func Phi(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

const geluTanhA, geluTanhC = 0.7978845608028654, 0.044715 // √(2/π); Hendrycks & Gimpel 2016, eq. in §2

var activations = map[nn.Activation]activation{
	// silu(x) = x·σ(x); silu' = σ(x)·(1 + x·(1−σ(x))).
	nn.ActSiLU: {func(x float64) float64 { return x * sigmoid(x) },
		func(x float64) float64 { s := sigmoid(x); return s * (1 + x*(1-s)) }},
	// gelu(x) = x·Φ(x); gelu' = Φ(x) + x·φ(x).
	nn.ActGELU: {func(x float64) float64 { return x * Phi(x) },
		func(x float64) float64 { return Phi(x) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi) }},
	// gelu_tanh(x) = x/2·(1 + tanh(a(x + c x³))).
	nn.ActGELUTanh: {func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(geluTanhA*(x+geluTanhC*x*x*x))) },
		func(x float64) float64 {
			th := math.Tanh(geluTanhA * (x + geluTanhC*x*x*x))
			return 0.5*(1+th) + 0.5*x*(1-th*th)*geluTanhA*(1+3*geluTanhC*x*x)
		}},
}

// refAct applies an activation. Bound: |f'(x)|·(e_x + 4u|x|) + 8u|f(x)|
// (the model of an elementwise function in the file comment).
func refAct(a activation, x approx) approx {
	y := newApprox(len(x.v))
	for i, v := range x.v {
		y.v[i] = a.f(v)
		y.e[i] = math.Abs(a.df(v))*(x.e[i]+4*u*math.Abs(v)) + 8*u*math.Abs(y.v[i])
	}
	return y
}

// refMul is a·b elementwise: each factor's error times the other, plus
// one rounding.
func refMul(a, b approx) approx {
	y := newApprox(len(a.v))
	for i := range a.v {
		y.v[i] = a.v[i] * b.v[i]
		y.e[i] = math.Abs(a.v[i])*b.e[i] + math.Abs(b.v[i])*a.e[i] + u*math.Abs(y.v[i])
	}
	return y
}

// refMLP is down(act(gate(x))·up(x)) when gated, else down(act(up(x))).
func refMLP(m *nn.MLP, x approx) approx {
	up := refLinear(m.Up, x)
	var h approx
	if m.Cfg.Gated {
		h = refMul(refAct(activations[m.Cfg.Act], refLinear(m.Gate, x)), up)
	} else {
		h = refAct(activations[m.Cfg.Act], up)
	}
	return refLinear(m.Down, h)
}

// normalize writes the normalization of the n values at idx(0..n-1) into
// y: ((x − μ)·r when center, else x·r)·w(i) + b(i), with r = 1/√(var+ε)
// (or 1/√(mean x²+ε)).
//
// Bounds, for a two-pass (or wider) variance: with centering, μ is a sum
// of n terms over n, within δμ = γ_{n+1}·mean|x|; the variance a sum of n
// squares of (x−μ̂) over n, within γ_{n+3} relative (δμ enters it only to
// second order); r within half that plus 2u (√ and the division); the
// final (x−μ)·r·w + b within γ_3·(|x̂ w| + |b|). Without centering the
// mean square is within γ_{n+1} and the product x·r·w within γ_2. Input
// errors go through the Jacobian of x̂ = (x−μ)r, r·(δ_ij − 1/n − x̂_i x̂_j/n)
// (without the 1/n term for RMS).
func normalize(x, y approx, n int, idx func(int) int, w, b func(int) float64, eps float64, center bool) {
	var mean, meanAbs, meanErr float64
	for k := 0; k < n; k++ {
		i := idx(k)
		meanAbs += math.Abs(x.v[i]) / float64(n)
		meanErr += x.e[i] / float64(n)
		if center {
			mean += x.v[i] / float64(n)
		}
	}
	var sq float64
	for k := 0; k < n; k++ {
		d := x.v[idx(k)] - mean
		sq += d * d / float64(n)
	}
	r := 1 / math.Sqrt(sq+eps)
	var xi float64 // mean(|x̂|·e)
	for k := 0; k < n; k++ {
		i := idx(k)
		xi += math.Abs((x.v[i]-mean)*r) * x.e[i] / float64(n)
	}
	for k := 0; k < n; k++ {
		i := idx(k)
		xh := (x.v[i] - mean) * r
		wk, bk := w(k), b(k)
		y.v[i] = xh*wk + bk
		if center {
			dmu := gamma(n+1) * meanAbs
			y.e[i] = math.Abs(wk)*r*(dmu+math.Abs(x.v[i]-mean)*(u+gamma(n+3)/2+2*u)) +
				gamma(3)*(math.Abs(xh*wk)+math.Abs(bk)) +
				math.Abs(wk)*r*(x.e[i]+meanErr+math.Abs(xh)*xi)
		} else {
			y.e[i] = math.Abs(xh*wk)*(gamma(n+1)/2+2*u+gamma(2)) +
				math.Abs(wk)*r*(x.e[i]+math.Abs(xh)*xi)
		}
	}
}

func weightOr(w []float64, def float64) func(int) float64 {
	if w == nil {
		return func(int) float64 { return def }
	}
	return func(k int) float64 { return w[k] }
}

// refRMSNorm normalizes each row of cols values.
func refRMSNorm(x approx, cols int, w []float64, eps float64) approx {
	y := newApprox(len(x.v))
	for r := 0; r < len(x.v)/cols; r++ {
		normalize(x, y, cols, func(k int) int { return r*cols + k }, weightOr(w, 1), weightOr(nil, 0), eps, false)
	}
	return y
}

// refLayerNorm normalizes each row of cols values.
func refLayerNorm(x approx, cols int, w, b []float64, eps float64) approx {
	y := newApprox(len(x.v))
	for r := 0; r < len(x.v)/cols; r++ {
		normalize(x, y, cols, func(k int) int { return r*cols + k }, weightOr(w, 1), weightOr(b, 0), eps, true)
	}
	return y
}

// refGroupNorm normalizes x [n, c, spatial] over each group of c/groups
// channels and all their positions (Wu & He 2018), with per-channel w, b.
func refGroupNorm(x approx, n, c, spatial, groups int, w, b []float64, eps float64) approx {
	y := newApprox(len(x.v))
	cg := c / groups
	for i := 0; i < n; i++ {
		for g := 0; g < groups; g++ {
			base := (i*c + g*cg) * spatial
			ch := func(k int) int { return g*cg + k/spatial }
			normalize(x, y, cg*spatial, func(k int) int { return base + k },
				func(k int) float64 { return weightOr(w, 1)(ch(k)) }, func(k int) float64 { return weightOr(b, 0)(ch(k)) }, eps, true)
		}
	}
	return y
}

// refRoPE rotates z [B, T, H, D] (all D entries) at position pos(b, t),
// angle pos·θ^(−2i/D) for pair i (Su et al. 2021): pairs (i, i+D/2) for
// RopeHalf, (2i, 2i+1) for RopeInterleaved. Bound: the two products and
// the sum (γ_3), cos and sin rounded to float32 (u each) from an angle
// within 2u relative, and the inputs' errors through |cos| and |sin|.
func refRoPE(z approx, b, t, h, d int, theta float64, mode device.RopeMode, pos func(b, t int) int) approx {
	y := approx{append([]float64(nil), z.v...), append([]float64(nil), z.e...)}
	for bi := 0; bi < b; bi++ {
		for ti := 0; ti < t; ti++ {
			p := float64(pos(bi, ti))
			for hi := 0; hi < h; hi++ {
				base := ((bi*t+ti)*h + hi) * d
				for i := 0; i < d/2; i++ {
					i0, i1 := base+i, base+i+d/2
					if mode == device.RopeInterleaved {
						i0, i1 = base+2*i, base+2*i+1
					}
					ang := p * math.Pow(theta, -2*float64(i)/float64(d))
					c, s := math.Cos(ang), math.Sin(ang)
					x0, x1 := z.v[i0], z.v[i1]
					round := (gamma(3) + 2*u*(1+math.Abs(ang))) * (math.Abs(x0) + math.Abs(x1))
					y.v[i0] = x0*c - x1*s
					y.v[i1] = x1*c + x0*s
					y.e[i0] = math.Abs(c)*z.e[i0] + math.Abs(s)*z.e[i1] + round
					y.e[i1] = math.Abs(c)*z.e[i1] + math.Abs(s)*z.e[i0] + round
				}
			}
		}
	}
	return y
}

// sdpa is scaled-dot-product attention, softmax(QKᵀ/√D)·V (Vaswani et al.
// 2017), for q [B, Tq, H, D], k and v [B, Tk, KVH, D]; query head h reads
// kv head h/(H/KVH) (grouped-query attention, Ainslie et al. 2023). Query
// i sees key j when j ≤ past+i (if causal) and keyMask[b*Tk+j] (if set);
// a query that sees no key gives zeros.
//
// Bound: scores are dot products of D terms times the scale, within
// γ_{D+1}·Σ|q k|·scale plus the inputs' errors. Softmax moves p_j by at
// most p_j·(e_j + Σ_k p_k e_k) for score errors e (its Jacobian is
// p_j(δ_jk − p_k)); its own rounding is u·|s_j − max| (the shifted
// argument), 4u for exp, γ_n for the normaliser over n keys, u for the
// division, and 6u per online-softmax rescale, at most one per key
// (Milakov & Gimelshein 2018). The output Σ p_j v_j is a sum of n terms.
func sdpa(q, k, v approx, b, tq, tk, h, kvh, d int, causal bool, past int, keyMask []bool) approx {
	out := newApprox(b * tq * h * d)
	scale := 1 / math.Sqrt(float64(d))
	grp := h / kvh
	s, es, p, dp := make([]float64, tk), make([]float64, tk), make([]float64, tk), make([]float64, tk)
	for bi := 0; bi < b; bi++ {
		for hi := 0; hi < h; hi++ {
			g := hi / grp
			for i := 0; i < tq; i++ {
				qo := ((bi*tq+i)*h + hi) * d
				var keys []int
				for j := 0; j < tk; j++ {
					if (!causal || j <= past+i) && (keyMask == nil || keyMask[bi*tk+j]) {
						keys = append(keys, j)
					}
				}
				if len(keys) == 0 {
					continue
				}
				m := math.Inf(-1)
				for _, j := range keys {
					ko := ((bi*tk+j)*kvh + g) * d
					var dot, abs, prop float64
					for x := 0; x < d; x++ {
						dot += q.v[qo+x] * k.v[ko+x]
						abs += math.Abs(q.v[qo+x] * k.v[ko+x])
						prop += math.Abs(q.v[qo+x])*k.e[ko+x] + math.Abs(k.v[ko+x])*q.e[qo+x]
					}
					s[j], es[j] = dot*scale, (gamma(d+1)*abs+prop)*scale
					m = math.Max(m, s[j])
				}
				var z, esMean float64
				for _, j := range keys {
					p[j] = math.Exp(s[j] - m)
					z += p[j]
				}
				for _, j := range keys {
					p[j] /= z
					esMean += p[j] * es[j]
				}
				n := len(keys)
				for _, j := range keys {
					rho := u*math.Abs(s[j]-m) + float64(5+6*n)*u + gamma(n)
					dp[j] = p[j]*(es[j]+esMean) + rho*p[j]
				}
				for x := 0; x < d; x++ {
					var acc, abs, prop float64
					for _, j := range keys {
						vo := ((bi*tk+j)*kvh+g)*d + x
						acc += p[j] * v.v[vo]
						abs += p[j] * math.Abs(v.v[vo])
						prop += dp[j]*math.Abs(v.v[vo]) + p[j]*v.e[vo]
					}
					out.v[qo+x] = acc
					out.e[qo+x] = gamma(n)*abs + prop
				}
			}
		}
	}
	return out
}

// attnRef describes one reference attention pass.
type attnRef struct {
	kv      *approx // cross-attention context [B, Tk, KVDim]; nil: self-attention over x
	tk      int
	causal  bool
	theta   float64 // RoPE base; 0: no RoPE
	mode    device.RopeMode
	keyMask []bool
}

// refAttention is an Attention layer's forward pass on x [B, T, Dim]: the
// projections, the q/k norms, RoPE at positions 0..T−1, attention and the
// output projection.
func refAttention(a *nn.Attention, x approx, b, t int, o attnRef) approx {
	c := a.Cfg
	src, tk := x, t
	if o.kv != nil {
		src, tk = *o.kv, o.tk
	}
	q, k, v := refLinear(a.Q, x), refLinear(a.K, src), refLinear(a.V, src)
	if a.QNorm != nil {
		// [B, T, H·D] and [B, T, H, D] share a layout: a per-head norm is
		// one over rows of D, a whole-projection norm one over rows of H·D.
		qc, kc := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
		if c.QKNormPerHead {
			qc, kc = c.HeadDim, c.HeadDim
		}
		q = refRMSNorm(q, qc, f64(a.QNorm.W), float64(a.QNorm.Eps))
		k = refRMSNorm(k, kc, f64(a.KNorm.W), float64(a.KNorm.Eps))
	}
	if o.theta != 0 {
		pos := func(_, t int) int { return t }
		q = refRoPE(q, b, t, c.Heads, c.HeadDim, o.theta, o.mode, pos)
		k = refRoPE(k, b, tk, c.KVHeads, c.HeadDim, o.theta, o.mode, pos)
	}
	att := sdpa(q, k, v, b, t, tk, c.Heads, c.KVHeads, c.HeadDim, o.causal, 0, o.keyMask)
	return refLinear(a.O, att)
}

// spread expands a ConvOptions slice to one entry per spatial dim: nil is
// def, one entry is every dim's.
func spread(s []int, n, def int) []int {
	out := make([]int, n)
	for i := range out {
		switch len(s) {
		case 0:
			out[i] = def
		case 1:
			out[i] = s[0]
		default:
			out[i] = s[i]
		}
	}
	return out
}

// refConv is torch.nn.functional.conv{1,2,3}d: x [N, C, in...], w [O,
// C/groups, k...], out[n, o, p...] = b[o] + Σ_{c in o's group, k...}
// w[o, c, k...]·x[n, c, p·stride − padBegin + k·dilation...] (zero outside
// x). Causal moves all of the first dim's padding to the front. Bound: a
// dot product of C/groups·prod(k) terms plus the bias.
func refConv(x approx, xs []int, w, b []float64, ws []int, opt device.ConvOptions) (approx, []int) {
	sd := len(xs) - 2
	n, cin, cout := xs[0], xs[1], ws[0]
	g := max(opt.Groups, 1)
	cg, og := cin/g, cout/g
	stride, dil := spread(opt.Stride, sd, 1), spread(opt.Dilation, sd, 1)
	pb, pe := spread(opt.Padding, sd, 0), spread(opt.Padding, sd, 0)
	if opt.PadBegin != nil || opt.PadEnd != nil {
		pb, pe = spread(opt.PadBegin, sd, 0), spread(opt.PadEnd, sd, 0)
	}
	if opt.Causal {
		pb[0], pe[0] = pb[0]+pe[0], 0
	}
	in, k, out := xs[2:], ws[2:], make([]int, sd)
	for i := range out {
		out[i] = (in[i]+pb[i]+pe[i]-dil[i]*(k[i]-1)-1)/stride[i] + 1
	}
	shape := append([]int{n, cout}, out...)
	y := newApprox(prodInts(shape))
	taps := prodInts(k)
	terms := cg*taps + 1
	pos, kp, ip := make([]int, sd), make([]int, sd), make([]int, sd)
	for ni := 0; ni < n; ni++ {
		for o := 0; o < cout; o++ {
			grp := o / og
			for p := 0; p < prodInts(out); p++ {
				unravel(p, out, pos)
				var s, abs, prop float64
				if b != nil {
					s, abs = b[o], math.Abs(b[o])
				}
				for c := 0; c < cg; c++ {
					ci := grp*cg + c
					for kk := 0; kk < taps; kk++ {
						unravel(kk, k, kp)
						inside := true
						for d := range ip {
							ip[d] = pos[d]*stride[d] - pb[d] + kp[d]*dil[d]
							inside = inside && ip[d] >= 0 && ip[d] < in[d]
						}
						if !inside {
							continue
						}
						xi := (ni*cin+ci)*prodInts(in) + ravel(ip, in)
						wv := w[(o*cg+c)*taps+kk]
						s += wv * x.v[xi]
						abs += math.Abs(wv * x.v[xi])
						prop += math.Abs(wv) * x.e[xi]
					}
				}
				yi := (ni*cout+o)*prodInts(out) + p
				y.v[yi], y.e[yi] = s, gamma(terms)*abs+prop
			}
		}
	}
	return y, shape
}

// refConvTranspose1d is torch.nn.functional.conv_transpose1d: x [N, C, L],
// w [C, O/groups, K]; input position i, tap k adds x[n, c, i]·w[c, o, k]
// into output position i·stride − padding + k·dilation. Bound: each output
// is a sum of at most C/groups·K products plus the bias.
func refConvTranspose1d(x approx, xs []int, w, b []float64, ws []int, opt device.ConvTranspose1dOptions) (approx, []int) {
	n, cin, l := xs[0], xs[1], xs[2]
	g := max(opt.Groups, 1)
	og, kn := ws[1], ws[2]
	cout, cg := og*g, cin/g
	stride, dil := max(opt.Stride, 1), max(opt.Dilation, 1)
	lout := (l-1)*stride - 2*opt.Padding + dil*(kn-1) + opt.OutputPadding + 1
	shape := []int{n, cout, lout}
	y := newApprox(n * cout * lout)
	abs := make([]float64, len(y.v))
	for ni := 0; ni < n; ni++ {
		for o := 0; o < cout; o++ {
			for t := 0; t < lout; t++ {
				if b != nil {
					y.v[(ni*cout+o)*lout+t] = b[o]
					abs[(ni*cout+o)*lout+t] = math.Abs(b[o])
				}
			}
		}
		for c := 0; c < cin; c++ {
			grp := c / cg
			for i := 0; i < l; i++ {
				xi := (ni*cin+c)*l + i
				for oo := 0; oo < og; oo++ {
					o := grp*og + oo
					for kk := 0; kk < kn; kk++ {
						t := i*stride - opt.Padding + kk*dil
						if t < 0 || t >= lout {
							continue
						}
						wv := w[(c*og+oo)*kn+kk]
						yi := (ni*cout+o)*lout + t
						y.v[yi] += wv * x.v[xi]
						abs[yi] += math.Abs(wv * x.v[xi])
						y.e[yi] += math.Abs(wv) * x.e[xi]
					}
				}
			}
		}
	}
	for i := range y.e {
		y.e[i] += gamma(cg*kn+1) * abs[i]
	}
	return y, shape
}

func prodInts(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

// unravel writes the row-major coordinates of flat index i in shape.
func unravel(i int, shape, out []int) {
	for d := len(shape) - 1; d >= 0; d-- {
		out[d] = i % shape[d]
		i /= shape[d]
	}
}

func ravel(idx, shape []int) int {
	i := 0
	for d := range shape {
		i = i*shape[d] + idx[d]
	}
	return i
}

// bg is the context of tests that do not profile.
var bg = context.Background()
