package textenc

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/operators/tokenize"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// Output is an encoded batch of prompts.
type Output struct {
	// States are the encoder's last hidden states [B, TextLen, Dim], zero
	// at padding positions.
	States *tensor.Tensor
	// Mask [B*TextLen] is true at real tokens (the prompt and its </s>).
	Mask []bool
	// Lens are the real token counts per prompt.
	Lens []int
}

// Release frees the states.
func (o *Output) Release() {
	if o != nil && o.States != nil {
		o.States.Release()
		o.States = nil
	}
}

// Slice returns prompts [i, j) of the batch as a new Output (the states are
// copied).
func (o *Output) Slice(i, j int) (*Output, error) {
	v, err := o.States.Slice(0, i, j)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	s, err := v.Clone()
	if err != nil {
		return nil, err
	}
	l := o.States.Dim(1)
	return &Output{States: s, Mask: append([]bool(nil), o.Mask[i*l:j*l]...), Lens: append([]int(nil), o.Lens[i:j]...)}, nil
}

// Concat stacks outputs of the same text length along the batch.
func Concat(outs ...*Output) (*Output, error) {
	if len(outs) == 0 {
		return nil, fmt.Errorf("%w: nothing to concatenate", ErrConfig)
	}
	l, d := outs[0].States.Dim(1), outs[0].States.Dim(2)
	b := 0
	for _, o := range outs {
		if o.States.Rank() != 3 || o.States.Dim(1) != l || o.States.Dim(2) != d {
			return nil, fmt.Errorf("%w: concatenating states %v and %v", device.ErrShape, outs[0].States.Shape(), o.States.Shape())
		}
		b += o.States.Dim(0)
	}
	s, err := tensor.New(tensor.Float32, []int{b, l, d})
	if err != nil {
		return nil, err
	}
	res := &Output{States: s}
	dst := s.Float32s()
	for _, o := range outs {
		c, err := o.States.Contiguous()
		if err != nil {
			s.Release()
			return nil, err
		}
		n := copy(dst, c.Float32s())
		dst = dst[n:]
		c.Release()
		res.Mask = append(res.Mask, o.Mask...)
		res.Lens = append(res.Lens, o.Lens...)
	}
	return res, nil
}

// Encoder is a T5/UMT5 encoder with its tokenizer. It is safe for
// concurrent use (its weights are only read).
type Encoder struct {
	Cfg    Config
	Tok    *tokenize.ByteTokenizer
	Embed  *nn.Embedding
	Blocks []*Block
	Final  *nn.RMSNorm
	eos    int32
	pad    int32
}

// Block is one encoder layer.
type Block struct {
	Name     string
	AttnNorm *nn.RMSNorm
	Attn     *Attention
	FFNNorm  *nn.RMSNorm
	FFN      *nn.MLP
}

// Attention is T5 self-attention: unscaled scores plus a relative position
// bias per head.
type Attention struct {
	Name        string
	Heads, Dim  int // heads and their size
	MaxDistance int // relative_attention_max_distance
	Q, K, V, O  *nn.Linear
	// Bias is relative_attention_bias.weight [Buckets, Heads] (nil in the
	// layers of a T5 that share the first layer's).
	Bias *tensor.Tensor
}

// NewTokenizer returns the byte tokenizer the encoder reads: ids 0..255 are
// bytes, then <pad> (256), </s> (257) and <unk> (258).
func NewTokenizer() (*tokenize.ByteTokenizer, error) {
	return tokenize.NewByteTokenizer(tokenize.WithSpecialTokens("<pad>", "</s>", "<unk>"),
		tokenize.WithRoles("", "</s>", "<pad>"))
}

// New builds the encoder, asking src for every weight by its Hugging Face
// name.
func New(src nn.Source, cfg Config) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tok, err := NewTokenizer()
	if err != nil {
		return nil, err
	}
	if cfg.Vocab < tok.VocabSize() {
		return nil, fmt.Errorf("%w: vocabulary %d is smaller than the tokenizer's %d", ErrConfig, cfg.Vocab, tok.VocabSize())
	}
	e := &Encoder{Cfg: cfg, Tok: tok, eos: tok.Special().EOS, pad: tok.Special().PAD}
	if e.Embed, err = nn.NewEmbedding(src, "shared", cfg.Vocab, cfg.Dim); err != nil {
		return nil, err
	}
	inner := cfg.Heads * cfg.HeadDim
	for i := range cfg.Layers {
		name := fmt.Sprintf("encoder.block.%d", i)
		b := &Block{Name: name}
		att := nn.Join(name, "layer.0.SelfAttention")
		a := &Attention{Name: att, Heads: cfg.Heads, Dim: cfg.HeadDim, MaxDistance: cfg.MaxDistance}
		for _, p := range []struct {
			l   **nn.Linear
			n   string
			in  int
			out int
		}{{&a.Q, "q", cfg.Dim, inner}, {&a.K, "k", cfg.Dim, inner}, {&a.V, "v", cfg.Dim, inner}, {&a.O, "o", inner, cfg.Dim}} {
			if *p.l, err = nn.NewLinear(src, nn.Join(att, p.n), p.in, p.out, false); err != nil {
				return nil, err
			}
		}
		if i == 0 || cfg.PerLayerBias {
			if a.Bias, err = src.Tensor(nn.Join(att, "relative_attention_bias.weight"), []int{cfg.Buckets, cfg.Heads}, nn.Normal(0.5)); err != nil {
				return nil, err
			}
		}
		b.Attn = a
		if b.AttnNorm, err = nn.NewRMSNorm(src, nn.Join(name, "layer.0.layer_norm"), cfg.Dim, cfg.Eps); err != nil {
			return nil, err
		}
		if b.FFNNorm, err = nn.NewRMSNorm(src, nn.Join(name, "layer.1.layer_norm"), cfg.Dim, cfg.Eps); err != nil {
			return nil, err
		}
		if b.FFN, err = nn.NewMLP(src, nn.Join(name, "layer.1.DenseReluDense"), nn.MLPConfig{Dim: cfg.Dim, Hidden: cfg.FFN,
			Act: nn.ActGELUTanh, Gated: true, GateName: "wi_0", UpName: "wi_1", DownName: "wo"}); err != nil {
			return nil, err
		}
		e.Blocks = append(e.Blocks, b)
	}
	if e.Final, err = nn.NewRMSNorm(src, "encoder.final_layer_norm", cfg.Dim, cfg.Eps); err != nil {
		return nil, err
	}
	return e, nil
}

// Tokenize returns each prompt's ids followed by </s>, truncated to TextLen
// (keeping the </s>) and padded with <pad>, as [B, TextLen] int32, with the
// mask and lengths.
func (e *Encoder) Tokenize(texts []string) (*tensor.Tensor, []bool, []int, error) {
	l := e.Cfg.TextLen
	ids := make([]int32, len(texts)*l)
	mask := make([]bool, len(texts)*l)
	lens := make([]int, len(texts))
	for b, t := range texts {
		tok, err := e.Tok.Encode(t)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("textenc: prompt %d: %w", b, err)
		}
		if len(tok) > l-1 {
			tok = tok[:l-1]
		}
		tok = append(tok, e.eos)
		row := ids[b*l : (b+1)*l]
		for i := range row {
			row[i] = e.pad
		}
		copy(row, tok)
		lens[b] = len(tok)
		for i := range tok {
			mask[b*l+i] = true
		}
	}
	t, err := tensor.FromInt32(ids, len(texts), l)
	return t, mask, lens, err
}

// Encode tokenizes and encodes a batch of prompts.
func (e *Encoder) Encode(ctx context.Context, texts []string) (*Output, error) {
	if len(texts) == 0 {
		return nil, fmt.Errorf("%w: no prompts", ErrConfig)
	}
	ids, mask, lens, err := e.Tokenize(texts)
	if err != nil {
		return nil, err
	}
	defer ids.Release()
	states, err := e.Forward(ctx, ids, mask)
	if err != nil {
		return nil, err
	}
	return &Output{States: states, Mask: mask, Lens: lens}, nil
}

// Forward encodes ids [B, L] with the key mask [B*L] (nil: no padding) and
// returns [B, L, Dim], zero where the mask is false.
func (e *Encoder) Forward(ctx context.Context, ids *tensor.Tensor, mask []bool) (*tensor.Tensor, error) {
	if ids.Rank() != 2 || (mask != nil && len(mask) != ids.NumElements()) {
		return nil, fmt.Errorf("%w: ids %v with a %d-entry mask", device.ErrShape, ids.Shape(), len(mask))
	}
	b, l := ids.Dim(0), ids.Dim(1)
	x, err := e.Embed.Forward(ctx, ids)
	if err != nil {
		return nil, err
	}
	var shared *tensor.Tensor
	defer func() {
		if shared != nil {
			shared.Release()
		}
	}()
	for i, blk := range e.Blocks {
		bias := shared
		if blk.Attn.Bias != nil {
			nb, err := blk.Attn.PositionBias(b, l)
			if err != nil {
				x.Release()
				return nil, err
			}
			if i == 0 && !e.Cfg.PerLayerBias {
				shared = nb
			} else {
				defer nb.Release()
			}
			bias = nb
		}
		y, err := blk.Forward(ctx, x, bias, mask)
		x.Release()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", blk.Name, err)
		}
		x = y
	}
	out, err := e.Final.Forward(ctx, x)
	x.Release()
	if err != nil {
		return nil, err
	}
	if mask != nil {
		d := out.Float32s()
		for i, m := range mask {
			if !m {
				clear(d[i*e.Cfg.Dim : (i+1)*e.Cfg.Dim])
			}
		}
	}
	return out, nil
}

// Forward runs the layer on x [B, L, Dim].
func (blk *Block) Forward(ctx context.Context, x, bias *tensor.Tensor, mask []bool) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "T5Block", profiler.String("name", blk.Name))
	defer span.End()
	h, err := blk.AttnNorm.Forward(ctx, x)
	if err != nil {
		return nil, err
	}
	a, err := blk.Attn.Forward(ctx, h, bias, mask)
	h.Release()
	if err != nil {
		return nil, err
	}
	x1, err := device.Add(ctx, x, a)
	a.Release()
	if err != nil {
		return nil, err
	}
	h, err = blk.FFNNorm.Forward(ctx, x1)
	if err != nil {
		x1.Release()
		return nil, err
	}
	f, err := blk.FFN.Forward(ctx, h)
	h.Release()
	if err != nil {
		x1.Release()
		return nil, err
	}
	out, err := device.Add(ctx, x1, f)
	x1.Release()
	f.Release()
	return out, err
}

// PositionBias returns the additive attention bias [B, Heads, L, L]:
// entry (b, h, q, k) is Bias[bucket(k − q), h].
func (a *Attention) PositionBias(batch, l int) (*tensor.Tensor, error) {
	buckets, heads := a.Bias.Dim(0), a.Bias.Dim(1)
	if heads != a.Heads {
		return nil, fmt.Errorf("%w: %s: bias table %v for %d heads", device.ErrShape, a.Name, a.Bias.Shape(), a.Heads)
	}
	w, err := a.Bias.Contiguous()
	if err != nil {
		return nil, err
	}
	defer w.Release()
	tab := w.Float32s()
	out, err := tensor.New(tensor.Float32, []int{batch, heads, l, l})
	if err != nil {
		return nil, err
	}
	d := out.Float32s()
	// The bucket depends only on k − q: compute one row per distance.
	bucketOf := make([]int, 2*l-1)
	for r := range bucketOf {
		bucketOf[r] = RelativePositionBucket(r-(l-1), buckets, a.MaxDistance)
	}
	for h := range heads {
		plane := d[h*l*l : (h+1)*l*l]
		for q := range l {
			row := plane[q*l : (q+1)*l]
			for k := range row {
				row[k] = tab[bucketOf[k-q+l-1]*heads+h]
			}
		}
	}
	for bb := 1; bb < batch; bb++ {
		copy(d[bb*heads*l*l:(bb+1)*heads*l*l], d[:heads*l*l])
	}
	return out, nil
}

// Forward attends x [B, L, Dim] with bias [B, Heads, L, L] and the key mask.
func (a *Attention) Forward(ctx context.Context, x, bias *tensor.Tensor, mask []bool) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "T5Attention", profiler.String("name", a.Name))
	defer span.End()
	b, l := x.Dim(0), x.Dim(1)
	proj := func(lin *nn.Linear) (*tensor.Tensor, error) {
		y, err := lin.Forward(ctx, x)
		if err != nil {
			return nil, err
		}
		defer y.Release()
		return y.Reshape(b, l, a.Heads, a.Dim)
	}
	q, err := proj(a.Q)
	if err != nil {
		return nil, err
	}
	defer q.Release()
	k, err := proj(a.K)
	if err != nil {
		return nil, err
	}
	defer k.Release()
	v, err := proj(a.V)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	att, err := device.Attention(ctx, q, k, v, device.AttentionOptions{Scale: 1, Mask: bias, KeyMask: mask})
	if err != nil {
		return nil, err
	}
	defer att.Release()
	flat, err := att.Reshape(b, l, a.Heads*a.Dim)
	if err != nil {
		return nil, err
	}
	defer flat.Release()
	return a.O.Forward(ctx, flat)
}
