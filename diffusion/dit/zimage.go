package dit

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// ZImageModel is the Z-Image single-stream image DiT.
type ZImageModel struct {
	Cfg            Config
	XEmbed         *nn.Linear    // all_x_embedder.{p}-{pf}
	TEmbed         [2]*nn.Linear // t_embedder.mlp.0, .2
	CapNorm        *nn.RMSNorm   // cap_embedder.0
	CapEmbed       *nn.Linear    // cap_embedder.1
	NoiseRefiner   []*ZImageBlock
	ContextRefiner []*ZImageBlock
	Layers         []*ZImageBlock
	FinalMod       *nn.Linear // all_final_layer.{p}-{pf}.adaLN_modulation.1
	FinalNorm      *nn.LayerNorm
	Final          *nn.Linear // all_final_layer.{p}-{pf}.linear
}

// ZImageBlock is one Z-Image transformer block; unmodulated blocks (the
// context refiner) have no AdaLN.
type ZImageBlock struct {
	Name                 string
	Attn                 *nn.Attention
	FFN                  *nn.MLP
	AttnNorm1, AttnNorm2 *nn.RMSNorm
	FFNNorm1, FFNNorm2   *nn.RMSNorm
	AdaLN                *nn.Linear // adaLN_modulation.0: [4·D] = scale₁, gate₁, scale₂, gate₂
}

func newZImageBlock(src nn.Source, name string, cfg Config, modulated bool) (*ZImageBlock, error) {
	d := cfg.Dim
	b := &ZImageBlock{Name: name}
	var err error
	if b.Attn, err = nn.NewAttention(src, nn.Join(name, "attention"), nn.AttentionConfig{Dim: d, Heads: cfg.Heads,
		QKNorm: true, QKNormPerHead: true, NormEps: cfg.Eps,
		QName: "to_q", KName: "to_k", VName: "to_v", OName: "to_out.0", QNormName: "norm_q", KNormName: "norm_k"}); err != nil {
		return nil, err
	}
	if b.FFN, err = nn.NewMLP(src, nn.Join(name, "feed_forward"), nn.MLPConfig{Dim: d, Hidden: cfg.FFN, Act: nn.ActSiLU,
		Gated: true, GateName: "w1", UpName: "w3", DownName: "w2"}); err != nil {
		return nil, err
	}
	for _, n := range []struct {
		p    **nn.RMSNorm
		name string
	}{{&b.AttnNorm1, "attention_norm1"}, {&b.AttnNorm2, "attention_norm2"}, {&b.FFNNorm1, "ffn_norm1"}, {&b.FFNNorm2, "ffn_norm2"}} {
		if *n.p, err = nn.NewRMSNorm(src, nn.Join(name, n.name), d, cfg.Eps); err != nil {
			return nil, err
		}
	}
	if modulated {
		if b.AdaLN, err = nn.NewLinear(src, nn.Join(name, "adaLN_modulation.0"), cfg.AdaLNDim, 4*d, true); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func newZImage(src nn.Source, cfg Config) (*ZImageModel, error) {
	m := &ZImageModel{Cfg: cfg}
	d := cfg.Dim
	key := fmt.Sprintf("%d-%d", cfg.Patch[1], cfg.Patch[0])
	var err error
	lins := []struct {
		l       **nn.Linear
		name    string
		in, out int
	}{
		{&m.XEmbed, "all_x_embedder." + key, cfg.PatchDim() * cfg.InChannels, d},
		{&m.TEmbed[0], "t_embedder.mlp.0", cfg.FreqDim, cfg.TimeMid},
		{&m.TEmbed[1], "t_embedder.mlp.2", cfg.TimeMid, cfg.AdaLNDim},
		{&m.CapEmbed, "cap_embedder.1", cfg.TextDim, d},
		{&m.FinalMod, "all_final_layer." + key + ".adaLN_modulation.1", cfg.AdaLNDim, d},
		{&m.Final, "all_final_layer." + key + ".linear", d, cfg.PatchDim() * cfg.OutChannels},
	}
	for _, l := range lins {
		if *l.l, err = nn.NewLinear(src, l.name, l.in, l.out, true); err != nil {
			return nil, err
		}
	}
	if m.CapNorm, err = nn.NewRMSNorm(src, "cap_embedder.0", cfg.TextDim, cfg.Eps); err != nil {
		return nil, err
	}
	if m.FinalNorm, err = nn.NewLayerNorm(src, "all_final_layer."+key+".norm_final", d, 1e-6, false); err != nil {
		return nil, err
	}
	for i := range cfg.RefinerLayers {
		b, err := newZImageBlock(src, fmt.Sprintf("noise_refiner.%d", i), cfg, true)
		if err != nil {
			return nil, err
		}
		m.NoiseRefiner = append(m.NoiseRefiner, b)
		if b, err = newZImageBlock(src, fmt.Sprintf("context_refiner.%d", i), cfg, false); err != nil {
			return nil, err
		}
		m.ContextRefiner = append(m.ContextRefiner, b)
	}
	for i := range cfg.Layers {
		b, err := newZImageBlock(src, fmt.Sprintf("layers.%d", i), cfg, true)
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, b)
	}
	return m, nil
}

// Config returns the model's configuration.
func (m *ZImageModel) Config() Config { return m.Cfg }

// Forward predicts the model output for in.Latent [B, C, H, W]. As in
// Z-Image, the pipeline passes (1000 − t)/1000 as the timestep and negates
// the output to get the velocity its flow-matching scheduler expects.
func (m *ZImageModel) Forward(ctx context.Context, in Input) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "ZImageDiT")
	defer span.End()
	out, err := m.forward(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("z-image dit: %w", err)
	}
	return out, nil
}

func (m *ZImageModel) forward(ctx context.Context, in Input) (*tensor.Tensor, error) {
	cfg := m.Cfg
	if err := checkInput(cfg, in, 4); err != nil {
		return nil, err
	}
	if in.CleanFirstFrame {
		return nil, fmt.Errorf("%w: Z-Image has no first-frame conditioning", ErrConfig)
	}
	b, lc := in.Latent.Dim(0), in.Context.Dim(1)

	// Image tokens.
	pt, g, err := Patchify(in.Latent, cfg.Patch)
	if err != nil {
		return nil, err
	}
	x, err := m.XEmbed.Forward(ctx, pt)
	pt.Release()
	if err != nil {
		return nil, err
	}
	defer func() { x.Release() }()
	lx := g.Len()

	// Conditioning c = t_embedder(sinusoid(t·t_scale)).
	ts := make([]float64, b)
	for i, t := range in.Timesteps {
		ts[i] = t * cfg.TScale
	}
	sin, err := TimestepEmbedding(ts, cfg.FreqDim)
	if err != nil {
		return nil, err
	}
	c0, err := sequential(ctx, sin, m.TEmbed[0].Forward, silu, m.TEmbed[1].Forward)
	sin.Release()
	if err != nil {
		return nil, err
	}
	c, err := c0.Reshape(b, 1, cfg.AdaLNDim)
	c0.Release()
	if err != nil {
		return nil, err
	}
	defer c.Release()

	// Caption tokens.
	capt, err := sequential(ctx, in.Context, m.CapNorm.Forward, m.CapEmbed.Forward)
	if err != nil {
		return nil, err
	}
	defer func() { capt.Release() }()

	// Positions: caption token j at (1+j, 0, 0), image token (f, h, w) at
	// (L_cap+1+f, h, w).
	capPos := make([]int32, 0, 3*lc)
	for j := range lc {
		capPos = append(capPos, int32(1+j), 0, 0)
	}
	imgPos := GridPositions(g, [3]int32{int32(lc + 1), 0, 0})
	pairs := [3]int{cfg.AxesDims[0] / 2, cfg.AxesDims[1] / 2, cfg.AxesDims[2] / 2}
	imgRope := RopeTable(imgPos, pairs, cfg.RopeTheta)
	capRope := RopeTable(capPos, pairs, cfg.RopeTheta)
	uniRope := RopeTable(append(append([]int32(nil), imgPos...), capPos...), pairs, cfg.RopeTheta)
	var capMask, uniMask []bool
	if in.ContextMask != nil {
		capMask = in.ContextMask
		uniMask = make([]bool, 0, b*(lx+lc))
		for s := range b {
			for range lx {
				uniMask = append(uniMask, true)
			}
			uniMask = append(uniMask, in.ContextMask[s*lc:(s+1)*lc]...)
		}
	}

	for _, blk := range m.NoiseRefiner {
		y, err := blk.Forward(ctx, x, c, &imgRope, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", blk.Name, err)
		}
		x.Release()
		x = y
	}
	for _, blk := range m.ContextRefiner {
		y, err := blk.Forward(ctx, capt, nil, &capRope, capMask)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", blk.Name, err)
		}
		capt.Release()
		capt = y
	}
	u, err := concatTokens(x, capt)
	if err != nil {
		return nil, err
	}
	defer func() { u.Release() }()
	for _, blk := range m.Layers {
		y, err := blk.Forward(ctx, u, c, &uniRope, uniMask)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", blk.Name, err)
		}
		u.Release()
		u = y
	}

	// Final layer on the image tokens: LN(x)·(1 + Linear(SiLU(c))).
	img, err := u.Slice(1, 0, lx)
	if err != nil {
		return nil, err
	}
	defer img.Release()
	scale, err := sequential(ctx, c, silu, m.FinalMod.Forward)
	if err != nil {
		return nil, err
	}
	defer scale.Release()
	n, err := m.FinalNorm.Forward(ctx, img)
	if err != nil {
		return nil, err
	}
	h, err := Modulate(ctx, n, nil, scale)
	n.Release()
	if err != nil {
		return nil, err
	}
	tok, err := m.Final.Forward(ctx, h)
	h.Release()
	if err != nil {
		return nil, err
	}
	defer tok.Release()
	return Unpatchify(tok, g, cfg.Patch, cfg.OutChannels, true)
}

// concatTokens joins [B, La, D] and [B, Lb, D] along the tokens.
func concatTokens(a, b *tensor.Tensor) (*tensor.Tensor, error) {
	ac, err := a.Contiguous()
	if err != nil {
		return nil, err
	}
	defer ac.Release()
	bc, err := b.Contiguous()
	if err != nil {
		return nil, err
	}
	defer bc.Release()
	n, la, lb, d := a.Dim(0), a.Dim(1), b.Dim(1), a.Dim(2)
	out, err := tensor.New(tensor.Float32, []int{n, la + lb, d})
	if err != nil {
		return nil, err
	}
	o, as, bs := out.Float32s(), ac.Float32s(), bc.Float32s()
	for s := range n {
		row := o[s*(la+lb)*d:]
		copy(row, as[s*la*d:(s+1)*la*d])
		copy(row[la*d:], bs[s*lb*d:(s+1)*lb*d])
	}
	return out, nil
}

// Forward runs the block on x [B, L, D]; c [B, 1, AdaLNDim] is the
// conditioning (nil for an unmodulated block).
func (blk *ZImageBlock) Forward(ctx context.Context, x, c *tensor.Tensor, rope *device.RopeTable, mask []bool) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "ZImageBlock", profiler.String("name", blk.Name))
	defer span.End()
	var scale1, gate1, scale2, gate2 *tensor.Tensor
	if blk.AdaLN != nil {
		if c == nil {
			return nil, fmt.Errorf("%w: a modulated block needs the conditioning", ErrConfig)
		}
		mod, err := blk.AdaLN.Forward(ctx, c) // [B, 1, 4·D]
		if err != nil {
			return nil, err
		}
		b, d := mod.Dim(0), x.Dim(2)
		m4, err := mod.Reshape(b, 1, 4, d)
		mod.Release()
		if err != nil {
			return nil, err
		}
		defer m4.Release()
		parts := [4]*tensor.Tensor{}
		for k := range parts {
			if parts[k], err = m4.Index(2, k); err != nil {
				return nil, err
			}
			defer parts[k].Release()
		}
		scale1, scale2 = parts[0], parts[2]
		if gate1, err = device.Tanh(ctx, parts[1]); err != nil {
			return nil, err
		}
		defer gate1.Release()
		if gate2, err = device.Tanh(ctx, parts[3]); err != nil {
			return nil, err
		}
		defer gate2.Release()
	}
	scaled := func(n *nn.RMSNorm, x, scale *tensor.Tensor) (*tensor.Tensor, error) {
		h, err := n.Forward(ctx, x)
		if err != nil || scale == nil {
			return h, err
		}
		y, err := Modulate(ctx, h, nil, scale)
		h.Release()
		return y, err
	}
	residual := func(x, y, gate *tensor.Tensor) (*tensor.Tensor, error) {
		if gate == nil {
			return device.Add(ctx, x, y)
		}
		return GatedAdd(ctx, x, y, gate)
	}

	h, err := scaled(blk.AttnNorm1, x, scale1)
	if err != nil {
		return nil, err
	}
	a, err := blk.Attn.Forward(ctx, h, nn.AttendOptions{RoPE: rope, RoPEMode: device.RopeInterleaved, KeyMask: mask})
	h.Release()
	if err != nil {
		return nil, err
	}
	an, err := blk.AttnNorm2.Forward(ctx, a)
	a.Release()
	if err != nil {
		return nil, err
	}
	x1, err := residual(x, an, gate1)
	an.Release()
	if err != nil {
		return nil, err
	}
	defer x1.Release()
	h, err = scaled(blk.FFNNorm1, x1, scale2)
	if err != nil {
		return nil, err
	}
	f, err := blk.FFN.Forward(ctx, h)
	h.Release()
	if err != nil {
		return nil, err
	}
	fn, err := blk.FFNNorm2.Forward(ctx, f)
	f.Release()
	if err != nil {
		return nil, err
	}
	defer fn.Release()
	return residual(x1, fn, gate2)
}
