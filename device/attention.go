package device

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// RopeTable holds the cos/sin tables of rotary position embeddings; build
// one per model with NewRopeTable and share it.
type RopeTable = cpu.RopeTable

// RopeMode says which entries of a head rotate together.
type RopeMode = cpu.RopeMode

const (
	// RopeHalf pairs i with i+D/2 (Qwen2, Llama in Hugging Face).
	RopeHalf = cpu.RopeHalf
	// RopeInterleaved pairs 2i with 2i+1 (RoFormer, GPT-J).
	RopeInterleaved = cpu.RopeInterleaved
)

// NewRopeTable returns the table for maxPos positions and dim rotated
// entries per head, with frequencies theta^(-2i/dim) (Su et al. 2021).
func NewRopeTable(maxPos, dim int, theta float64) RopeTable {
	return cpu.NewRopeTable(maxPos, dim, theta)
}

// NewRopeTableFreqs returns the table for explicit frequencies (for
// multi-axis RoPE, where each axis rotates its own slice of a head).
func NewRopeTableFreqs(maxPos int, freqs []float64) RopeTable {
	return cpu.NewRopeTableFreqs(maxPos, freqs)
}

// RoPE returns x [B, T, H, D] rotated: token t at position pos0+t, or at
// positions[t] ([T]) or positions[b*T+t] ([B*T]) when positions is given.
func RoPE(ctx context.Context, x *tensor.Tensor, tab RopeTable, mode RopeMode, pos0 int, positions []int32) (*tensor.Tensor, error) {
	if x.Rank() != 4 {
		return nil, shapeErr("rope: want [B, T, H, D], got %v", x.Shape())
	}
	b, t, h, d := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	if tab.Dim > d || tab.Dim%2 != 0 {
		return nil, shapeErr("rope: table rotates %d entries of a %d-entry head", tab.Dim, d)
	}
	maxPos := tab.MaxPos()
	if positions == nil && pos0+t > maxPos {
		return nil, shapeErr("rope: positions up to %d, the table covers %d", pos0+t-1, maxPos)
	}
	if positions != nil {
		if len(positions) != t && len(positions) != b*t {
			return nil, shapeErr("rope: %d positions for batch %d × %d tokens", len(positions), b, t)
		}
		for _, p := range positions {
			if p < 0 || int(p) >= maxPos {
				return nil, shapeErr("rope: position %d outside the table's [0, %d)", p, maxPos)
			}
		}
	}
	n := x.NumElements()
	k := begin(ctx, "rope", cost{flops: 3 * int64(n), bytes: bytes32(n, n)}, x)
	defer k.end()
	in, err := k.data(x)
	if err != nil {
		return nil, err
	}
	return k.output(x.Shape(), func(dst []float32) error {
		copy(dst, in[0])
		if positions != nil {
			cpu.RopeAt(k.cpu.Threads(), dst, b, t, h, d, positions, tab, mode)
		} else {
			cpu.Rope(k.cpu.Threads(), dst, b, t, h, d, pos0, tab, mode)
		}
		return nil
	})
}

// AttentionOptions configure scaled-dot-product attention.
type AttentionOptions struct {
	// Scale multiplies the scores; 0 means 1/√D.
	Scale float32
	// Causal lets query i (at absolute position Past+i) see keys up to
	// Past+i only.
	Causal bool
	Past   int
	// Mask is added to the scores: [Tq, Tk], [B, Tq, Tk] or [B, Hq, Tq, Tk].
	Mask *tensor.Tensor
	// KeyMask [B*Tk] marks the keys that may be attended (false: padding).
	KeyMask []bool
}

// Attention computes softmax(scale·QKᵀ + mask)·V for q [B, Tq, Hq, D] and
// k, v [B, Tk, Hkv, D] (the layout linear projections produce), with
// grouped-query heads (Hq a multiple of Hkv). The result is [B, Tq, Hq, D].
func Attention(ctx context.Context, q, k, v *tensor.Tensor, opt AttentionOptions) (*tensor.Tensor, error) {
	if q.Rank() != 4 || k.Rank() != 4 || v.Rank() != 4 {
		return nil, shapeErr("attention: want [B, T, H, D] operands, got q %v k %v v %v", q.Shape(), k.Shape(), v.Shape())
	}
	bq, tq, hq, d := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	bk, tk, hk, dk := k.Dim(0), k.Dim(1), k.Dim(2), k.Dim(3)
	if !tensor.SameShape(k.Shape(), v.Shape()) || bk != bq || dk != d || hk == 0 || hq%hk != 0 {
		return nil, shapeErr("attention: q %v, k %v, v %v do not fit (batch, head_dim, heads a multiple of kv heads)", q.Shape(), k.Shape(), v.Shape())
	}
	p := cpu.AttentionParams{Batch: bq, QHeads: hq, KVHeads: hk, QLen: tq, KVLen: tk, HeadDim: d,
		Q: cpu.LayoutBTHD(hq, tq, d), K: cpu.LayoutBTHD(hk, tk, d), V: cpu.LayoutBTHD(hk, tk, d),
		Out: cpu.LayoutBTHD(hq, tq, d), Scale: opt.Scale, Causal: opt.Causal, Past: opt.Past, KeyMask: opt.KeyMask}
	return attention(ctx, q, p, opt, func(kc *kernelCall) ([]float32, []float32, error) {
		in, err := kc.data(k, v)
		if err != nil {
			return nil, nil, err
		}
		return in[0], in[1], nil
	})
}

// attention runs the CPU kernel for q [B, Tq, Hq, D] with keys and values
// from kv.
func attention(ctx context.Context, q *tensor.Tensor, p cpu.AttentionParams, opt AttentionOptions,
	kv func(*kernelCall) ([]float32, []float32, error)) (*tensor.Tensor, error) {
	if opt.KeyMask != nil && len(opt.KeyMask) != p.Batch*p.KVLen {
		return nil, shapeErr("attention: key mask has %d entries, want batch %d × %d keys", len(opt.KeyMask), p.Batch, p.KVLen)
	}
	if opt.Causal && p.Past+p.QLen > p.KVLen {
		return nil, shapeErr("attention: causal queries at positions up to %d but only %d keys", p.Past+p.QLen-1, p.KVLen)
	}
	pairs := int64(p.QLen) * int64(p.KVLen)
	if opt.Causal {
		pairs = 0
		for i := 0; i < p.QLen; i++ {
			pairs += int64(min(p.KVLen, p.Past+i+1))
		}
	}
	flops := 4 * int64(p.Batch) * int64(p.QHeads) * pairs * int64(p.HeadDim)
	qn := q.NumElements()
	k := begin(ctx, "attention", cost{flops: flops, bytes: bytes32(2*qn, 2*p.Batch*p.KVHeads*p.KVLen*p.HeadDim)}, q)
	defer k.end()
	if opt.Mask != nil {
		m := opt.Mask.NumElements()
		if m != p.QLen*p.KVLen && m != p.Batch*p.QLen*p.KVLen && m != p.Batch*p.QHeads*p.QLen*p.KVLen {
			return nil, k.wrap(shapeErr("mask %v fits neither [Tq, Tk], [B, Tq, Tk] nor [B, Hq, Tq, Tk] for %d×%d", opt.Mask.Shape(), p.QLen, p.KVLen))
		}
	}
	in, err := k.data(q, opt.Mask)
	if err != nil {
		return nil, err
	}
	p.Mask = in[1]
	kd, vd, err := kv(k)
	if err != nil {
		return nil, err
	}
	return k.output(q.Shape(), func(dst []float32) error {
		cpu.Attention(k.cpu.Threads(), dst, in[0], kd, vd, p)
		return nil
	})
}

// KVCache holds one attention layer's keys and values for incremental
// decoding, for batch sequences of equal length (host memory).
type KVCache struct {
	c *cpu.KVCache
}

// NewKVCache preallocates a cache of maxLen positions.
func NewKVCache(batch, heads, maxLen, headDim int) (*KVCache, error) {
	if batch <= 0 || heads <= 0 || maxLen <= 0 || headDim <= 0 {
		return nil, shapeErr("kv cache: batch %d, heads %d, max length %d, head dim %d", batch, heads, maxLen, headDim)
	}
	return &KVCache{c: cpu.NewKVCache(batch, heads, maxLen, headDim)}, nil
}

// Len returns the positions held.
func (c *KVCache) Len() int { return c.c.Len() }

// Cap returns the capacity in positions.
func (c *KVCache) Cap() int { return c.c.MaxLen }

// Reset empties the cache, keeping its memory.
func (c *KVCache) Reset() { c.c.Reset() }

// Truncate drops the positions from n on.
func (c *KVCache) Truncate(n int) error {
	if n < 0 || n > c.c.Len() {
		return shapeErr("kv cache: truncate to %d of %d", n, c.c.Len())
	}
	c.c.Truncate(n)
	return nil
}

// Bytes returns the memory the cache holds.
func (c *KVCache) Bytes() int64 { return int64(len(c.c.K)+len(c.c.V)) * 4 }

// Append adds k and v [B, T, H, D] after the positions held; when they do
// not fit it adds nothing and returns an error wrapping cpu.ErrKVCacheFull.
func (c *KVCache) Append(ctx context.Context, k, v *tensor.Tensor) error {
	want := []int{c.c.Batch, k.Dim(1), c.c.Heads, c.c.HeadDim}
	if k.Rank() != 4 || !tensor.SameShape(k.Shape(), want) || !tensor.SameShape(v.Shape(), want) {
		return shapeErr("kv cache append: k %v, v %v, want [%d, T, %d, %d]", k.Shape(), v.Shape(), c.c.Batch, c.c.Heads, c.c.HeadDim)
	}
	kc := begin(ctx, "kv_append", cost{bytes: bytes32(2*k.NumElements(), 2*k.NumElements())}, k)
	defer kc.end()
	in, err := kc.data(k, v)
	if err != nil {
		return err
	}
	if err := c.c.AppendSeqMajor(in[0], in[1]); err != nil {
		return kc.wrap(err)
	}
	return nil
}

// AttentionCache attends q [B, Tq, Hq, D] — the newest Tq positions, already
// appended — to everything in the cache, causally (query i at position
// Len()-Tq+i); opt.Causal and opt.Past are set from the cache.
func AttentionCache(ctx context.Context, q *tensor.Tensor, c *KVCache, opt AttentionOptions) (*tensor.Tensor, error) {
	if q.Rank() != 4 || q.Dim(0) != c.c.Batch || q.Dim(3) != c.c.HeadDim || q.Dim(2)%c.c.Heads != 0 {
		return nil, shapeErr("attention: q %v does not fit a cache of batch %d, %d heads of %d", q.Shape(), c.c.Batch, c.c.Heads, c.c.HeadDim)
	}
	if q.Dim(1) > c.c.Len() {
		return nil, shapeErr("attention: %d queries but the cache holds %d positions (append first)", q.Dim(1), c.c.Len())
	}
	p := c.c.AttentionParams(q.Dim(2), q.Dim(1))
	p.Q = cpu.LayoutBTHD(q.Dim(2), q.Dim(1), q.Dim(3))
	p.Out = p.Q
	p.Scale = opt.Scale
	p.KeyMask = opt.KeyMask
	opt.Causal, opt.Past = true, p.Past
	return attention(ctx, q, p, opt, func(*kernelCall) ([]float32, []float32, error) {
		return c.c.K, c.c.V, nil
	})
}

func (c *KVCache) String() string {
	return fmt.Sprintf("KVCache(batch %d, %d heads × %d, %d/%d positions)", c.c.Batch, c.c.Heads, c.c.HeadDim, c.c.Len(), c.c.MaxLen)
}
