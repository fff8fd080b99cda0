package cpu

import (
	"fmt"
	"math"
)

// Softmax kernels work on rows of a row-major [rows, cols] matrix. They are
// numerically stable (the row max is subtracted before exponentiating) and
// accumulate the normalizer in float64. A row whose entries are all -Inf
// (fully masked) comes out as zeros rather than NaN, so that a padded
// query or an empty causal window cannot poison what follows. dst may be x.

// Softmax sets each row of dst to softmax(row of x).
func Softmax(threads int, dst, x []float32, rows, cols int) {
	SoftmaxScaled(threads, dst, x, rows, cols, 1)
}

// SoftmaxScaled sets each row of dst to softmax(scale * row of x), the
// form attention scores take (scale = 1/sqrt(head_dim)) and sampling with a
// temperature (scale = 1/T). scale must be > 0.
func SoftmaxScaled(threads int, dst, x []float32, rows, cols int, scale float32) {
	mustDims("SoftmaxScaled", rows, cols)
	mustLen("SoftmaxScaled", "x", x, rows*cols)
	mustLen("SoftmaxScaled", "dst", dst, rows*cols)
	mustScale("SoftmaxScaled", scale)
	ParallelFor(threads, rows, grainFor(4*cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			softmaxRow(dst[r*cols:(r+1)*cols], x[r*cols:(r+1)*cols], scale)
		}
	})
}

// SoftmaxCausal is SoftmaxScaled over attention scores x of shape
// [batch, tq, tk] with a causal mask: query i (absolute position past+i)
// sees keys 0..past+i, and the later keys get probability 0. For a prompt
// past is 0 and tq == tk; for one decode step against a KV cache holding n
// earlier positions, past = n and tk = n + tq.
func SoftmaxCausal(threads int, dst, x []float32, batch, tq, tk, past int, scale float32) {
	mustDims("SoftmaxCausal", batch, tq, tk, past)
	mustLen("SoftmaxCausal", "x", x, batch*tq*tk)
	mustLen("SoftmaxCausal", "dst", dst, batch*tq*tk)
	mustScale("SoftmaxCausal", scale)
	ParallelFor(threads, batch*tq, grainFor(4*tk), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			d, s := dst[r*tk:(r+1)*tk], x[r*tk:(r+1)*tk]
			n := min(tk, past+r%tq+1)
			softmaxRow(d[:n], s[:n], scale)
			clear(d[n:])
		}
	})
}

// CausalMask fills mask ([tq, tk]) with the additive causal mask: 0 where
// key j is visible to query i (j <= past+i), -Inf elsewhere.
func CausalMask(mask []float32, tq, tk, past int) {
	mustDims("CausalMask", tq, tk, past)
	mustLen("CausalMask", "mask", mask, tq*tk)
	ninf := float32(math.Inf(-1))
	for i := range tq {
		row := mask[i*tk : (i+1)*tk]
		n := min(tk, past+i+1)
		clear(row[:n])
		for j := n; j < tk; j++ {
			row[j] = ninf
		}
	}
}

// LogSoftmax sets each row of dst to log(softmax(row of x)) = x - max -
// log(sum(exp(x - max))), without forming the softmax (no log of a
// rounded-to-zero probability). A fully masked row gives -Inf throughout.
func LogSoftmax(threads int, dst, x []float32, rows, cols int) {
	mustDims("LogSoftmax", rows, cols)
	mustLen("LogSoftmax", "x", x, rows*cols)
	mustLen("LogSoftmax", "dst", dst, rows*cols)
	if cols == 0 {
		return
	}
	ParallelFor(threads, rows, grainFor(4*cols), func(lo, hi int) {
		var buf [256]float32
		for r := lo; r < hi; r++ {
			s, d := x[r*cols:(r+1)*cols], dst[r*cols:(r+1)*cols]
			m := maxF32(s)
			if math.IsInf(float64(m), -1) { // fully masked: -Inf throughout
				copy(d, s)
				continue
			}
			var sum float64
			for i := 0; i < cols; i += len(buf) {
				n := min(len(buf), cols-i)
				sum += expAffine(buf[:n], s[i:i+n], 1, -m)
			}
			c := m + float32(math.Log(sum))
			for i, v := range s {
				d[i] = v - c
			}
		}
	})
}

// softmaxRow sets dst = softmax(scale*x) for one row (dst may be x).
func softmaxRow(dst, x []float32, scale float32) {
	if len(x) == 0 {
		return
	}
	m := maxF32(x)
	if math.IsInf(float64(m), -1) { // fully masked
		clear(dst)
		return
	}
	sum := expAffine(dst, x, scale, -scale*m)
	inv := float32(1 / sum)
	for i := range dst {
		dst[i] *= inv
	}
}

func mustScale(kernel string, scale float32) {
	if !(scale > 0) || math.IsInf(float64(scale), 1) {
		panic(fmt.Sprintf("cpu.%s: scale = %v, want a finite value > 0", kernel, scale))
	}
}
