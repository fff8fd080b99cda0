package cpu

import "math"

// Activations. The sigmoid-shaped ones are computed as x / (1 + e**-z),
// which is exact in form for every argument (no 1 + tanh cancellation for
// negative inputs), with e**-z from expAffine a block at a time. dst may be
// x (or gate) for in-place use.

const actBlock = 256 // elements per expAffine call: a 1 KiB stack buffer

// GELU sets dst = x * Φ(x) = 0.5 * x * erfc(-x/√2), the exact (erf) form
// of the Gaussian error linear unit (Hendrycks & Gimpel 2016; torch's
// approximate="none"). erfc(z) for z = |x|/√2 comes from the Chebyshev
// fit t*exp(-z² + P(t)), t = 1/(1 + z/2), whose relative error is below
// 1.2e-7 for all z >= 0 (Press et al., Numerical Recipes, 2nd ed., §6.2,
// erfcc); Φ(x) is erfc/2 for x < 0, which keeps full relative precision in
// the negative tail where 1 + erf(x/√2) would cancel, and 1 - erfc/2 for
// x >= 0.
func GELU(threads int, dst, x []float32) {
	mapUnary(threads, "GELU", geluVec, dst, x)
}

// GELUTanh sets dst = 0.5 * x * (1 + tanh(√(2/π) * (x + 0.044715 x³))), the
// tanh approximation of GELU (Hendrycks & Gimpel 2016, sec. 2; torch's
// approximate="tanh", used by GPT-2 and the Wan DiT's feed-forward),
// computed as x / (1 + e**(-2u)) with u the tanh argument.
func GELUTanh(threads int, dst, x []float32) {
	mapUnary(threads, "GELUTanh", geluTanhVec, dst, x)
}

// SiLU sets dst = x * sigmoid(x) = x / (1 + e**-x) (also called swish).
func SiLU(threads int, dst, x []float32) {
	mapUnary(threads, "SiLU", siluVec, dst, x)
}

// SwiGLU sets dst = silu(gate) * up elementwise, the gated feed-forward of
// Llama and Qwen2 (Shazeer 2020). dst may be gate or up.
func SwiGLU(threads int, dst, gate, up []float32) {
	mustLen("SwiGLU", "up", up, len(gate))
	mustLen("SwiGLU", "dst", dst, len(gate))
	const chunk = 1 << 12
	n := len(gate)
	ParallelFor(threads, (n+chunk-1)/chunk, grainFor(chunk), func(lo, hi int) {
		lo, hi = lo*chunk, min(hi*chunk, n)
		swigluVec(dst[lo:hi], gate[lo:hi], up[lo:hi])
	})
}

// SwiGLUFused is SwiGLU over a fused gate/up projection: gateUp is
// [rows, 2*hidden] with the gate in the first hidden columns of each row and
// up in the last (vLLM's SiluAndMul layout), dst is [rows, hidden].
func SwiGLUFused(threads int, dst, gateUp []float32, rows, hidden int) {
	mustDims("SwiGLUFused", rows, hidden)
	mustLen("SwiGLUFused", "gateUp", gateUp, rows*2*hidden)
	mustLen("SwiGLUFused", "dst", dst, rows*hidden)
	ParallelFor(threads, rows, grainFor(hidden), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := gateUp[r*2*hidden : (r+1)*2*hidden]
			swigluVec(dst[r*hidden:(r+1)*hidden], row[:hidden], row[hidden:])
		}
	})
}

func geluVecGo(dst, x []float32) {
	var e, tt [actBlock]float32
	for len(x) > 0 {
		n := min(len(x), actBlock)
		xs, d := x[:n], dst[:n]
		for i, v := range xs {
			// The exponent in float64: it reaches -z² (hundreds), and its float32
			// rounding would be the largest error term.
			z := math.Abs(float64(v)) * (1 / math.Sqrt2)
			t := 1 / (1 + 0.5*z)
			p := 0.17087277
			p = p*t - 0.82215223
			p = p*t + 1.48851587
			p = p*t - 1.13520398
			p = p*t + 0.27886807
			p = p*t - 0.18628806
			p = p*t + 0.09678418
			p = p*t + 0.37409196
			p = p*t + 1.00002368
			p = p*t - 1.26551223
			e[i] = float32(p - z*z)
			tt[i] = float32(t)
		}
		expAffine(e[:n], e[:n], 1, 0)
		for i, v := range xs {
			half := 0.5 * tt[i] * e[i] // erfc(|x|/√2)/2 = Φ(-|x|)
			neg := math.Float32bits(half)
			pos := math.Float32bits(1 - half)
			var m uint32
			if v < 0 { // a CMOV, not a branch: the sign of activations is random
				m = ^uint32(0)
			}
			d[i] = v * math.Float32frombits(neg&m|pos&^m)
		}
		dst, x = dst[n:], x[n:]
	}
}

func geluTanhVec(dst, x []float32) {
	var e [actBlock]float32
	for len(x) > 0 {
		n := min(len(x), actBlock)
		xs, d := x[:n], dst[:n]
		for i, v := range xs {
			e[i] = sqrt2pi * (v + 0.044715*v*v*v)
		}
		expAffine(e[:n], e[:n], -2, 0)
		for i, v := range xs {
			d[i] = v / (1 + e[i])
		}
		dst, x = dst[n:], x[n:]
	}
}

func siluVec(dst, x []float32) {
	var e [actBlock]float32
	for len(x) > 0 {
		n := min(len(x), actBlock)
		xs, d := x[:n], dst[:n]
		expAffine(e[:n], xs, -1, 0)
		for i, v := range xs {
			d[i] = v / (1 + e[i])
		}
		dst, x = dst[n:], x[n:]
	}
}

func swigluVec(dst, gate, up []float32) {
	var e [actBlock]float32
	for len(gate) > 0 {
		n := min(len(gate), actBlock)
		g, u, d := gate[:n], up[:n], dst[:n]
		expAffine(e[:n], g, -1, 0)
		for i, v := range g {
			d[i] = v / (1 + e[i]) * u[i]
		}
		dst, gate, up = dst[n:], gate[n:], up[n:]
	}
}
