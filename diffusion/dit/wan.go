package dit

import (
	"context"
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// WanModel is the Wan 2.x video DiT.
type WanModel struct {
	Cfg        Config
	PatchEmbed *nn.Conv
	TextEmbed  [2]*nn.Linear // text_embedding.0, .2
	TimeEmbed  [2]*nn.Linear // time_embedding.0, .2
	TimeProj   *nn.Linear    // time_projection.1
	Blocks     []*WanBlock
	Head       *nn.Linear     // head.head
	HeadMod    *tensor.Tensor // head.modulation [1, 2, dim]
	HeadNorm   *nn.LayerNorm
}

// WanBlock is one Wan transformer block.
type WanBlock struct {
	Name         string
	Norm1, Norm2 *nn.LayerNorm // no affine parameters
	Norm3        *nn.LayerNorm // cross-attention norm (affine), nil without CrossAttnNorm
	SelfAttn     *nn.Attention
	CrossAttn    *nn.Attention
	FFN          *nn.MLP
	Modulation   *tensor.Tensor // [1, 6, dim]
}

func newWan(src nn.Source, cfg Config) (*WanModel, error) {
	m := &WanModel{Cfg: cfg}
	d := cfg.Dim
	var err error
	p := cfg.Patch
	if m.PatchEmbed, err = nn.NewConv(src, "patch_embedding", nn.ConvConfig{In: cfg.InChannels, Out: d,
		Kernel: p[:], Bias: true, Opt: device.ConvOptions{Stride: p[:]}}); err != nil {
		return nil, err
	}
	lins := []struct {
		l       **nn.Linear
		name    string
		in, out int
	}{
		{&m.TextEmbed[0], "text_embedding.0", cfg.TextDim, d},
		{&m.TextEmbed[1], "text_embedding.2", d, d},
		{&m.TimeEmbed[0], "time_embedding.0", cfg.FreqDim, d},
		{&m.TimeEmbed[1], "time_embedding.2", d, d},
		{&m.TimeProj, "time_projection.1", d, 6 * d},
		{&m.Head, "head.head", d, cfg.PatchDim() * cfg.OutChannels},
	}
	for _, l := range lins {
		if *l.l, err = nn.NewLinear(src, l.name, l.in, l.out, true); err != nil {
			return nil, err
		}
	}
	if m.HeadMod, err = src.Tensor("head.modulation", []int{1, 2, d}, nn.Normal(1/math.Sqrt(float64(d)))); err != nil {
		return nil, err
	}
	if m.HeadNorm, err = nn.NewLayerNorm(src, "head.norm", d, cfg.Eps, false); err != nil {
		return nil, err
	}
	attn := func(name string) nn.AttentionConfig {
		return nn.AttentionConfig{Dim: d, Heads: cfg.Heads, QKVBias: true, OutBias: true, QKNorm: true, NormEps: cfg.Eps,
			QName: "q", KName: "k", VName: "v", OName: "o", QNormName: "norm_q", KNormName: "norm_k"}
	}
	for i := range cfg.Layers {
		name := fmt.Sprintf("blocks.%d", i)
		b := &WanBlock{Name: name}
		if b.Norm1, err = nn.NewLayerNorm(src, nn.Join(name, "norm1"), d, cfg.Eps, false); err != nil {
			return nil, err
		}
		if b.Norm2, err = nn.NewLayerNorm(src, nn.Join(name, "norm2"), d, cfg.Eps, false); err != nil {
			return nil, err
		}
		if cfg.CrossAttnNorm {
			if b.Norm3, err = nn.NewLayerNorm(src, nn.Join(name, "norm3"), d, cfg.Eps, true); err != nil {
				return nil, err
			}
		}
		if b.SelfAttn, err = nn.NewAttention(src, nn.Join(name, "self_attn"), attn("self_attn")); err != nil {
			return nil, err
		}
		if b.CrossAttn, err = nn.NewAttention(src, nn.Join(name, "cross_attn"), attn("cross_attn")); err != nil {
			return nil, err
		}
		if b.FFN, err = nn.NewMLP(src, nn.Join(name, "ffn"), nn.MLPConfig{Dim: d, Hidden: cfg.FFN, Act: nn.ActGELUTanh,
			Bias: true, UpName: "0", DownName: "2"}); err != nil {
			return nil, err
		}
		if b.Modulation, err = src.Tensor(nn.Join(name, "modulation"), []int{1, 6, d}, nn.Normal(1/math.Sqrt(float64(d)))); err != nil {
			return nil, err
		}
		m.Blocks = append(m.Blocks, b)
	}
	return m, nil
}

// Config returns the model's configuration.
func (m *WanModel) Config() Config { return m.Cfg }

// RopePairs returns the rotary pairs per axis (t, h, w) for a head of d
// entries: c − 2⌊c/3⌋, ⌊c/3⌋, ⌊c/3⌋ with c = d/2, as Wan's rope_apply splits.
func RopePairs(d int) [3]int {
	c := d / 2
	return [3]int{c - 2*(c/3), c / 3, c / 3}
}

// timeEmbeddings returns e [B, Lm, D] and e0 [B, Lm, 6·D]: Lm = 1 with one
// timestep per sample, Lm = L when the first frame's tokens are clean.
func (m *WanModel) timeEmbeddings(ctx context.Context, in Input, g Grid) (e, e0 *tensor.Tensor, err error) {
	b := len(in.Timesteps)
	ts := in.Timesteps
	if in.CleanFirstFrame {
		ts = make([]float64, 0, 2*b)
		for _, t := range in.Timesteps {
			ts = append(ts, 0, t)
		}
	}
	sin, err := TimestepEmbedding(ts, m.Cfg.FreqDim)
	if err != nil {
		return nil, nil, err
	}
	defer sin.Release()
	er, err := sequential(ctx, sin, m.TimeEmbed[0].Forward, silu, m.TimeEmbed[1].Forward)
	if err != nil {
		return nil, nil, err
	}
	defer er.Release()
	e0r, err := sequential(ctx, er, silu, m.TimeProj.Forward)
	if err != nil {
		return nil, nil, err
	}
	defer e0r.Release()
	d := m.Cfg.Dim
	if !in.CleanFirstFrame {
		if e, err = er.Reshape(b, 1, d); err != nil {
			return nil, nil, err
		}
		if e0, err = e0r.Reshape(b, 1, 6*d); err != nil {
			e.Release()
			return nil, nil, err
		}
		return e, e0, nil
	}
	perFrame := g.H * g.W
	idx := make([]int, 0, b*g.Len())
	for s := range b {
		for tok := range g.Len() {
			r := 2*s + 1
			if tok < perFrame {
				r = 2 * s
			}
			idx = append(idx, r)
		}
	}
	if e, err = gatherRows(er, idx, b, g.Len(), d); err != nil {
		return nil, nil, err
	}
	if e0, err = gatherRows(e0r, idx, b, g.Len(), 6*d); err != nil {
		e.Release()
		return nil, nil, err
	}
	return e, e0, nil
}

// Forward predicts the velocity for in.Latent [B, C, F, H, W].
func (m *WanModel) Forward(ctx context.Context, in Input) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "WanDiT")
	defer span.End()
	out, err := m.forward(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("wan dit: %w", err)
	}
	return out, nil
}

func (m *WanModel) forward(ctx context.Context, in Input) (*tensor.Tensor, error) {
	cfg := m.Cfg
	if err := checkInput(cfg, in, 5); err != nil {
		return nil, err
	}
	g, err := GridOf(in.Latent.Shape(), cfg.Patch)
	if err != nil {
		return nil, err
	}
	b, d, l := in.Latent.Dim(0), cfg.Dim, g.Len()
	// Patch embedding: [B, D, F', H', W'] → tokens [B, L, D].
	pe, err := m.PatchEmbed.Forward(ctx, in.Latent)
	if err != nil {
		return nil, err
	}
	pv, err := pe.Reshape(b, d, l)
	pe.Release()
	if err != nil {
		return nil, err
	}
	pt, err := pv.Transpose(1, 2)
	pv.Release()
	if err != nil {
		return nil, err
	}
	x, err := pt.Contiguous()
	pt.Release()
	if err != nil {
		return nil, err
	}
	defer func() { x.Release() }()

	e, e0, err := m.timeEmbeddings(ctx, in, g)
	if err != nil {
		return nil, err
	}
	defer e.Release()
	defer e0.Release()
	text, err := sequential(ctx, in.Context, m.TextEmbed[0].Forward, act(nn.ActGELUTanh), m.TextEmbed[1].Forward)
	if err != nil {
		return nil, err
	}
	defer text.Release()
	rope := RopeTable(GridPositions(g, [3]int32{}), RopePairs(cfg.HeadDim()), cfg.RopeTheta)

	for _, blk := range m.Blocks {
		y, err := blk.Forward(ctx, x, e0, text, &rope)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", blk.Name, err)
		}
		x.Release()
		x = y
	}

	// Head: (shift, scale) = head.modulation + e.
	shift, scale, err := headModulation(ctx, m.HeadMod, e)
	if err != nil {
		return nil, err
	}
	defer shift.Release()
	defer scale.Release()
	n, err := m.HeadNorm.Forward(ctx, x)
	if err != nil {
		return nil, err
	}
	mod, err := Modulate(ctx, n, shift, scale)
	n.Release()
	if err != nil {
		return nil, err
	}
	tok, err := m.Head.Forward(ctx, mod)
	mod.Release()
	if err != nil {
		return nil, err
	}
	defer tok.Release()
	return Unpatchify(tok, g, cfg.Patch, cfg.OutChannels, false)
}

// headModulation returns head.modulation[0] + e and head.modulation[1] + e.
func headModulation(ctx context.Context, mod, e *tensor.Tensor) (shift, scale *tensor.Tensor, err error) {
	parts := [2]*tensor.Tensor{}
	for k := range parts {
		v, err := mod.Index(1, k) // [1, D]
		if err != nil {
			return nil, nil, err
		}
		parts[k], err = device.Add(ctx, e, v)
		v.Release()
		if err != nil {
			if k == 1 {
				parts[0].Release()
			}
			return nil, nil, err
		}
	}
	return parts[0], parts[1], nil
}

// Forward runs the block on x [B, L, D] with e0 [B, Lm, 6·D] and the
// embedded text [B, Lt, D].
func (blk *WanBlock) Forward(ctx context.Context, x, e0, text *tensor.Tensor, rope *device.RopeTable) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "WanBlock", profiler.String("name", blk.Name))
	defer span.End()
	b, lm, d := e0.Dim(0), e0.Dim(1), x.Dim(2)
	e4, err := e0.Reshape(b, lm, 6, d)
	if err != nil {
		return nil, err
	}
	mod, err := device.Add(ctx, e4, blk.Modulation) // [B, Lm, 6, D]
	e4.Release()
	if err != nil {
		return nil, err
	}
	defer mod.Release()
	var parts [6]*tensor.Tensor // shift, scale, gate (attention), shift, scale, gate (ffn)
	for k := range parts {
		if parts[k], err = mod.Index(2, k); err != nil {
			return nil, err
		}
		defer parts[k].Release()
	}

	// Self-attention.
	n, err := blk.Norm1.Forward(ctx, x)
	if err != nil {
		return nil, err
	}
	h, err := Modulate(ctx, n, parts[0], parts[1])
	n.Release()
	if err != nil {
		return nil, err
	}
	a, err := blk.SelfAttn.Forward(ctx, h, nn.AttendOptions{RoPE: rope, RoPEMode: device.RopeInterleaved})
	h.Release()
	if err != nil {
		return nil, err
	}
	x1, err := GatedAdd(ctx, x, a, parts[2])
	a.Release()
	if err != nil {
		return nil, err
	}
	defer x1.Release()

	// Cross-attention to the text.
	c := x1
	if blk.Norm3 != nil {
		if c, err = blk.Norm3.Forward(ctx, x1); err != nil {
			return nil, err
		}
		defer c.Release()
	}
	ca, err := blk.CrossAttn.Forward(ctx, c, nn.AttendOptions{Context: text})
	if err != nil {
		return nil, err
	}
	x2, err := device.Add(ctx, x1, ca)
	ca.Release()
	if err != nil {
		return nil, err
	}
	defer x2.Release()

	// Feed-forward.
	n, err = blk.Norm2.Forward(ctx, x2)
	if err != nil {
		return nil, err
	}
	h, err = Modulate(ctx, n, parts[3], parts[4])
	n.Release()
	if err != nil {
		return nil, err
	}
	f, err := blk.FFN.Forward(ctx, h)
	h.Release()
	if err != nil {
		return nil, err
	}
	defer f.Release()
	return GatedAdd(ctx, x2, f, parts[5])
}
