package vae

import (
	"context"
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// layer is one step of an encoder or decoder on channel-first tensors
// [N, C, (T,) H, W]. forward does not release its input.
type layer interface {
	forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error)
}

type layerFunc func(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error)

func (f layerFunc) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return f(ctx, x)
}

// run applies layers in order, releasing intermediate results.
func run(ctx context.Context, x *tensor.Tensor, layers ...layer) (*tensor.Tensor, error) {
	cur := x
	for _, l := range layers {
		y, err := l.forward(ctx, cur)
		if cur != x {
			cur.Release()
		}
		if err != nil {
			return nil, err
		}
		cur = y
	}
	if cur == x {
		x.Retain()
	}
	return cur, nil
}

var silu = layerFunc(func(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) { return device.SiLU(ctx, x) })

// channelLast returns x [N, C, S...] as [N, S..., C] (contiguous).
func channelLast(x *tensor.Tensor) (*tensor.Tensor, error) {
	perm := []int{0}
	for i := 2; i < x.Rank(); i++ {
		perm = append(perm, i)
	}
	perm = append(perm, 1)
	p, err := x.Permute(perm...)
	if err != nil {
		return nil, err
	}
	defer p.Release()
	return p.Contiguous()
}

// channelFirst inverts channelLast.
func channelFirst(x *tensor.Tensor) (*tensor.Tensor, error) {
	r := x.Rank()
	perm := []int{0, r - 1}
	for i := 1; i < r-1; i++ {
		perm = append(perm, i)
	}
	p, err := x.Permute(perm...)
	if err != nil {
		return nil, err
	}
	defer p.Release()
	return p.Contiguous()
}

// rmsNorm is Wan's RMS_norm over channels: F.normalize(x, dim=1)·√C·γ,
// which is x/√(mean over channels of x² + ε)·γ with ε = 1e-24/C
// (F.normalize clamps the norm at 1e-12), device.RMSNormChannels: one
// kernel on the channel-first tensor, without the two transposes that
// the last-axis RMSNorm would need (they took a quarter of a decode).
type rmsNorm struct {
	name  string
	gamma *tensor.Tensor // [C, 1, 1(, 1)]
}

func newRMSNorm(src nn.Source, name string, c int, images bool) (*rmsNorm, error) {
	shape := []int{c, 1, 1, 1}
	if images {
		shape = shape[:3]
	}
	g, err := src.Tensor(nn.Join(name, "gamma"), shape, nn.Ones)
	if err != nil {
		return nil, err
	}
	return &rmsNorm{name: name, gamma: g}, nil
}

func (n *rmsNorm) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "RMSNorm", profiler.String("name", n.name))
	defer span.End()
	c := n.gamma.NumElements()
	out, err := device.RMSNormChannels(ctx, x, n.gamma, float32(1e-24/float64(c)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	return out, nil
}

type groupNorm struct{ *nn.GroupNorm }

func (g groupNorm) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return g.Forward(ctx, x)
}

// conv is a convolution; a 2D weight applied to a 5D input acts per frame
// (Wan's Conv2d inside Resample), by viewing it as a 1×k×k 3D kernel.
type conv struct {
	c    *nn.Conv
	rank int // spatial rank of the weight
}

func newConv(src nn.Source, name string, in, out int, kernel []int, opt device.ConvOptions) (*conv, error) {
	c, err := nn.NewConv(src, name, nn.ConvConfig{In: in, Out: out, Kernel: kernel, Bias: true, Opt: opt})
	if err != nil {
		return nil, err
	}
	return &conv{c: c, rank: len(kernel)}, nil
}

func (c *conv) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	if x.Rank()-2 == c.rank {
		return c.c.Forward(ctx, x)
	}
	if c.rank != 2 || x.Rank() != 5 {
		return nil, fmt.Errorf("%w: %s: %d-d kernel on input %v", device.ErrShape, c.c.Name, c.rank, x.Shape())
	}
	s := c.c.W.Shape()
	w, err := c.c.W.Reshape(s[0], s[1], 1, s[2], s[3])
	if err != nil {
		return nil, err
	}
	defer w.Release()
	spread := func(v []int, def int) []int {
		switch len(v) {
		case 0:
			return nil
		case 1:
			return []int{def, v[0], v[0]}
		}
		return append([]int{def}, v...)
	}
	o := c.c.Opt
	opt := device.ConvOptions{Stride: spread(o.Stride, 1), Dilation: spread(o.Dilation, 1), Padding: spread(o.Padding, 0),
		PadBegin: spread(o.PadBegin, 0), PadEnd: spread(o.PadEnd, 0), Groups: o.Groups}
	return (&nn.Conv{Name: c.c.Name, W: w, B: c.c.B, Opt: opt}).Forward(ctx, x)
}

// causal3 is a Wan CausalConv3d with kernel 3 and padding 1.
func causal3(src nn.Source, name string, in, out int) (*conv, error) {
	return newConv(src, name, in, out, []int{3, 3, 3}, device.ConvOptions{Padding: []int{1}, Causal: true})
}

// resBlock is a residual block: norm, SiLU, conv, norm, SiLU, conv, plus a
// 1×1 shortcut when the channels change.
type resBlock struct {
	name                string
	norm1, norm2        layer
	conv1, conv2, short layer
	hasShort            bool
}

func (r *resBlock) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "VAEResBlock", profiler.String("name", r.name))
	defer span.End()
	h, err := run(ctx, x, r.norm1, silu, r.conv1, r.norm2, silu, r.conv2)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	defer h.Release()
	s := x
	if r.hasShort {
		if s, err = r.short.forward(ctx, x); err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		defer s.Release()
	}
	return device.Add(ctx, s, h)
}

// attnBlock is single-head self-attention over the pixels of each frame.
type attnBlock struct {
	name     string
	norm     layer
	qkv      [3]*tensor.Tensor // weights [C, C] (views of a fused [3C, C] for Wan)
	qkvBias  [3]*tensor.Tensor
	proj, pb *tensor.Tensor
	fusedW   *tensor.Tensor // Wan's to_qkv.weight [3C, C, 1, 1], kept to view at run time
	fusedB   *tensor.Tensor
	projConv bool // proj is a 1×1 conv weight [C, C, 1, 1]
	channels int
}

func (a *attnBlock) weights() ([3]*tensor.Tensor, [3]*tensor.Tensor, *tensor.Tensor, func(), error) {
	c := a.channels
	if a.fusedW == nil {
		return a.qkv, a.qkvBias, a.proj, func() {}, nil
	}
	var ws, bs [3]*tensor.Tensor
	var rel []*tensor.Tensor
	free := func() {
		for _, t := range rel {
			t.Release()
		}
	}
	w, err := a.fusedW.Reshape(3*c, c)
	if err != nil {
		return ws, bs, nil, nil, err
	}
	rel = append(rel, w)
	for k := range 3 {
		if ws[k], err = w.Slice(0, k*c, (k+1)*c); err != nil {
			free()
			return ws, bs, nil, nil, err
		}
		if bs[k], err = a.fusedB.Slice(0, k*c, (k+1)*c); err != nil {
			free()
			return ws, bs, nil, nil, err
		}
		rel = append(rel, ws[k], bs[k])
	}
	p, err := a.proj.Reshape(c, c)
	if err != nil {
		free()
		return ws, bs, nil, nil, err
	}
	rel = append(rel, p)
	return ws, bs, p, free, nil
}

func (a *attnBlock) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "VAEAttention", profiler.String("name", a.name))
	defer span.End()
	out, err := a.attend(ctx, x)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.name, err)
	}
	return out, nil
}

func (a *attnBlock) attend(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ws, bs, proj, free, err := a.weights()
	if err != nil {
		return nil, err
	}
	defer free()
	h, err := a.norm.forward(ctx, x)
	if err != nil {
		return nil, err
	}
	cl, err := channelLast(h) // [N, (T,) H, W, C]
	h.Release()
	if err != nil {
		return nil, err
	}
	defer cl.Release()
	c := a.channels
	hw := x.Dim(-1) * x.Dim(-2)
	frames := cl.NumElements() / (hw * c)
	tok, err := cl.Reshape(frames, hw, c)
	if err != nil {
		return nil, err
	}
	defer tok.Release()
	var qkv [3]*tensor.Tensor
	for k := range qkv {
		y, err := device.Linear(ctx, tok, ws[k], bs[k])
		if err != nil {
			return nil, err
		}
		qkv[k], err = y.Reshape(frames, hw, 1, c)
		y.Release()
		if err != nil {
			return nil, err
		}
		defer qkv[k].Release()
	}
	att, err := device.Attention(ctx, qkv[0], qkv[1], qkv[2], device.AttentionOptions{Scale: float32(1 / math.Sqrt(float64(c)))})
	if err != nil {
		return nil, err
	}
	defer att.Release()
	flat, err := att.Reshape(frames, hw, c)
	if err != nil {
		return nil, err
	}
	defer flat.Release()
	p, err := device.Linear(ctx, flat, proj, a.pb)
	if err != nil {
		return nil, err
	}
	defer p.Release()
	pv, err := p.Reshape(cl.Shape()...)
	if err != nil {
		return nil, err
	}
	defer pv.Release()
	back, err := channelFirst(pv)
	if err != nil {
		return nil, err
	}
	defer back.Release()
	return device.Add(ctx, x, back)
}

// upsampleNearest returns x [N, C, (T,) H, W] with H and W doubled, each
// pixel repeated 2×2 (nearest and nearest-exact agree at scale 2).
func upsampleNearest(x *tensor.Tensor) (*tensor.Tensor, error) {
	c, err := x.Contiguous()
	if err != nil {
		return nil, err
	}
	defer c.Release()
	s := c.Shape()
	h, w := s[len(s)-2], s[len(s)-1]
	shape := append([]int(nil), s...)
	shape[len(s)-2], shape[len(s)-1] = 2*h, 2*w
	out, err := tensor.New(tensor.Float32, shape)
	if err != nil {
		return nil, err
	}
	src, dst := c.Float32s(), out.Float32s()
	planes := len(src) / (h * w)
	for p := range planes {
		in := src[p*h*w : (p+1)*h*w]
		o := dst[p*4*h*w : (p+1)*4*h*w]
		for y := range h {
			row := o[2*y*2*w : (2*y+1)*2*w]
			for xx, v := range in[y*w : (y+1)*w] {
				row[2*xx], row[2*xx+1] = v, v
			}
			copy(o[(2*y+1)*2*w:(2*y+2)*2*w], row)
		}
	}
	return out, nil
}

// frames returns frames [a, b) of x [N, C, T, H, W] (contiguous).
func frames(x *tensor.Tensor, a, b int) (*tensor.Tensor, error) {
	v, err := x.Slice(2, a, b)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	return v.Contiguous()
}

// catFrames joins clips along time.
func catFrames(parts ...*tensor.Tensor) (*tensor.Tensor, error) {
	n, c, h, w := parts[0].Dim(0), parts[0].Dim(1), parts[0].Dim(3), parts[0].Dim(4)
	t := 0
	for _, p := range parts {
		if p.Rank() != 5 || p.Dim(0) != n || p.Dim(1) != c || p.Dim(3) != h || p.Dim(4) != w {
			return nil, fmt.Errorf("%w: concatenating clips %v and %v", device.ErrShape, parts[0].Shape(), p.Shape())
		}
		t += p.Dim(2)
	}
	out, err := tensor.New(tensor.Float32, []int{n, c, t, h, w})
	if err != nil {
		return nil, err
	}
	dst := out.Float32s()
	off := 0
	for _, p := range parts {
		pc, err := p.Contiguous()
		if err != nil {
			out.Release()
			return nil, err
		}
		src := pc.Float32s()
		pt := p.Dim(2)
		for i := range n * c {
			copy(dst[(i*t+off)*h*w:(i*t+off+pt)*h*w], src[i*pt*h*w:(i+1)*pt*h*w])
		}
		pc.Release()
		off += pt
	}
	return out, nil
}

// resample is Wan's Resample or AutoencoderKL's up/down sampler.
type resample struct {
	name     string
	up       bool
	spatial  *conv // after nearest ×2 (up) or with a right/bottom pad and stride 2 (down)
	timeConv *conv // Wan's temporal resampling, nil when spatial only
	channels int   // input channels
}

func (r *resample) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "VAEResample", profiler.String("name", r.name))
	defer span.End()
	out, err := r.resample(ctx, x)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	return out, nil
}

func (r *resample) resample(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	if !r.up {
		s, err := r.spatial.forward(ctx, x)
		if err != nil || r.timeConv == nil || x.Dim(2) == 1 {
			return s, err
		}
		// Frame 0 passes; the stride-2 time_conv runs over the whole clip
		// (each chunk of 4 sees the previous chunk's last frame).
		defer s.Release()
		f0, err := frames(s, 0, 1)
		if err != nil {
			return nil, err
		}
		defer f0.Release()
		tc, err := r.timeConv.forward(ctx, s)
		if err != nil {
			return nil, err
		}
		defer tc.Release()
		return catFrames(f0, tc)
	}
	in := x
	if r.timeConv != nil && x.Dim(2) > 1 {
		// Frame 0 passes; frames 1.. go through the causal time_conv (with
		// zero history) and each becomes two: channel halves interleaved.
		f0, err := frames(x, 0, 1)
		if err != nil {
			return nil, err
		}
		defer f0.Release()
		rest, err := frames(x, 1, x.Dim(2))
		if err != nil {
			return nil, err
		}
		tc, err := r.timeConv.forward(ctx, rest)
		rest.Release()
		if err != nil {
			return nil, err
		}
		doubled, err := interleaveTime(tc, r.channels)
		tc.Release()
		if err != nil {
			return nil, err
		}
		defer doubled.Release()
		if in, err = catFrames(f0, doubled); err != nil {
			return nil, err
		}
		defer in.Release()
	}
	u, err := upsampleNearest(in)
	if err != nil {
		return nil, err
	}
	defer u.Release()
	return r.spatial.forward(ctx, u)
}

// interleaveTime turns [N, 2C, T, H, W] into [N, C, 2T, H, W] with frame
// 2t+j taken from channel half j at time t (Wan's reshape + stack).
func interleaveTime(x *tensor.Tensor, c int) (*tensor.Tensor, error) {
	n, t, h, w := x.Dim(0), x.Dim(2), x.Dim(3), x.Dim(4)
	if x.Rank() != 5 || x.Dim(1) != 2*c {
		return nil, fmt.Errorf("%w: interleaving %v into %d channels", device.ErrShape, x.Shape(), c)
	}
	xc, err := x.Contiguous()
	if err != nil {
		return nil, err
	}
	defer xc.Release()
	out, err := tensor.New(tensor.Float32, []int{n, c, 2 * t, h, w})
	if err != nil {
		return nil, err
	}
	src, dst, hw := xc.Float32s(), out.Float32s(), h*w
	for b := range n {
		for ch := range c {
			for f := range t {
				for j := range 2 {
					from := ((b*2*c+j*c+ch)*t + f) * hw
					to := ((b*c+ch)*2*t + 2*f + j) * hw
					copy(dst[to:to+hw], src[from:from+hw])
				}
			}
		}
	}
	return out, nil
}

// pixelShuffle packs [N, C·p², (T,) H, W] into [N, C, (T,) H·p, W·p]
// (the channel index is c·p² + i·p + j for pixel offset (i, j)).
func pixelShuffle(x *tensor.Tensor, p int) (*tensor.Tensor, error) {
	s := x.Shape()
	n, cp := s[0], s[1]
	mid := s[2 : len(s)-2]
	h, w := s[len(s)-2], s[len(s)-1]
	c := cp / (p * p)
	m := 1
	for _, d := range mid {
		m *= d
	}
	v, err := x.Reshape(n, c, p, p, m, h, w)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	q, err := v.Permute(0, 1, 4, 5, 2, 6, 3) // [N, C, M, H, p, W, p]
	if err != nil {
		return nil, err
	}
	defer q.Release()
	out := append(append([]int{n, c}, mid...), h*p, w*p)
	return q.Reshape(out...)
}

// pixelUnshuffle inverts pixelShuffle.
func pixelUnshuffle(x *tensor.Tensor, p int) (*tensor.Tensor, error) {
	s := x.Shape()
	n, c := s[0], s[1]
	mid := s[2 : len(s)-2]
	h, w := s[len(s)-2]/p, s[len(s)-1]/p
	m := 1
	for _, d := range mid {
		m *= d
	}
	v, err := x.Reshape(n, c, m, h, p, w, p)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	q, err := v.Permute(0, 1, 4, 6, 2, 3, 5) // [N, C, p, p, M, H, W]
	if err != nil {
		return nil, err
	}
	defer q.Release()
	out := append(append([]int{n, c * p * p}, mid...), h, w)
	return q.Reshape(out...)
}
