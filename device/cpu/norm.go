package cpu

import "math"

// Normalization kernels. Statistics are computed in float64 with two passes
// (mean, then the mean of squared deviations), so the variance of a row
// with a large mean does not cancel to garbage; the normalized values are
// then formed in float32. dst may be x.

// LayerNorm normalizes each row of x ([rows, cols]) to zero mean and unit
// variance, then applies the optional per-column weight and bias ([cols];
// nil means 1 and 0): dst = (x - mean) / sqrt(var + eps) * weight + bias,
// with the biased variance (divide by cols), as in Ba, Kiros & Hinton 2016
// and torch.nn.LayerNorm.
func LayerNorm(threads int, dst, x []float32, rows, cols int, weight, bias []float32, eps float32) {
	mustDims("LayerNorm", rows, cols)
	mustLen("LayerNorm", "x", x, rows*cols)
	mustLen("LayerNorm", "dst", dst, rows*cols)
	if weight != nil {
		mustLen("LayerNorm", "weight", weight, cols)
	}
	if bias != nil {
		mustLen("LayerNorm", "bias", bias, cols)
	}
	if cols == 0 {
		return
	}
	ParallelFor(threads, rows, grainFor(3*cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s, d := x[r*cols:(r+1)*cols], dst[r*cols:(r+1)*cols]
			mean, rstd := meanRstd(s, eps)
			normAffine(d, s, mean, rstd, weight, bias)
		}
	})
}

// RMSNorm scales each row of x ([rows, cols]) by the reciprocal of its root
// mean square and by the optional weight ([cols]; nil means 1):
// dst = x / sqrt(mean(x²) + eps) * weight (Zhang & Sennrich 2019), the
// norm of Llama, Qwen2 and the Wan DiT.
func RMSNorm(threads int, dst, x []float32, rows, cols int, weight []float32, eps float32) {
	mustDims("RMSNorm", rows, cols)
	mustLen("RMSNorm", "x", x, rows*cols)
	mustLen("RMSNorm", "dst", dst, rows*cols)
	if weight != nil {
		mustLen("RMSNorm", "weight", weight, cols)
	}
	if cols == 0 {
		return
	}
	ParallelFor(threads, rows, grainFor(2*cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s, d := x[r*cols:(r+1)*cols], dst[r*cols:(r+1)*cols]
			var q0, q1, q2, q3 float64
			t := s
			for len(t) >= 4 {
				a, b, c, e := float64(t[0]), float64(t[1]), float64(t[2]), float64(t[3])
				q0 += a * a
				q1 += b * b
				q2 += c * c
				q3 += e * e
				t = t[4:]
			}
			for _, v := range t {
				q0 += float64(v) * float64(v)
			}
			ms := (q0 + q1 + q2 + q3) / float64(cols)
			rstd := float32(1 / math.Sqrt(ms+float64(eps)))
			if weight == nil {
				for i, v := range s {
					d[i] = v * rstd
				}
				continue
			}
			w := weight[:len(s)]
			for i, v := range s {
				d[i] = v * rstd * w[i]
			}
		}
	})
}

// GroupNorm normalizes x ([n, c, spatial], spatial being the product of the
// spatial dims: H*W, or T*H*W) over groups of c/groups consecutive channels
// and all spatial positions, then applies the optional per-channel weight
// and bias ([c]; nil means 1 and 0), as in Wu & He 2018 and
// torch.nn.GroupNorm. c must be a multiple of groups.
func GroupNorm(threads int, dst, x []float32, n, c, spatial, groups int, weight, bias []float32, eps float32) {
	mustDims("GroupNorm", n, c, spatial)
	mustPositive("GroupNorm", "groups", groups)
	if c%groups != 0 {
		panic("cpu.GroupNorm: channels must be a multiple of groups")
	}
	mustLen("GroupNorm", "x", x, n*c*spatial)
	mustLen("GroupNorm", "dst", dst, n*c*spatial)
	if weight != nil {
		mustLen("GroupNorm", "weight", weight, c)
	}
	if bias != nil {
		mustLen("GroupNorm", "bias", bias, c)
	}
	cg := c / groups
	size := cg * spatial
	if size == 0 {
		return
	}
	ParallelFor(threads, n*groups, grainFor(3*size), func(lo, hi int) {
		for task := lo; task < hi; task++ {
			off := task * size
			s, d := x[off:off+size], dst[off:off+size]
			mean, rstd := meanRstd(s, eps)
			ch0 := task % groups * cg
			for k := range cg {
				ss, dd := s[k*spatial:(k+1)*spatial], d[k*spatial:(k+1)*spatial]
				w, b := float32(1), float32(0)
				if weight != nil {
					w = weight[ch0+k]
				}
				if bias != nil {
					b = bias[ch0+k]
				}
				scale := rstd * w
				for i, v := range ss {
					dd[i] = (v-mean)*scale + b
				}
			}
		}
	})
}

// meanRstd returns the mean of s and 1/sqrt(var + eps), both computed in
// float64 in two passes and rounded to float32 at the end.
func meanRstd(s []float32, eps float32) (mean, rstd float32) {
	m := sumF64(s) / float64(len(s))
	var q0, q1, q2, q3 float64
	t := s
	for len(t) >= 4 {
		a, b, c, e := float64(t[0])-m, float64(t[1])-m, float64(t[2])-m, float64(t[3])-m
		q0 += a * a
		q1 += b * b
		q2 += c * c
		q3 += e * e
		t = t[4:]
	}
	for _, v := range t {
		a := float64(v) - m
		q0 += a * a
	}
	v := (q0 + q1 + q2 + q3) / float64(len(s))
	return float32(m), float32(1 / math.Sqrt(v+float64(eps)))
}

// normAffine sets d = (s - mean) * rstd * weight + bias (nil weight: 1, nil
// bias: 0).
func normAffine(d, s []float32, mean, rstd float32, weight, bias []float32) {
	d = d[:len(s)]
	switch {
	case weight == nil && bias == nil:
		for i, v := range s {
			d[i] = (v - mean) * rstd
		}
	case bias == nil:
		w := weight[:len(s)]
		for i, v := range s {
			d[i] = (v - mean) * rstd * w[i]
		}
	case weight == nil:
		b := bias[:len(s)]
		for i, v := range s {
			d[i] = (v-mean)*rstd + b[i]
		}
	default:
		w, b := weight[:len(s)], bias[:len(s)]
		for i, v := range s {
			d[i] = (v-mean)*rstd*w[i] + b[i]
		}
	}
}
