package omni

import (
	"context"
	"fmt"
	"strconv"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// decoder is a Qwen2-architecture decoder: token embedding, Layers ×
// (RMSNorm → GQA attention with q/k/v biases and rotate-half RoPE → residual
// → RMSNorm → SwiGLU MLP → residual), a final RMSNorm and the LM head
// (the embedding matrix when tied). Weight names are Hugging Face's
// Qwen2ForCausalLM ones under a prefix.
//
// forward runs a ragged batch: the rows of several sequences, each with
// its own KV cache, concatenated. Norms and elementwise kernels run once
// over all rows; RoPE and attention run per sequence against its own
// cache; projections and MLPs run over row groups (see rowGroups): every
// one-row (decode) sequence together, in groups of up to smallGEMMRows,
// and each longer (prefill) sequence by itself. So each row takes the
// same arithmetic path, bit for bit, whatever it is batched with: a
// sequence's outputs do not depend on its batch (TestDecoderBatchInvariant).
type decoder struct {
	name   string
	cfg    DecoderConfig
	embed  *nn.Embedding
	layers []decoderLayer
	norm   *nn.RMSNorm
	head   *tensor.Tensor // [Vocab, Hidden]: lm_head.weight, or embed_tokens.weight when tied
	rope   device.RopeTable
}

type decoderLayer struct {
	inNorm, postNorm *nn.RMSNorm
	attn             *nn.Attention
	mlp              *nn.MLP
}

// newDecoder builds the weights <model>.embed_tokens, <model>.layers.N.*,
// <model>.norm and (untied) <head>.weight.
func newDecoder(src nn.Source, name, model, head string, cfg DecoderConfig) (*decoder, error) {
	cfg.defaults()
	if err := cfg.validate(name); err != nil {
		return nil, err
	}
	d := &decoder{name: name, cfg: cfg}
	var err error
	if d.embed, err = nn.NewEmbedding(src, nn.Join(model, "embed_tokens"), cfg.Vocab, cfg.Hidden); err != nil {
		return nil, err
	}
	eps := float32(cfg.RMSEps)
	for i := range cfg.Layers {
		p := nn.Join(model, "layers", strconv.Itoa(i))
		var l decoderLayer
		if l.inNorm, err = nn.NewRMSNorm(src, nn.Join(p, "input_layernorm"), cfg.Hidden, eps); err != nil {
			return nil, err
		}
		if l.attn, err = nn.NewAttention(src, nn.Join(p, "self_attn"), nn.AttentionConfig{
			Dim: cfg.Hidden, Heads: cfg.Heads, KVHeads: cfg.KVHeads, HeadDim: cfg.HeadDim, QKVBias: true,
		}); err != nil {
			return nil, err
		}
		if l.postNorm, err = nn.NewRMSNorm(src, nn.Join(p, "post_attention_layernorm"), cfg.Hidden, eps); err != nil {
			return nil, err
		}
		if l.mlp, err = nn.NewMLP(src, nn.Join(p, "mlp"), nn.MLPConfig{Dim: cfg.Hidden, Hidden: cfg.Intermediate, Act: nn.ActSiLU, Gated: true}); err != nil {
			return nil, err
		}
		d.layers = append(d.layers, l)
	}
	if d.norm, err = nn.NewRMSNorm(src, nn.Join(model, "norm"), cfg.Hidden, eps); err != nil {
		return nil, err
	}
	if cfg.TiedEmbeddings {
		d.head = d.embed.W
	} else {
		lm, err := nn.NewLinear(src, head, cfg.Hidden, cfg.Vocab, false)
		if err != nil {
			return nil, err
		}
		d.head = lm.W
	}
	d.rope = device.NewRopeTable(cfg.MaxPositions, cfg.HeadDim, cfg.RopeTheta)
	return d, nil
}

// kvState is one sequence's KV caches, one per layer.
type kvState struct {
	caches []*device.KVCache
}

// newState preallocates caches for maxLen positions.
func (d *decoder) newState(maxLen int) (*kvState, error) {
	if maxLen > d.cfg.MaxPositions {
		return nil, fmt.Errorf("omni: %s: %d positions exceed max_position_embeddings %d", d.name, maxLen, d.cfg.MaxPositions)
	}
	s := &kvState{caches: make([]*device.KVCache, len(d.layers))}
	for i := range s.caches {
		c, err := device.NewKVCache(1, d.cfg.KVHeads, maxLen, d.cfg.HeadDim)
		if err != nil {
			return nil, err
		}
		s.caches[i] = c
	}
	return s, nil
}

// Len returns the positions the sequence holds.
func (s *kvState) Len() int { return s.caches[0].Len() }

// Cap returns the positions the caches can hold.
func (s *kvState) Cap() int { return s.caches[0].Cap() }

// bytes returns the caches' memory.
func (s *kvState) bytes() int64 {
	var n int64
	for _, c := range s.caches {
		n += c.Bytes()
	}
	return n
}

// segment is one sequence's share of a ragged batch: its next rows and
// its caches.
type segment struct {
	state *kvState
	rows  int
}

// embedIDs returns the embeddings [len(ids), Hidden].
func (d *decoder) embedIDs(ctx context.Context, ids []int32) (*tensor.Tensor, error) {
	t, err := tensor.FromInt32(ids, len(ids))
	if err != nil {
		return nil, err
	}
	return d.embed.Forward(ctx, t)
}

// forward runs x [N, Hidden] — the rows of segs in order — through the
// layers, appending each segment's keys and values to its caches, and
// returns the final-norm hidden states [N, Hidden] (the last entry of
// Hugging Face's hidden_states).
func (d *decoder) forward(ctx context.Context, x *tensor.Tensor, segs []segment) (*tensor.Tensor, error) {
	n := 0
	for _, s := range segs {
		n += s.rows
	}
	if x.Rank() != 2 || x.Dim(0) != n || x.Dim(1) != d.cfg.Hidden {
		return nil, fmt.Errorf("omni: %s: input %v for %d rows of width %d", d.name, x.Shape(), n, d.cfg.Hidden)
	}
	h, err := x.Reshape(1, n, d.cfg.Hidden)
	if err != nil {
		return nil, err
	}
	for i := range d.layers {
		next, err := d.layer(ctx, i, h, segs)
		h.Release()
		if err != nil {
			return nil, fmt.Errorf("omni: %s layer %d: %w", d.name, i, err)
		}
		h = next
	}
	out, err := d.norm.Forward(ctx, h)
	h.Release()
	if err != nil {
		return nil, err
	}
	defer out.Release()
	return out.Reshape(n, d.cfg.Hidden)
}

// smallGEMMRows is the most rows device/cpu's Sgemm runs through its
// small-m (matrix-vector) path, whose sums are ordered differently from
// its packed path's: a row gives bit-identical results only with products
// of the same kind. TestDecoderBatchInvariant fails if this drifts from
// the device's threshold.
const smallGEMMRows = 8

// rowGroups splits the rows of segs into the groups the projections run
// over: runs of one-row segments in groups of up to smallGEMMRows (each
// row takes the small-m path, as it does alone), and each longer segment
// alone (as it runs when it is prefilled by itself).
func rowGroups(segs []segment) [][2]int {
	var g [][2]int
	off, run := 0, -1
	for _, s := range segs {
		if s.rows == 1 {
			if run < 0 || off-run == smallGEMMRows {
				run = off
				g = append(g, [2]int{off, off + 1})
			} else {
				g[len(g)-1][1] = off + 1
			}
		} else {
			run = -1
			g = append(g, [2]int{off, off + s.rows})
		}
		off += s.rows
	}
	return g
}

// groupedLinear applies l to x [1, N, In] one row group at a time.
func groupedLinear(ctx context.Context, l *nn.Linear, x *tensor.Tensor, groups [][2]int) (*tensor.Tensor, error) {
	if len(groups) == 1 {
		return l.Forward(ctx, x)
	}
	out, err := tensor.New(tensor.Float32, []int{1, x.Dim(1), l.Out})
	if err != nil {
		return nil, err
	}
	od := out.Float32s()
	for _, g := range groups {
		part, err := x.Slice(1, g[0], g[1])
		if err != nil {
			out.Release()
			return nil, err
		}
		y, err := l.Forward(ctx, part)
		part.Release()
		if err != nil {
			out.Release()
			return nil, err
		}
		copy(od[g[0]*l.Out:g[1]*l.Out], y.Float32s())
		y.Release()
	}
	return out, nil
}

// mlp is nn.MLP's gated SwiGLU forward over row groups.
func mlp(ctx context.Context, m *nn.MLP, x *tensor.Tensor, groups [][2]int) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "MLP", profiler.String("name", m.Name))
	defer span.End()
	g, err := groupedLinear(ctx, m.Gate, x, groups)
	if err != nil {
		return nil, err
	}
	defer g.Release()
	u, err := groupedLinear(ctx, m.Up, x, groups)
	if err != nil {
		return nil, err
	}
	defer u.Release()
	h, err := device.SwiGLU(ctx, g, u)
	if err != nil {
		return nil, err
	}
	defer h.Release()
	return groupedLinear(ctx, m.Down, h, groups)
}

// layer runs one decoder layer over h [1, N, Hidden].
func (d *decoder) layer(ctx context.Context, i int, h *tensor.Tensor, segs []segment) (*tensor.Tensor, error) {
	l := &d.layers[i]
	a := l.attn
	groups := rowGroups(segs)
	normed, err := l.inNorm.Forward(ctx, h)
	if err != nil {
		return nil, err
	}
	q, err := groupedLinear(ctx, a.Q, normed, groups)
	if err != nil {
		normed.Release()
		return nil, err
	}
	defer q.Release()
	k, err := groupedLinear(ctx, a.K, normed, groups)
	if err != nil {
		normed.Release()
		return nil, err
	}
	defer k.Release()
	v, err := groupedLinear(ctx, a.V, normed, groups)
	normed.Release()
	if err != nil {
		return nil, err
	}
	defer v.Release()
	hq, hd := d.cfg.Heads, d.cfg.HeadDim
	n := h.Dim(1)
	att, err := tensor.New(tensor.Float32, []int{1, n, hq * hd})
	if err != nil {
		return nil, err
	}
	defer att.Release()
	dst := att.Float32s()
	off := 0
	for _, s := range segs {
		if err := d.attend(ctx, i, q, k, v, off, s, dst[off*hq*hd:(off+s.rows)*hq*hd]); err != nil {
			return nil, err
		}
		off += s.rows
	}
	o, err := groupedLinear(ctx, a.O, att, groups)
	if err != nil {
		return nil, err
	}
	r1, err := device.Add(ctx, h, o)
	o.Release()
	if err != nil {
		return nil, err
	}
	n2, err := l.postNorm.Forward(ctx, r1)
	if err != nil {
		r1.Release()
		return nil, err
	}
	m, err := mlp(ctx, l.mlp, n2, groups)
	n2.Release()
	if err != nil {
		r1.Release()
		return nil, err
	}
	out, err := device.Add(ctx, r1, m)
	r1.Release()
	m.Release()
	return out, err
}

// attend runs one segment's attention in layer i: rotate its rows of q
// and k at the positions after its cache, append k and v, attend, and
// write [rows, Heads·HeadDim] to dst.
func (d *decoder) attend(ctx context.Context, i int, q, k, v *tensor.Tensor, off int, s segment, dst []float32) error {
	hq, hkv, hd := d.cfg.Heads, d.cfg.KVHeads, d.cfg.HeadDim
	cache := s.state.caches[i]
	pos0 := cache.Len()
	view := func(t *tensor.Tensor, heads int) (*tensor.Tensor, error) {
		sl, err := t.Slice(1, off, off+s.rows)
		if err != nil {
			return nil, err
		}
		defer sl.Release()
		return sl.Reshape(1, s.rows, heads, hd)
	}
	qs, err := view(q, hq)
	if err != nil {
		return err
	}
	defer qs.Release()
	ks, err := view(k, hkv)
	if err != nil {
		return err
	}
	defer ks.Release()
	vs, err := view(v, hkv)
	if err != nil {
		return err
	}
	defer vs.Release()
	rq, err := device.RoPE(ctx, qs, d.rope, device.RopeHalf, pos0, nil)
	if err != nil {
		return err
	}
	defer rq.Release()
	rk, err := device.RoPE(ctx, ks, d.rope, device.RopeHalf, pos0, nil)
	if err != nil {
		return err
	}
	defer rk.Release()
	if err := cache.Append(ctx, rk, vs); err != nil {
		return err
	}
	out, err := device.AttentionCache(ctx, rq, cache, device.AttentionOptions{})
	if err != nil {
		return err
	}
	copy(dst, out.Float32s())
	out.Release()
	return nil
}

// logits returns the LM head's logits [len(rows), Vocab] for the given
// rows of the hidden states h [N, Hidden].
func (d *decoder) logits(ctx context.Context, h *tensor.Tensor, rows []int) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "lm_head", profiler.Int("rows", len(rows)))
	defer span.End()
	dim := d.cfg.Hidden
	sel, err := tensor.New(tensor.Float32, []int{len(rows), dim})
	if err != nil {
		return nil, err
	}
	defer sel.Release()
	src, dst := h.Float32s(), sel.Float32s()
	for i, r := range rows {
		copy(dst[i*dim:(i+1)*dim], src[r*dim:(r+1)*dim])
	}
	if len(rows) <= smallGEMMRows {
		return device.Linear(ctx, sel, d.head, nil)
	}
	// One row per sequence: groups of smallGEMMRows (see rowGroups).
	out, err := tensor.New(tensor.Float32, []int{len(rows), d.cfg.Vocab})
	if err != nil {
		return nil, err
	}
	for g := 0; g < len(rows); g += smallGEMMRows {
		part, err := sel.Slice(0, g, min(g+smallGEMMRows, len(rows)))
		if err != nil {
			out.Release()
			return nil, err
		}
		y, err := device.Linear(ctx, part, d.head, nil)
		part.Release()
		if err != nil {
			out.Release()
			return nil, err
		}
		copy(out.Float32s()[g*d.cfg.Vocab:], y.Float32s())
		y.Release()
	}
	return out, nil
}
