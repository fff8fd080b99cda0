package cpu

import (
	"fmt"
	"math"
	"sync/atomic"
)

// Layout gives the element strides of a [batch, heads, seq, headDim]
// attention operand along batch, heads and seq; the head_dim axis is always
// contiguous (stride 1). The zero Layout means dense [B, H, T, D].
type Layout struct{ Batch, Head, Seq int }

// LayoutBHTD is the dense [B, H, T, D] layout (heads before sequence: the
// layout of torch's scaled_dot_product_attention and of KVCache).
func LayoutBHTD(heads, seq, headDim int) Layout {
	return Layout{Batch: heads * seq * headDim, Head: seq * headDim, Seq: headDim}
}

// LayoutBTHD is the dense [B, T, H, D] layout (sequence before heads: what
// a linear projection to heads*headDim produces), so q, k and v need no
// transpose before attention.
func LayoutBTHD(heads, seq, headDim int) Layout {
	return Layout{Batch: seq * heads * headDim, Head: headDim, Seq: heads * headDim}
}

// AttentionParams describes one scaled-dot-product attention:
//
//	out[b, h, i] = Σ_j softmax_j(scale·q[b,h,i]·k[b,g,j] + mask) v[b,g,j],  g = h / (QHeads/KVHeads)
//
// q and out are [Batch, QHeads, QLen, HeadDim], k and v are
// [Batch, KVHeads, KVLen, HeadDim], each with its own Layout (zero: dense
// [B, H, T, D]). QHeads must be a multiple of KVHeads (grouped-query
// attention; KVHeads == QHeads is multi-head, KVHeads == 1 multi-query),
// and query head h reads KV head h / (QHeads/KVHeads), as repeat_kv does in
// the Hugging Face models.
type AttentionParams struct {
	Batch, QHeads, KVHeads int
	QLen, KVLen, HeadDim   int

	Q, K, V, Out Layout

	// Scale multiplies the scores; 0 means 1/sqrt(HeadDim).
	Scale float32

	// Causal lets query i (absolute position Past+i) see keys 0..Past+i
	// only. Past is the number of positions that precede the queries: 0 for a
	// prompt, the KV cache's length before this step's Append when decoding
	// (KVLen - QLen when the cache holds exactly the keys so far).
	Causal bool
	Past   int

	// Mask, if set, is added to the scaled scores: [QLen, KVLen] (shared),
	// [Batch, QLen, KVLen] or [Batch, QHeads, QLen, KVLen], told apart by
	// length. Use -Inf (or a large negative value) to block a key.
	Mask []float32

	// KeyMask, if set, is [Batch, KVLen]; keys whose entry is false are never
	// attended (padding in a batch of prompts, as a text encoder's
	// attention_mask of 0).
	KeyMask []bool
}

// Attention computes scaled-dot-product attention (Vaswani et al. 2017)
// into out, blockwise with an online softmax (Milakov & Gimelshein 2018;
// Dao et al. 2022, FlashAttention): for each KV head, a block of query rows
// (the GQA group's heads stacked, so that they share every K and V block)
// runs against blocks of keys, S = scale·Q·Kᵀ and O += P·V going through
// Sgemm, so the work is matrix-shaped for prefill and for a decode step
// alike, and memory stays O(block) however long the sequence. Query rows
// that see no key at all (fully masked) get zeros. out may be q when both
// have the same layout.
func Attention(threads int, out, q, k, v []float32, p AttentionParams) {
	p.check(out, q, k, v)
	if p.Batch == 0 || p.QHeads == 0 || p.QLen == 0 || p.HeadDim == 0 {
		return
	}
	group := p.QHeads / p.KVHeads
	// Query rows per task: the whole group for qb consecutive queries, about
	// attnRows rows in all, rounded to a multiple of 12 rows (the AVX-512
	// micro-kernel's tile height, twice the AVX2 one's) so that no tile is a
	// sliver; a decode step is one task per KV head.
	step := 12 / gcd(group, 12) // queries per 12-row multiple
	qb := (attnRows + group - 1) / group
	qb = min(p.QLen, (qb+step-1)/step*step)
	qBlocks := (p.QLen + qb - 1) / qb
	tasks := p.Batch * p.KVHeads * qBlocks
	rowsMax := group * qb
	kb := min(attnKeys, max(1, p.KVLen))
	if threads <= 0 {
		threads = Threads()
	}
	// Tasks are handed out one at a time, the latest query blocks of every
	// head (the most keys under a causal mask) first, so that the last tasks
	// to go are the short ones and the goroutines finish together.
	var next atomic.Int64
	workers := min(threads, tasks)
	ParallelFor(workers, workers, 1, func(_, _ int) {
		w := newAttnScratch(rowsMax, kb, p.HeadDim)
		for {
			i := int(next.Add(1)) - 1
			if i >= tasks {
				return
			}
			heads := p.Batch * p.KVHeads
			qblk := qBlocks - 1 - i/heads
			bg := i % heads
			t0 := qblk * qb
			w.run(&p, out, q, k, v, bg/p.KVHeads, bg%p.KVHeads, t0, min(t0+qb, p.QLen))
		}
	})
}

const (
	attnRows = 128 // query rows per block: the M of both products
	attnKeys = 256 // keys per block: the N of S = QKᵀ, the K of PV
)

// attnScratch is one goroutine's working memory for Attention.
type attnScratch struct {
	q, o, s []float32 // [rows, D], [rows, D], [rows, kb]
	m, l    []float32 // running max and normalizer per row
	kb      int
}

func newAttnScratch(rows, kb, d int) *attnScratch {
	buf := make([]float32, 2*rows*d+rows*kb+2*rows)
	w := &attnScratch{kb: kb}
	w.q, buf = buf[:rows*d], buf[rows*d:]
	w.o, buf = buf[:rows*d], buf[rows*d:]
	w.s, buf = buf[:rows*kb], buf[rows*kb:]
	w.m, w.l = buf[:rows], buf[rows:2*rows]
	return w
}

// run computes the output rows of queries [t0, t1) of every query head in
// KV head g's group, for batch entry b.
func (w *attnScratch) run(p *AttentionParams, out, q, k, v []float32, b, g, t0, t1 int) {
	d := p.HeadDim
	group := p.QHeads / p.KVHeads
	nq := t1 - t0
	rows := group * nq
	scale := p.scale()
	ninf := float32(math.Inf(-1))

	// Pack the rows: row r is query head g*group + r/nq, query t0 + r%nq.
	qrow := func(r int) int {
		h := g*group + r/nq
		return b*p.Q.Batch + h*p.Q.Head + (t0+r%nq)*p.Q.Seq
	}
	for r := range rows {
		copy(w.q[r*d:(r+1)*d], q[qrow(r):][:d])
	}
	o := w.o[:rows*d]
	clear(o)
	m, l := w.m[:rows], w.l[:rows]
	for r := range m {
		m[r], l[r] = ninf, 0
	}

	kEnd := p.KVLen
	if p.Causal {
		kEnd = min(kEnd, p.Past+t1) // the last query of the block sees keys < Past+t1
	}
	kOff := b*p.K.Batch + g*p.K.Head
	vOff := b*p.V.Batch + g*p.V.Head
	var keyMask []bool
	if p.KeyMask != nil {
		keyMask = p.KeyMask[b*p.KVLen : (b+1)*p.KVLen]
	}
	for j0 := 0; j0 < kEnd; j0 += w.kb {
		n := min(w.kb, kEnd-j0)
		s := w.s[:rows*n]
		// S = scale · Q Kᵀ over keys [j0, j0+n).
		Sgemm(1, false, true, rows, n, d, scale, w.q, d, k[kOff+j0*p.K.Seq:], p.K.Seq, 0, s, n)
		for r := range rows {
			sr := s[r*n : (r+1)*n]
			t := t0 + r%nq
			if p.Mask != nil {
				mk := p.Mask[p.maskOffset(b, g*group+r/nq, t)+j0:][:n]
				for j := range sr {
					sr[j] += mk[j]
				}
			}
			if keyMask != nil {
				for j, ok := range keyMask[j0 : j0+n] {
					if !ok {
						sr[j] = ninf
					}
				}
			}
			if p.Causal {
				if vis := p.Past + t + 1 - j0; vis < n { // keys j0+vis.. are in this query's future
					for j := max(vis, 0); j < n; j++ {
						sr[j] = ninf
					}
				}
			}
			// Online softmax: rescale what is accumulated to the new max.
			mNew := max32(m[r], maxF32(sr))
			if math.IsInf(float64(mNew), -1) { // nothing visible yet
				clear(sr)
				continue
			}
			sum := expAffine(sr, sr, 1, -mNew)
			if m[r] != mNew {
				alpha := expf(m[r] - mNew) // 0 when m[r] is -Inf
				l[r] *= alpha
				if alpha != 1 {
					or := o[r*d : (r+1)*d]
					for i := range or {
						or[i] *= alpha
					}
				}
				m[r] = mNew
			}
			l[r] += float32(sum)
		}
		// O += P V over the same keys.
		Sgemm(1, false, false, rows, d, n, 1, s, n, v[vOff+j0*p.V.Seq:], p.V.Seq, 1, o, d)
	}
	for r := range rows {
		h := g*group + r/nq
		dst := out[b*p.Out.Batch+h*p.Out.Head+(t0+r%nq)*p.Out.Seq:][:d]
		or := o[r*d : (r+1)*d]
		if l[r] == 0 {
			clear(dst)
			continue
		}
		inv := 1 / l[r]
		for i, x := range or {
			dst[i] = x * inv
		}
	}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (p *AttentionParams) scale() float32 {
	if p.Scale != 0 {
		return p.Scale
	}
	return float32(1 / math.Sqrt(float64(p.HeadDim)))
}

// maskOffset returns the offset in Mask of the row for (b, h, t).
func (p *AttentionParams) maskOffset(b, h, t int) int {
	row := p.QLen * p.KVLen
	switch len(p.Mask) {
	case row:
		return t * p.KVLen
	case p.Batch * row:
		return b*row + t*p.KVLen
	}
	return (b*p.QHeads+h)*row + t*p.KVLen
}

// check fills in default layouts and panics on inconsistent parameters.
func (p *AttentionParams) check(out, q, k, v []float32) {
	mustDims("Attention", p.Batch, p.QHeads, p.KVHeads, p.QLen, p.KVLen, p.HeadDim, p.Past)
	if p.KVHeads == 0 && p.QHeads > 0 || p.KVHeads > 0 && p.QHeads%p.KVHeads != 0 {
		panic(fmt.Sprintf("cpu.Attention: QHeads = %d is not a multiple of KVHeads = %d", p.QHeads, p.KVHeads))
	}
	if math.IsNaN(float64(p.Scale)) || math.IsInf(float64(p.Scale), 0) {
		panic(fmt.Sprintf("cpu.Attention: scale = %v", p.Scale))
	}
	def := func(l *Layout, heads, seq int) {
		if *l == (Layout{}) {
			*l = LayoutBHTD(heads, seq, p.HeadDim)
		}
	}
	def(&p.Q, p.QHeads, p.QLen)
	def(&p.Out, p.QHeads, p.QLen)
	def(&p.K, p.KVHeads, p.KVLen)
	def(&p.V, p.KVHeads, p.KVLen)
	need := func(name string, x []float32, l Layout, heads, seq int) {
		if l.Batch < 0 || l.Head < 0 || l.Seq < p.HeadDim {
			panic(fmt.Sprintf("cpu.Attention: %s layout %+v: strides must be >= 0 and the seq stride >= HeadDim = %d", name, l, p.HeadDim))
		}
		if p.Batch == 0 || heads == 0 || seq == 0 || p.HeadDim == 0 {
			return
		}
		mustAtLeast("Attention", name, x, (p.Batch-1)*l.Batch+(heads-1)*l.Head+(seq-1)*l.Seq+p.HeadDim)
	}
	need("q", q, p.Q, p.QHeads, p.QLen)
	need("out", out, p.Out, p.QHeads, p.QLen)
	need("k", k, p.K, p.KVHeads, p.KVLen)
	need("v", v, p.V, p.KVHeads, p.KVLen)
	if p.Mask != nil {
		row := p.QLen * p.KVLen
		if n := len(p.Mask); n != row && n != p.Batch*row && n != p.Batch*p.QHeads*row {
			panic(fmt.Sprintf("cpu.Attention: len(Mask) = %d, want QLen*KVLen = %d, times Batch, or times Batch*QHeads", n, row))
		}
	}
	if p.KeyMask != nil {
		mustLen("Attention", "KeyMask", p.KeyMask, p.Batch*p.KVLen)
	}
}
