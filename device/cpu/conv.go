package cpu

import "fmt"

// ConvParams describes a convolution over 1 to 3 spatial dims in PyTorch's
// layout: x is [N, InC, In...] (NCL, NCHW or NCDHW), w is
// [OutC, InC/Groups, Kernel...], bias is [OutC] or nil, and dst is
// [N, OutC, OutSize()...]. The spatial slices (In, Kernel, Stride,
// Dilation, PadBegin, PadEnd) have one entry per spatial dim, outermost
// (time or depth) first; nil Stride and Dilation mean 1, nil pads 0.
type ConvParams struct {
	N, InC, OutC int
	Groups       int // 0 means 1; InC and OutC must be multiples of it

	In, Kernel       []int
	Stride, Dilation []int
	PadBegin, PadEnd []int // zero padding before and after, per dim

	// Causal moves the first spatial dim's padding to the front:
	// PadBegin[0]+PadEnd[0] zeros before, none after, so output t sees inputs
	// up to t only (with stride 1). With symmetric padding (k-1)/2 this is
	// the causal convolution of WaveNet-style vocoders (conv1d) and of the
	// Wan video VAE's CausalConv3d, which pads time by 2*padding in front.
	// To continue a chunked stream, prepend the cached last frames of the
	// previous chunk to x and set PadBegin[0] to the padding they replace
	// (as Wan does with its cache_x), without Causal.
	Causal bool
}

// OutSize returns the output's spatial sizes:
// (in + padBegin + padEnd - dilation*(kernel-1) - 1)/stride + 1 per dim.
func (p ConvParams) OutSize() []int {
	c := p.norm("ConvParams.OutSize")
	out := make([]int, len(p.In))
	copy(out, c.out[3-len(p.In):])
	return out
}

// Conv computes dst = conv(x, w) + bias for 1 to 3 spatial dims (see
// ConvParams), as im2col + Sgemm: for each image and group, a block of
// output positions at a time, the receptive fields are gathered into
// columns and multiplied by the weights viewed as an
// [OutC/Groups, InC/Groups * prod(Kernel)] matrix. A 1×1 convolution with
// stride 1 and no padding skips the gather.
func Conv(threads int, dst, x, w, bias []float32, p ConvParams) {
	c := p.norm("Conv")
	conv(threads, "Conv", dst, x, w, bias, p, c)
}

// Conv1D is Conv for x [N, InC, L]; p.In, p.Kernel etc. have one entry.
func Conv1D(threads int, dst, x, w, bias []float32, p ConvParams) {
	convRank(threads, "Conv1D", 1, dst, x, w, bias, p)
}

// Conv2D is Conv for x [N, InC, H, W]; p.In, p.Kernel etc. have two entries.
func Conv2D(threads int, dst, x, w, bias []float32, p ConvParams) {
	convRank(threads, "Conv2D", 2, dst, x, w, bias, p)
}

// Conv3D is Conv for x [N, InC, D, H, W]; p.In, p.Kernel etc. have three
// entries.
func Conv3D(threads int, dst, x, w, bias []float32, p ConvParams) {
	convRank(threads, "Conv3D", 3, dst, x, w, bias, p)
}

func convRank(threads int, kernel string, rank int, dst, x, w, bias []float32, p ConvParams) {
	if len(p.In) != rank {
		panic(fmt.Sprintf("cpu.%s: %d spatial dims in ConvParams.In, want %d", kernel, len(p.In), rank))
	}
	conv(threads, kernel, dst, x, w, bias, p, p.norm(kernel))
}

// conv3 is a convolution with its spatial dims padded to three (leading
// dims of size 1), all defaults filled in.
type conv3 struct {
	in, k, s, d, pb, out [3]int
	groups               int
	inSize, kSize, pSize int // products over the spatial dims: input, kernel, output
}

func (p ConvParams) norm(kernel string) conv3 {
	mustDims(kernel, p.N, p.InC, p.OutC)
	r := len(p.In)
	if r < 1 || r > 3 {
		panic(fmt.Sprintf("cpu.%s: %d spatial dims, want 1 to 3", kernel, r))
	}
	c := conv3{groups: max(p.Groups, 1)}
	if p.Groups < 0 || p.InC%c.groups != 0 || p.OutC%c.groups != 0 {
		panic(fmt.Sprintf("cpu.%s: InC = %d and OutC = %d must be multiples of Groups = %d", kernel, p.InC, p.OutC, p.Groups))
	}
	get := func(name string, s []int, i, def int) int {
		if s == nil {
			return def
		}
		if len(s) != r {
			panic(fmt.Sprintf("cpu.%s: len(%s) = %d, want %d (one per spatial dim)", kernel, name, len(s), r))
		}
		return s[i]
	}
	if len(p.Kernel) != r {
		panic(fmt.Sprintf("cpu.%s: len(Kernel) = %d, want %d", kernel, len(p.Kernel), r))
	}
	c.inSize, c.kSize, c.pSize = 1, 1, 1
	for j := range 3 {
		c.in[j], c.k[j], c.s[j], c.d[j], c.out[j] = 1, 1, 1, 1, 1
	}
	for i := range r {
		j := 3 - r + i
		c.in[j], c.k[j] = p.In[i], p.Kernel[i]
		c.s[j], c.d[j] = get("Stride", p.Stride, i, 1), get("Dilation", p.Dilation, i, 1)
		pb, pe := get("PadBegin", p.PadBegin, i, 0), get("PadEnd", p.PadEnd, i, 0)
		if i == 0 && p.Causal {
			pb, pe = pb+pe, 0
		}
		if c.in[j] < 0 || c.k[j] < 1 || c.s[j] < 1 || c.d[j] < 1 || pb < 0 || pe < 0 {
			panic(fmt.Sprintf("cpu.%s: dim %d: in %d, kernel %d, stride %d, dilation %d, pads %d/%d: want in >= 0, pads >= 0, the rest >= 1",
				kernel, i, c.in[j], c.k[j], c.s[j], c.d[j], pb, pe))
		}
		c.pb[j] = pb
		span := c.d[j]*(c.k[j]-1) + 1
		if c.in[j]+pb+pe < span {
			panic(fmt.Sprintf("cpu.%s: dim %d: padded input %d is smaller than the dilated kernel %d", kernel, i, c.in[j]+pb+pe, span))
		}
		c.out[j] = (c.in[j]+pb+pe-span)/c.s[j] + 1
	}
	for j := range 3 {
		c.inSize *= c.in[j]
		c.kSize *= c.k[j]
		c.pSize *= c.out[j]
	}
	return c
}

// pointwise reports a 1×1 convolution that reads x as its own column
// matrix.
func (c *conv3) pointwise() bool {
	return c.kSize == 1 && c.s == [3]int{1, 1, 1} && c.pb == [3]int{} && c.out == c.in
}

// convColBlock is the number of floats of gathered columns per block:
// 512 KiB, half of a Zen 4 core's L2, so the block is still in cache when
// Sgemm packs it.
const convColBlock = 1 << 17

func conv(threads int, kernel string, dst, x, w, bias []float32, p ConvParams, c conv3) {
	g := c.groups
	cg, og := p.InC/g, p.OutC/g
	kk := cg * c.kSize // the GEMM's depth
	mustLen(kernel, "x", x, p.N*p.InC*c.inSize)
	mustLen(kernel, "w", w, p.OutC*kk)
	mustLen(kernel, "dst", dst, p.N*p.OutC*c.pSize)
	if bias != nil {
		mustLen(kernel, "bias", bias, p.OutC)
	}
	if p.N == 0 || p.OutC == 0 || c.pSize == 0 {
		return
	}
	if kk == 0 { // no input channels: the output is the bias
		convBias(dst, bias, p.N*p.OutC, c.pSize, p.OutC)
		return
	}
	pw := c.pointwise()
	tp := c.pSize
	if !pw {
		tp = min(c.pSize, max(32, convColBlock/kk/32*32))
	}
	tiles := (c.pSize + tp - 1) / tp
	tasks := p.N * g * tiles
	if threads <= 0 {
		threads = Threads()
	}
	// One block of output positions of one (image, group) per task, with
	// single-threaded Sgemm, when there are enough blocks to go round;
	// otherwise the blocks go one by one and Sgemm gets the threads.
	inner, outer := 1, threads
	if tasks < threads {
		inner, outer = threads, 1
	}
	ParallelFor(outer, tasks, 1, func(lo, hi int) {
		var col []float32
		if !pw {
			col = make([]float32, kk*tp)
		}
		for task := lo; task < hi; task++ {
			n, rest := task/(g*tiles), task%(g*tiles)
			gi, p0 := rest/tiles, rest%tiles*tp
			np := min(tp, c.pSize-p0)
			xg := x[(n*p.InC+gi*cg)*c.inSize:][:cg*c.inSize]
			out := dst[(n*p.OutC+gi*og)*c.pSize+p0:]
			beta := float32(0)
			if bias != nil {
				for o := range og {
					row := out[o*c.pSize:][:np]
					b := bias[gi*og+o]
					for i := range row {
						row[i] = b
					}
				}
				beta = 1
			}
			wg := w[gi*og*kk:][:og*kk]
			if pw {
				Sgemm(inner, false, false, og, np, kk, 1, wg, kk, xg[p0:], c.pSize, beta, out, c.pSize)
				continue
			}
			cols := col[:kk*np]
			c.im2col(cols, xg, cg, p0, np)
			Sgemm(inner, false, false, og, np, kk, 1, wg, kk, cols, np, beta, out, c.pSize)
		}
	})
}

// convBias fills rows of dst (each of size cols; row r is channel r%ch)
// with the bias, or zeros.
func convBias(dst, bias []float32, rows, cols, ch int) {
	for r := range rows {
		row := dst[r*cols : (r+1)*cols]
		if bias == nil {
			clear(row)
			continue
		}
		for i := range row {
			row[i] = bias[r%ch]
		}
	}
}

// im2col gathers the receptive fields of output positions [p0, p0+np) of
// one group (x is [cg, D, H, W]) into col ([cg*kD*kH*kW, np]): row
// ((ci*kD + kd)*kH + kh)*kW + kw holds, for each output position, the input
// under that kernel tap, or 0 in the padding.
func (c *conv3) im2col(col, x []float32, cg, p0, np int) {
	oH, oW := c.out[1], c.out[2]
	iD, iH, iW := c.in[0], c.in[1], c.in[2]
	r := 0
	for ci := range cg {
		xc := x[ci*c.inSize : (ci+1)*c.inSize]
		for kd := range c.k[0] {
			for kh := range c.k[1] {
				for kw := range c.k[2] {
					row := col[r*np : (r+1)*np]
					r++
					offD := kd*c.d[0] - c.pb[0]
					offH := kh*c.d[1] - c.pb[1]
					offW := kw*c.d[2] - c.pb[2]
					// Output positions in row-major order, one output row
					// (fixed od, oh) at a time.
					od, oh, ow := p0/(oH*oW), p0/oW%oH, p0%oW
					for pos := 0; pos < np; {
						seg := min(oW-ow, np-pos)
						dstSeg := row[pos : pos+seg]
						id, ih := od*c.s[0]+offD, oh*c.s[1]+offH
						if id < 0 || id >= iD || ih < 0 || ih >= iH {
							clear(dstSeg)
						} else {
							src := xc[(id*iH+ih)*iW : (id*iH+ih+1)*iW]
							gatherRow(dstSeg, src, ow*c.s[2]+offW, c.s[2])
						}
						pos += seg
						ow = 0
						if oh++; oh == oH {
							oh = 0
							od++
						}
					}
				}
			}
		}
	}
}

// gatherRow sets dst[i] = src[start + i*stride], or 0 where that index is
// outside src.
func gatherRow(dst, src []float32, start, stride int) {
	n := len(dst)
	// Valid i: 0 <= start + i*stride < len(src).
	lo := 0
	if start < 0 {
		lo = min(n, (-start+stride-1)/stride)
	}
	hi := n
	if last := len(src) - 1 - start; last < 0 {
		hi = 0
	} else {
		hi = min(n, last/stride+1)
	}
	if hi <= lo {
		clear(dst)
		return
	}
	clear(dst[:lo])
	clear(dst[hi:])
	if stride == 1 {
		copy(dst[lo:hi], src[start+lo:])
		return
	}
	j := start + lo*stride
	for i := lo; i < hi; i++ {
		dst[i] = src[j]
		j += stride
	}
}

// ConvTranspose1DParams describes a transposed 1-d convolution (the
// gradient of Conv1D with respect to its input; the upsampling layers of
// HiFi-GAN and BigVGAN), in PyTorch's layout: x is [N, InC, In], w is
// [InC, OutC/Groups, Kernel], bias is [OutC] or nil, dst is
// [N, OutC, OutLen()]. Zero Stride and Dilation mean 1.
type ConvTranspose1DParams struct {
	N, InC, OutC, Groups int
	In, Kernel           int
	Stride, Dilation     int
	Pad, OutputPad       int // Pad trims both ends; OutputPad adds to the end (0 <= OutputPad < max(Stride, Dilation))
}

func (p ConvTranspose1DParams) norm() ConvTranspose1DParams {
	p.Groups, p.Stride, p.Dilation = max(p.Groups, 1), max(p.Stride, 1), max(p.Dilation, 1)
	return p
}

// OutLen returns (In-1)*Stride - 2*Pad + Dilation*(Kernel-1) + OutputPad + 1.
func (p ConvTranspose1DParams) OutLen() int {
	p = p.norm()
	return (p.In-1)*p.Stride - 2*p.Pad + p.Dilation*(p.Kernel-1) + p.OutputPad + 1
}

// ConvTranspose1D computes the transposed convolution (see
// ConvTranspose1DParams) as Sgemm + col2im: for each image and group,
// col = Wᵀ·x ([OutC/Groups * Kernel, In]) and each column's taps are added
// into the output at i*Stride - Pad + k*Dilation. Work is split over blocks
// of output channels, which own disjoint output rows.
func ConvTranspose1D(threads int, dst, x, w, bias []float32, p ConvTranspose1DParams) {
	p = p.norm()
	mustDims("ConvTranspose1D", p.N, p.InC, p.OutC, p.In, p.Pad, p.OutputPad)
	mustPositive("ConvTranspose1D", "Kernel", p.Kernel)
	g := p.Groups
	if p.InC%g != 0 || p.OutC%g != 0 {
		panic(fmt.Sprintf("cpu.ConvTranspose1D: InC = %d and OutC = %d must be multiples of Groups = %d", p.InC, p.OutC, g))
	}
	if p.OutputPad >= max(p.Stride, p.Dilation) {
		panic(fmt.Sprintf("cpu.ConvTranspose1D: OutputPad = %d, want < max(Stride, Dilation) = %d", p.OutputPad, max(p.Stride, p.Dilation)))
	}
	lout := p.OutLen()
	if lout < 1 && p.In > 0 {
		panic(fmt.Sprintf("cpu.ConvTranspose1D: output length %d", lout))
	}
	cg, og, k := p.InC/g, p.OutC/g, p.Kernel
	mustLen("ConvTranspose1D", "x", x, p.N*p.InC*p.In)
	mustLen("ConvTranspose1D", "w", w, p.InC*og*k)
	mustLen("ConvTranspose1D", "dst", dst, p.N*p.OutC*max(lout, 0))
	if bias != nil {
		mustLen("ConvTranspose1D", "bias", bias, p.OutC)
	}
	if p.N == 0 || p.OutC == 0 || lout <= 0 {
		return
	}
	convBias(dst, bias, p.N*p.OutC, lout, p.OutC)
	if p.In == 0 || cg == 0 {
		return
	}
	// Blocks of output channels and of input positions, sized so that a
	// block's col fits convColBlock.
	ob := min(og, max(1, 64/k))
	lt := min(p.In, max(32, convColBlock/(ob*k)))
	obs := (og + ob - 1) / ob
	tasks := p.N * g * obs
	if threads <= 0 {
		threads = Threads()
	}
	inner, outer := 1, threads
	if tasks < threads {
		inner, outer = threads, 1
	}
	ParallelFor(outer, tasks, 1, func(lo, hi int) {
		col := make([]float32, ob*k*lt)
		for task := lo; task < hi; task++ {
			n, rest := task/(g*obs), task%(g*obs)
			gi, o0 := rest/obs, rest%obs*ob
			no := min(ob, og-o0)
			// W_g is [cg, og*k]; op(A) = W_gᵀ restricted to rows [o0*k, (o0+no)*k).
			wg := w[gi*cg*og*k+o0*k:]
			xg := x[(n*p.InC+gi*cg)*p.In:]
			out := dst[(n*p.OutC+gi*og+o0)*lout:]
			for l0 := 0; l0 < p.In; l0 += lt {
				nl := min(lt, p.In-l0)
				cb := col[:no*k*nl]
				Sgemm(inner, true, false, no*k, nl, cg, 1, wg, og*k, xg[l0:], p.In, 0, cb, nl)
				for o := range no {
					orow := out[o*lout : (o+1)*lout]
					for kt := range k {
						crow := cb[(o*k+kt)*nl : (o*k+kt+1)*nl]
						// Output index of input i: i*Stride - Pad + kt*Dilation.
						off := kt*p.Dilation - p.Pad
						for i, v := range crow {
							if j := (l0+i)*p.Stride + off; j >= 0 && j < lout {
								orow[j] += v
							}
						}
					}
				}
			}
		}
	})
}
