package cpu

import (
	"errors"
	"fmt"
)

// ErrKVCacheFull reports an Append past a KVCache's capacity.
var ErrKVCacheFull = errors.New("cpu: KV cache full")

// KVCache holds one attention layer's keys and values for incremental
// decoding, preallocated: K and V are [Batch, Heads, MaxLen, HeadDim]
// (LayoutBHTD with MaxLen as the sequence length), of which positions
// [0, Len()) are filled. A model keeps one per layer. Every sequence in the
// batch has the same length; batches of different lengths are padded and
// masked with AttentionParams.KeyMask.
//
// A KVCache is not safe for concurrent Append; attention reads of K and V
// between Appends may run concurrently.
type KVCache struct {
	K, V                          []float32
	Batch, Heads, MaxLen, HeadDim int
	n                             int
}

// NewKVCache allocates an empty cache.
func NewKVCache(batch, heads, maxLen, headDim int) *KVCache {
	mustDims("NewKVCache", batch, heads, maxLen, headDim)
	size := batch * heads * maxLen * headDim
	return &KVCache{
		K: make([]float32, size), V: make([]float32, size),
		Batch: batch, Heads: heads, MaxLen: maxLen, HeadDim: headDim,
	}
}

// Len returns the number of positions held.
func (c *KVCache) Len() int { return c.n }

// Reset empties the cache for a new sequence (the memory is kept).
func (c *KVCache) Reset() { c.n = 0 }

// Truncate drops every position from n on (rejected draft tokens in
// speculative decoding); n must be in [0, Len()].
func (c *KVCache) Truncate(n int) {
	if n < 0 || n > c.n {
		panic(fmt.Sprintf("cpu.KVCache.Truncate(%d): length is %d", n, c.n))
	}
	c.n = n
}

// Layout returns the layout of K and V.
func (c *KVCache) Layout() Layout { return LayoutBHTD(c.Heads, c.MaxLen, c.HeadDim) }

// Append copies new positions of keys and values, each
// [Batch, Heads, t, HeadDim] (t = len(k) / (Batch*Heads*HeadDim)), after
// the ones held. If they do not fit, it copies nothing and returns an error
// wrapping ErrKVCacheFull.
func (c *KVCache) Append(k, v []float32) error {
	t := c.steps("Append", k, v)
	return c.append("Append", k, v, t, LayoutBHTD(c.Heads, t, c.HeadDim))
}

// AppendSeqMajor is Append for keys and values laid out [Batch, t, Heads,
// HeadDim] (the output of the k and v projections, before any transpose).
func (c *KVCache) AppendSeqMajor(k, v []float32) error {
	t := c.steps("AppendSeqMajor", k, v)
	return c.append("AppendSeqMajor", k, v, t, LayoutBTHD(c.Heads, t, c.HeadDim))
}

// steps returns the number of positions in k and v, panicking unless both
// hold the same whole number of them.
func (c *KVCache) steps(name string, k, v []float32) int {
	row := c.Batch * c.Heads * c.HeadDim
	if row == 0 {
		return 0
	}
	if len(k)%row != 0 || len(v) != len(k) {
		panic(fmt.Sprintf("cpu.KVCache.%s: len(k) = %d, len(v) = %d, want the same multiple of Batch*Heads*HeadDim = %d", name, len(k), len(v), row))
	}
	return len(k) / row
}

func (c *KVCache) append(name string, k, v []float32, t int, src Layout) error {
	if c.n+t > c.MaxLen {
		return fmt.Errorf("cpu: KVCache.%s of %d positions to %d held: %w (capacity %d)", name, t, c.n, ErrKVCacheFull, c.MaxLen)
	}
	dst := c.Layout()
	d := c.HeadDim
	for b := range c.Batch {
		for h := range c.Heads {
			for s := range t {
				so := b*src.Batch + h*src.Head + s*src.Seq
				do := b*dst.Batch + h*dst.Head + (c.n+s)*dst.Seq
				copy(c.K[do:do+d], k[so:so+d])
				copy(c.V[do:do+d], v[so:so+d])
			}
		}
	}
	c.n += t
	return nil
}

// AttentionParams returns the parameters for causal attention of qLen new
// queries ([Batch, qHeads, qLen, HeadDim], dense) against everything in the
// cache, to be called after this step's Append: KVLen = Len(),
// Past = Len() - qLen, and K and V read in place.
func (c *KVCache) AttentionParams(qHeads, qLen int) AttentionParams {
	if qLen > c.n {
		panic(fmt.Sprintf("cpu.KVCache.AttentionParams: %d queries but only %d positions held; Append first", qLen, c.n))
	}
	l := c.Layout()
	return AttentionParams{
		Batch: c.Batch, QHeads: qHeads, KVHeads: c.Heads,
		QLen: qLen, KVLen: c.n, HeadDim: c.HeadDim,
		K: l, V: l, Causal: true, Past: c.n - qLen,
	}
}
