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

// RMSNormChannels is RMSNorm over the channels of a channel-first x
// ([n, c, spatial], spatial being the product of the spatial dims): at each
// image n and position p, dst = x / sqrt(mean_c(x²) + eps) * weight[c]
// (weight [c]; nil means 1). It is the norm of Wan's VAE (its RMS_norm,
// F.normalize(x, dim=1)·√C·γ, is this with eps = 1e-24/C), computed in
// place of a transpose to [n, spatial, c] and back. Positions are taken in
// blocks, so the channel rows of a block are still in cache when they are
// read again to be scaled. dst may be x.
func RMSNormChannels(threads int, dst, x []float32, n, c, spatial int, weight []float32, eps float32) {
	mustDims("RMSNormChannels", n, c, spatial)
	mustLen("RMSNormChannels", "x", x, n*c*spatial)
	mustLen("RMSNormChannels", "dst", dst, n*c*spatial)
	if weight != nil {
		mustLen("RMSNormChannels", "weight", weight, c)
	}
	if n*c*spatial == 0 {
		return
	}
	if spatial == 1 { // [n, c]: the channels are the rows
		RMSNorm(threads, dst, x, n, c, weight, eps)
		return
	}
	block := channelBlock(c, spatial)
	per := (spatial + block - 1) / block // blocks per image
	ParallelFor(threads, n*per, grainFor(2*c*block), func(lo, hi int) {
		var accBuf [maxChannelBlock]float64
		var rstdBuf [maxChannelBlock]float32
		for task := lo; task < hi; task++ {
			img, p0 := task/per, task%per*block
			p1 := min(p0+block, spatial)
			acc, rstd := accBuf[:p1-p0], rstdBuf[:p1-p0]
			clear(acc)
			base, m := img*c*spatial, p1-p0
			// Four channels per sweep: a quarter of the loads and stores
			// of the sums.
			ch := 0
			for ; ch+4 <= c; ch += 4 {
				o := base + ch*spatial + p0
				r0, r1 := x[o:o+m], x[o+spatial:o+spatial+m]
				r2, r3 := x[o+2*spatial:o+2*spatial+m], x[o+3*spatial:o+3*spatial+m]
				for i, v := range r0 {
					v0, v1, v2, v3 := float64(v), float64(r1[i]), float64(r2[i]), float64(r3[i])
					acc[i] += v0*v0 + v1*v1 + (v2*v2 + v3*v3)
				}
			}
			for ; ch < c; ch++ {
				o := base + ch*spatial + p0
				for i, v := range x[o : o+m] {
					acc[i] += float64(v) * float64(v)
				}
			}
			inv := 1 / float64(c)
			for i, q := range acc {
				rstd[i] = float32(1 / math.Sqrt(q*inv+float64(eps)))
			}
			for ch := range c {
				row := x[base+ch*spatial+p0 : base+ch*spatial+p1]
				out := dst[base+ch*spatial+p0 : base+ch*spatial+p1]
				r := rstd[:len(row)]
				out = out[:len(row)]
				if weight == nil {
					for i, v := range row {
						out[i] = v * r[i]
					}
					continue
				}
				w := weight[ch]
				for i, v := range row {
					out[i] = v * r[i] * w
				}
			}
		}
	})
}

// maxChannelBlock bounds the positions RMSNormChannels takes per task.
const maxChannelBlock = 1024

// channelBlock returns how many positions RMSNormChannels normalizes per
// task: as many as fit in 2 MiB of x (c rows of the block; about one
// core's share of a server's L3, so the second pass still hits cache), at
// least 64 and at most maxChannelBlock, then evened out so the last block
// of an image is not a sliver. Long rows measured faster than short ones
// on an AMD EPYC, two threads, 96 to 512 channels (256 → 1024 positions:
// 4.4–8.6 → 6.9–12.7 GB/s), even once a block outgrows L2: each channel
// row is a prefetch stream.
func channelBlock(c, spatial int) int {
	b := max(64, min(maxChannelBlock, (2<<20)/4/max(c, 1)))
	if b >= spatial {
		return spatial
	}
	blocks := (spatial + b - 1) / b
	return (spatial + blocks - 1) / blocks
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
