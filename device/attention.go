package device

import (
	"context"
	"fmt"
	"math"

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

// maxRopeEntries bounds a table's cos (and sin) entries: 2^30 float32s,
// 4 GiB each, far beyond any model's positions × head size.
const maxRopeEntries = 1 << 30

// NewRopeTable returns the table for maxPos positions and dim rotated
// entries per head, with frequencies theta^(-2i/dim) (Su et al. 2021).
// Bad arguments (dim not even and positive, theta not > 1, maxPos negative
// or beyond 2^30 entries) give an empty table, which RoPE rejects with an
// error.
func NewRopeTable(maxPos, dim int, theta float64) RopeTable {
	if dim <= 0 || dim%2 != 0 || !(theta > 1) || math.IsInf(theta, 0) || maxPos < 0 || maxPos > maxRopeEntries/(dim/2) {
		return RopeTable{}
	}
	return cpu.NewRopeTable(maxPos, dim, theta)
}

// NewRopeTableFreqs returns the table for explicit frequencies (for
// multi-axis RoPE, where each axis rotates its own slice of a head). No
// frequencies or a bad maxPos give an empty table, which RoPE rejects.
func NewRopeTableFreqs(maxPos int, freqs []float64) RopeTable {
	if len(freqs) == 0 || maxPos < 0 || maxPos > maxRopeEntries/len(freqs) {
		return RopeTable{}
	}
	return cpu.NewRopeTableFreqs(maxPos, freqs)
}

// checkRopeTable reports a table that cannot rotate heads of d entries.
func checkRopeTable(tab RopeTable, mode RopeMode, d int) error {
	switch {
	case tab.Dim <= 0:
		return shapeErr("rope: table is empty (NewRopeTable was given bad arguments)")
	case tab.Dim%2 != 0 || tab.Dim > d:
		return shapeErr("rope: table rotates %d entries of a %d-entry head", tab.Dim, d)
	case len(tab.Cos) != len(tab.Sin) || len(tab.Cos)%(tab.Dim/2) != 0:
		return shapeErr("rope: table has %d cos and %d sin entries, want the same multiple of %d", len(tab.Cos), len(tab.Sin), tab.Dim/2)
	case mode != RopeHalf && mode != RopeInterleaved:
		return paramErr("rope: mode: unknown %v", mode)
	}
	return nil
}

// RoPE returns x [B, T, H, D] rotated: token t at position pos0+t, or at
// positions[t] ([T]) or positions[b*T+t] ([B*T]) when positions is given.
func RoPE(ctx context.Context, x *tensor.Tensor, tab RopeTable, mode RopeMode, pos0 int, positions []int32) (*tensor.Tensor, error) {
	if err := present("rope", operand{"x", x}); err != nil {
		return nil, err
	}
	if x.Rank() != 4 {
		return nil, shapeErr("rope: x: want [B, T, H, D], got %v", x.Shape())
	}
	if err := floatOperands("rope", operand{"x", x}); err != nil {
		return nil, err
	}
	b, t, h, d := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	if err := checkRopeTable(tab, mode, d); err != nil {
		return nil, err
	}
	maxPos := tab.MaxPos()
	if positions == nil {
		if pos0 < 0 {
			return nil, shapeErr("rope: pos0 is %d, want >= 0", pos0)
		}
		if pos0 > maxPos-t {
			return nil, shapeErr("rope: pos0 %d: positions up to %d, the table covers %d", pos0, pos0+t-1, maxPos)
		}
	} else {
		if len(positions) != t && len(positions) != b*t {
			return nil, shapeErr("rope: %d positions for batch %d × %d tokens", len(positions), b, t)
		}
		for i, p := range positions {
			if p < 0 || int(p) >= maxPos {
				return nil, shapeErr("rope: positions[%d] = %d outside the table's [0, %d)", i, p, maxPos)
			}
		}
	}
	n := x.NumElements()
	return dispatch(ctx, "rope", cost{flops: 3 * int64(n), bytes: traffic(n, x)}, []*tensor.Tensor{x},
		func(ctx context.Context, dv Roper) (*tensor.Tensor, error) {
			return dv.RoPE(ctx, x, tab, mode, pos0, positions)
		},
		func(k *kernelCall) (*tensor.Tensor, error) {
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
// Queries that see no key (Tk = 0, or every key masked) give zeros.
func Attention(ctx context.Context, q, k, v *tensor.Tensor, opt AttentionOptions) (*tensor.Tensor, error) {
	if err := present("attention", operand{"q", q}, operand{"k", k}, operand{"v", v}); err != nil {
		return nil, err
	}
	if q.Rank() != 4 || k.Rank() != 4 || v.Rank() != 4 {
		return nil, shapeErr("attention: want [B, T, H, D] operands, got q %v k %v v %v", q.Shape(), k.Shape(), v.Shape())
	}
	bq, tq, hq, d := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	bk, tk, hk, dk := k.Dim(0), k.Dim(1), k.Dim(2), k.Dim(3)
	if !tensor.SameShape(k.Shape(), v.Shape()) || bk != bq || dk != d || hq <= 0 || hk <= 0 || d <= 0 || hq%hk != 0 {
		return nil, shapeErr("attention: q %v, k %v, v %v do not fit (same batch and head_dim > 0, k and v alike, q heads > 0 a multiple of kv heads)", q.Shape(), k.Shape(), v.Shape())
	}
	p := cpu.AttentionParams{Batch: bq, QHeads: hq, KVHeads: hk, QLen: tq, KVLen: tk, HeadDim: d,
		Q: cpu.LayoutBTHD(hq, tq, d), K: cpu.LayoutBTHD(hk, tk, d), V: cpu.LayoutBTHD(hk, tk, d),
		Out: cpu.LayoutBTHD(hq, tq, d), Scale: opt.Scale, Causal: opt.Causal, Past: opt.Past, KeyMask: opt.KeyMask}
	if err := firstErr(floatOperands("attention", operand{"q", q}, operand{"k", k}, operand{"v", v}), checkAttention(p, opt)); err != nil {
		return nil, err
	}
	c := attentionCost(p, opt, traffic(q.NumElements(), q, k, v, opt.Mask))
	return dispatch(ctx, "attention", c, []*tensor.Tensor{q, k},
		func(ctx context.Context, dv Attender) (*tensor.Tensor, error) { return dv.Attention(ctx, q, k, v, opt) },
		func(kc *kernelCall) (*tensor.Tensor, error) {
			in, err := kc.data(k, v)
			if err != nil {
				return nil, err
			}
			return attentionHost(kc, q, p, opt, in[0], in[1])
		})
}

// checkAttention reports options that do not fit p.
func checkAttention(p cpu.AttentionParams, opt AttentionOptions) error {
	if opt.Past < 0 {
		return shapeErr("attention: past is %d, want >= 0", opt.Past)
	}
	if err := finite("attention", "scale", opt.Scale); err != nil {
		return err
	}
	if opt.KeyMask != nil && len(opt.KeyMask) != p.Batch*p.KVLen {
		return shapeErr("attention: key mask has %d entries, want batch %d × %d keys", len(opt.KeyMask), p.Batch, p.KVLen)
	}
	if opt.Causal && opt.Past > p.KVLen-p.QLen {
		return shapeErr("attention: past %d: causal queries at positions up to %d but only %d keys", opt.Past, opt.Past+p.QLen-1, p.KVLen)
	}
	if m := opt.Mask; m != nil {
		n, row := m.NumElements(), p.QLen*p.KVLen
		if n != row && n != p.Batch*row && n != p.Batch*p.QHeads*row {
			return shapeErr("attention: mask %v fits neither [Tq, Tk], [B, Tq, Tk] nor [B, Hq, Tq, Tk] for %d×%d", m.Shape(), p.QLen, p.KVLen)
		}
		if err := floatOperands("attention", operand{"mask", m}); err != nil {
			return err
		}
	}
	return nil
}

// attentionCost counts 4·D FLOPs per (query head, visible key) pair.
func attentionCost(p cpu.AttentionParams, opt AttentionOptions, bytes int64) cost {
	pairs := int64(p.QLen) * int64(p.KVLen)
	if opt.Causal {
		pairs = 0
		for i := 0; i < p.QLen; i++ {
			pairs += int64(min(p.KVLen, p.Past+i+1))
		}
	}
	return cost{flops: 4 * int64(p.Batch) * int64(p.QHeads) * pairs * int64(p.HeadDim), bytes: bytes}
}

// attentionHost runs the CPU kernel for q [B, Tq, Hq, D] with keys and
// values kd, vd laid out as p says.
func attentionHost(k *kernelCall, q *tensor.Tensor, p cpu.AttentionParams, opt AttentionOptions, kd, vd []float32) (*tensor.Tensor, error) {
	in, err := k.data(q, opt.Mask)
	if err != nil {
		return nil, err
	}
	p.Mask = in[1]
	return k.output(q.Shape(), func(dst []float32) error {
		cpu.Attention(k.cpu.Threads(), dst, in[0], kd, vd, p)
		return nil
	})
}

// ErrKVCacheFull reports an Append past a KVCache's capacity.
var ErrKVCacheFull = cpu.ErrKVCacheFull

// KVCache holds one attention layer's keys and values for incremental
// decoding, for batch sequences of equal length (host memory).
type KVCache struct {
	c *cpu.KVCache
}

// NewKVCache preallocates a cache of maxLen positions.
func NewKVCache(batch, heads, maxLen, headDim int) (*KVCache, error) {
	if batch <= 0 || heads <= 0 || maxLen <= 0 || headDim <= 0 {
		return nil, shapeErr("kv cache: batch %d, heads %d, max length %d, head dim %d: want all > 0", batch, heads, maxLen, headDim)
	}
	n, err := tensor.NumElements([]int{batch, heads, maxLen, headDim})
	if err != nil || n > math.MaxInt/8 {
		return nil, shapeErr("kv cache: batch %d, heads %d, max length %d, head dim %d: too large", batch, heads, maxLen, headDim)
	}
	return &KVCache{c: cpu.NewKVCache(batch, heads, maxLen, headDim)}, nil
}

var errNoCache = fmt.Errorf("%w: kv cache: not made by NewKVCache", ErrShape)

func (c *KVCache) ok() bool { return c != nil && c.c != nil }

// Len returns the positions held.
func (c *KVCache) Len() int {
	if !c.ok() {
		return 0
	}
	return c.c.Len()
}

// Cap returns the capacity in positions.
func (c *KVCache) Cap() int {
	if !c.ok() {
		return 0
	}
	return c.c.MaxLen
}

// Reset empties the cache, keeping its memory.
func (c *KVCache) Reset() {
	if c.ok() {
		c.c.Reset()
	}
}

// Truncate drops the positions from n on.
func (c *KVCache) Truncate(n int) error {
	if !c.ok() {
		return errNoCache
	}
	if n < 0 || n > c.c.Len() {
		return shapeErr("kv cache: truncate to %d of %d", n, c.c.Len())
	}
	c.c.Truncate(n)
	return nil
}

// Bytes returns the memory the cache holds.
func (c *KVCache) Bytes() int64 {
	if !c.ok() {
		return 0
	}
	return int64(len(c.c.K)+len(c.c.V)) * 4
}

// Append adds k and v [B, T, H, D] after the positions held; when they do
// not fit it adds nothing and returns an error wrapping ErrKVCacheFull.
func (c *KVCache) Append(ctx context.Context, k, v *tensor.Tensor) error {
	const name = "kv_append"
	if !c.ok() {
		return errNoCache
	}
	if err := present(name, operand{"k", k}, operand{"v", v}); err != nil {
		return err
	}
	if k.Rank() != 4 || v.Rank() != 4 {
		return shapeErr("kv cache append: k %v, v %v, want [%d, T, %d, %d]", k.Shape(), v.Shape(), c.c.Batch, c.c.Heads, c.c.HeadDim)
	}
	want := []int{c.c.Batch, k.Dim(1), c.c.Heads, c.c.HeadDim}
	if !tensor.SameShape(k.Shape(), want) || !tensor.SameShape(v.Shape(), want) {
		return shapeErr("kv cache append: k %v, v %v, want [%d, T, %d, %d]", k.Shape(), v.Shape(), c.c.Batch, c.c.Heads, c.c.HeadDim)
	}
	if err := floatOperands(name, operand{"k", k}, operand{"v", v}); err != nil {
		return err
	}
	if t := k.Dim(1); t > c.c.MaxLen-c.c.Len() {
		return fmt.Errorf("kv cache append: %d positions to %d held: %w (capacity %d)", t, c.c.Len(), ErrKVCacheFull, c.c.MaxLen)
	}
	kc := begin(ctx, name, cost{bytes: traffic(2*k.NumElements(), k, v)}, k, v)
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
// Len()-Tq+i); opt.Causal and opt.Past are set from the cache. It runs on
// the CPU, where the cache lives.
func AttentionCache(ctx context.Context, q *tensor.Tensor, c *KVCache, opt AttentionOptions) (*tensor.Tensor, error) {
	if !c.ok() {
		return nil, fmt.Errorf("attention: %w", errNoCache)
	}
	if err := present("attention", operand{"q", q}); err != nil {
		return nil, err
	}
	if q.Rank() != 4 || q.Dim(0) != c.c.Batch || q.Dim(3) != c.c.HeadDim || q.Dim(2) <= 0 || q.Dim(2)%c.c.Heads != 0 {
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
	if err := firstErr(floatOperands("attention", operand{"q", q}), checkAttention(p, opt)); err != nil {
		return nil, err
	}
	kvBytes := 2 * 4 * int64(p.Batch) * int64(p.KVHeads) * int64(p.KVLen) * int64(p.HeadDim)
	kc := begin(ctx, "attention", attentionCost(p, opt, traffic(q.NumElements(), q, opt.Mask)+kvBytes), q)
	defer kc.end()
	return attentionHost(kc, q, p, opt, c.c.K, c.c.V)
}

func (c *KVCache) String() string {
	if !c.ok() {
		return "KVCache(none)"
	}
	return fmt.Sprintf("KVCache(batch %d, %d heads × %d, %d/%d positions)", c.c.Batch, c.c.Heads, c.c.HeadDim, c.c.Len(), c.c.MaxLen)
}
