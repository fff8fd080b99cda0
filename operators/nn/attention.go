package nn

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// AttentionConfig describes multi-head attention with grouped-query heads.
type AttentionConfig struct {
	Dim     int // model width (queries and the output)
	Heads   int
	KVHeads int // 0 means Heads
	HeadDim int // 0 means Dim/Heads
	// KVDim is the width keys and values are projected from: the context's
	// for cross-attention (0 means Dim).
	KVDim   int
	QKVBias bool
	OutBias bool
	// QKNorm applies RMSNorm to q and k: over each head (Qwen3) when
	// QKNormPerHead, else over the whole projection (Wan).
	QKNorm        bool
	QKNormPerHead bool
	NormEps       float32
	// Weight names under the layer's name (defaults: q_proj, k_proj,
	// v_proj, o_proj, q_norm, k_norm — the Hugging Face Qwen2 ones).
	QName, KName, VName, OName, QNormName, KNormName string
}

func (c *AttentionConfig) defaults() {
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Dim / c.Heads
	}
	if c.KVDim == 0 {
		c.KVDim = c.Dim
	}
	if c.NormEps == 0 {
		c.NormEps = 1e-6
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.QName, "q_proj")
	def(&c.KName, "k_proj")
	def(&c.VName, "v_proj")
	def(&c.OName, "o_proj")
	def(&c.QNormName, "q_norm")
	def(&c.KNormName, "k_norm")
}

// Attention is self- or cross-attention with optional rotary embeddings, a
// KV cache, and grouped-query heads.
type Attention struct {
	Name         string
	Cfg          AttentionConfig
	Q, K, V, O   *Linear
	QNorm, KNorm *RMSNorm
}

// NewAttention builds the projections (and norms).
func NewAttention(src Source, name string, cfg AttentionConfig) (*Attention, error) {
	cfg.defaults()
	if cfg.Heads <= 0 || cfg.HeadDim <= 0 || cfg.KVHeads <= 0 || cfg.Heads%cfg.KVHeads != 0 {
		return nil, fmt.Errorf("%w: %s: %d heads of %d over %d kv heads", ErrWeight, name, cfg.Heads, cfg.HeadDim, cfg.KVHeads)
	}
	a := &Attention{Name: name, Cfg: cfg}
	var err error
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	if a.Q, err = NewLinear(src, Join(name, cfg.QName), cfg.Dim, q, cfg.QKVBias); err != nil {
		return nil, err
	}
	if a.K, err = NewLinear(src, Join(name, cfg.KName), cfg.KVDim, kv, cfg.QKVBias); err != nil {
		return nil, err
	}
	if a.V, err = NewLinear(src, Join(name, cfg.VName), cfg.KVDim, kv, cfg.QKVBias); err != nil {
		return nil, err
	}
	if a.O, err = NewLinear(src, Join(name, cfg.OName), q, cfg.Dim, cfg.OutBias); err != nil {
		return nil, err
	}
	if cfg.QKNorm {
		qd, kd := q, kv
		if cfg.QKNormPerHead {
			qd, kd = cfg.HeadDim, cfg.HeadDim
		}
		if a.QNorm, err = NewRMSNorm(src, Join(name, cfg.QNormName), qd, cfg.NormEps); err != nil {
			return nil, err
		}
		if a.KNorm, err = NewRMSNorm(src, Join(name, cfg.KNormName), kd, cfg.NormEps); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// AttendOptions configure one forward pass.
type AttendOptions struct {
	// Context holds the keys' and values' source [B, Tk, KVDim] for
	// cross-attention (nil: self-attention over x).
	Context *tensor.Tensor
	// Cache, for self-attention, receives this step's keys and values and
	// supplies all earlier ones; attention is then causal.
	Cache  *device.KVCache
	Causal bool
	// RoPE rotates q and k (self-attention only). Token t of x is at
	// position Pos0+t, or Positions[t] / Positions[b*T+t] when given; a
	// table whose rows are tokens (Pos0 0) serves multi-axis RoPE.
	RoPE      *device.RopeTable
	RoPEMode  device.RopeMode
	Pos0      int
	Positions []int32
	// KeyMask [B*Tk] marks attendable keys (padding false).
	KeyMask []bool
	// Mask is added to the scores ([Tq, Tk], [B, Tq, Tk] or [B, H, Tq, Tk]).
	Mask *tensor.Tensor
}

// Forward attends x [B, T, Dim] and returns [B, T, Dim].
func (a *Attention) Forward(ctx context.Context, x *tensor.Tensor, opt AttendOptions) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "Attention", profiler.String("name", a.Name))
	defer span.End()
	out, err := a.forward(ctx, x, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name, err)
	}
	return out, nil
}

func (a *Attention) forward(ctx context.Context, x *tensor.Tensor, opt AttendOptions) (*tensor.Tensor, error) {
	if x.Rank() != 3 || x.Dim(2) != a.Cfg.Dim {
		return nil, fmt.Errorf("%w: input %v, want [B, T, %d]", device.ErrShape, x.Shape(), a.Cfg.Dim)
	}
	b, t := x.Dim(0), x.Dim(1)
	kvSrc := x
	if opt.Context != nil {
		kvSrc = opt.Context
		if kvSrc.Rank() != 3 || kvSrc.Dim(0) != b || kvSrc.Dim(2) != a.Cfg.KVDim {
			return nil, fmt.Errorf("%w: context %v, want [%d, Tk, %d]", device.ErrShape, kvSrc.Shape(), b, a.Cfg.KVDim)
		}
		if opt.Cache != nil || opt.RoPE != nil {
			return nil, fmt.Errorf("%w: cross-attention takes no KV cache or RoPE", device.ErrShape)
		}
	}
	q, err := a.project(ctx, a.Q, a.QNorm, x, a.Cfg.Heads)
	if err != nil {
		return nil, err
	}
	defer func() { q.Release() }() // q and k are replaced by their rotated copies
	k, err := a.project(ctx, a.K, a.KNorm, kvSrc, a.Cfg.KVHeads)
	if err != nil {
		return nil, err
	}
	defer func() { k.Release() }()
	v, err := a.project(ctx, a.V, nil, kvSrc, a.Cfg.KVHeads)
	if err != nil {
		return nil, err
	}
	defer v.Release()
	if opt.RoPE != nil {
		pos0 := opt.Pos0
		if opt.Cache != nil && opt.Positions == nil && pos0 == 0 {
			pos0 = opt.Cache.Len()
		}
		rq, err := device.RoPE(ctx, q, *opt.RoPE, opt.RoPEMode, pos0, opt.Positions)
		if err != nil {
			return nil, err
		}
		q.Release()
		q = rq
		rk, err := device.RoPE(ctx, k, *opt.RoPE, opt.RoPEMode, pos0, opt.Positions)
		if err != nil {
			return nil, err
		}
		k.Release()
		k = rk
	}
	var att *tensor.Tensor
	aopt := device.AttentionOptions{Causal: opt.Causal, KeyMask: opt.KeyMask, Mask: opt.Mask}
	if opt.Cache != nil {
		if err := opt.Cache.Append(ctx, k, v); err != nil {
			return nil, err
		}
		att, err = device.AttentionCache(ctx, q, opt.Cache, aopt)
	} else {
		att, err = device.Attention(ctx, q, k, v, aopt)
	}
	if err != nil {
		return nil, err
	}
	defer att.Release()
	flat, err := att.Reshape(b, t, a.Cfg.Heads*a.Cfg.HeadDim)
	if err != nil {
		return nil, err
	}
	defer flat.Release()
	return a.O.Forward(ctx, flat)
}

// project applies a projection (and norm) and views the result as
// [B, T, heads, HeadDim].
func (a *Attention) project(ctx context.Context, l *Linear, norm *RMSNorm, x *tensor.Tensor, heads int) (*tensor.Tensor, error) {
	y, err := l.Forward(ctx, x)
	if err != nil {
		return nil, err
	}
	if norm != nil && !a.Cfg.QKNormPerHead {
		n, err := norm.Forward(ctx, y)
		y.Release()
		if err != nil {
			return nil, err
		}
		y = n
	}
	h, err := y.Reshape(x.Dim(0), x.Dim(1), heads, a.Cfg.HeadDim)
	y.Release()
	if err != nil {
		return nil, err
	}
	if norm != nil && a.Cfg.QKNormPerHead {
		n, err := norm.Forward(ctx, h)
		h.Release()
		if err != nil {
			return nil, err
		}
		h = n
	}
	return h, nil
}
