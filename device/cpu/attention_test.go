package cpu

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// refAttention is attention by the definition in float64, one query row at
// a time, over arbitrary layouts. It also returns a per-element tolerance
// for a float32 kernel (see attnTol).
func refAttention(p AttentionParams, q, k, v []float32) (want, tol []float64) {
	fill := func(l Layout, heads, seq int) Layout {
		if l == (Layout{}) {
			return LayoutBHTD(heads, seq, p.HeadDim)
		}
		return l
	}
	lq, lk, lv, lo := fill(p.Q, p.QHeads, p.QLen), fill(p.K, p.KVHeads, p.KVLen), fill(p.V, p.KVHeads, p.KVLen), fill(p.Out, p.QHeads, p.QLen)
	size := (p.Batch-1)*lo.Batch + (p.QHeads-1)*lo.Head + (p.QLen-1)*lo.Seq + p.HeadDim
	want, tol = make([]float64, size), make([]float64, size)
	scale := float64(p.Scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(p.HeadDim))
	}
	group := p.QHeads / p.KVHeads
	d := p.HeadDim
	for b := range p.Batch {
		for h := range p.QHeads {
			g := h / group
			for i := range p.QLen {
				qi := q[b*lq.Batch+h*lq.Head+i*lq.Seq:][:d]
				s := make([]float64, p.KVLen)
				visible := make([]bool, p.KVLen)
				mx, es := math.Inf(-1), 0.0
				for j := range p.KVLen {
					kj := k[b*lk.Batch+g*lk.Head+j*lk.Seq:][:d]
					dot, abs := 0.0, 0.0
					for c := range d {
						dot += float64(qi[c]) * float64(kj[c])
						abs += math.Abs(float64(qi[c]) * float64(kj[c]))
					}
					s[j] = scale * dot
					es = max(es, scale*abs)
					if p.Mask != nil {
						s[j] += float64(p.Mask[p.maskOffset(b, h, i)+j])
					}
					visible[j] = !(p.Causal && j > p.Past+i) && (p.KeyMask == nil || p.KeyMask[b*p.KVLen+j]) && !math.IsInf(s[j], -1)
					if visible[j] {
						mx = math.Max(mx, s[j])
					}
				}
				out := make([]float64, d)
				maxV := 0.0
				if !math.IsInf(mx, -1) {
					sum := 0.0
					for j := range p.KVLen {
						if !visible[j] {
							continue
						}
						w := math.Exp(s[j] - mx)
						sum += w
						vj := v[b*lv.Batch+g*lv.Head+j*lv.Seq:][:d]
						for c := range d {
							out[c] += w * float64(vj[c])
							maxV = math.Max(maxV, math.Abs(float64(vj[c])))
						}
					}
					for c := range out {
						out[c] /= sum
					}
				}
				o := b*lo.Batch + h*lo.Head + i*lo.Seq
				copy(want[o:o+d], out)
				for c := range d {
					tol[o+c] = attnTol(es, p.KVLen, d, maxV)
				}
			}
		}
	}
	return want, tol
}

// attnTol bounds the float32 error of one output: the scores are dot
// products of length d, each off by at most γ_d·Σ|q_i k_i| ≈ d·u32·es
// (Higham 2002, eq. 3.5); softmax turns an absolute score error δ into a
// relative weight error of at most 2δ (Blanchard, Higham & Mary 2021), which
// the output inherits times max|v|; the weighted sum of up to n values of v
// adds n·u32·max|v| (again γ_n), and exp, the rescaling and the final divide
// a few ulp more (16 u32).
func attnTol(es float64, n, d int, maxV float64) float64 {
	return maxV*(2*float64(d)*u32*es+float64(n+16)*u32) + 1e-30
}

// toLayout copies a dense [B, H, T, D] tensor into layout l.
func toLayout(x []float32, b, h, t, d int, l Layout) []float32 {
	size := (b-1)*l.Batch + (h-1)*l.Head + (t-1)*l.Seq + d
	y := make([]float32, size)
	for i := range b {
		for j := range h {
			for s := range t {
				copy(y[i*l.Batch+j*l.Head+s*l.Seq:][:d], x[((i*h+j)*t+s)*d:][:d])
			}
		}
	}
	return y
}

func TestAttention(t *testing.T) {
	rng := newRand(60)
	type tc struct {
		name string
		p    AttentionParams
		mask string // "", "shared", "batch", "head"
		keys bool   // random key padding (with one batch entry fully padded)
		bthd bool   // all four operands in [B, T, H, D]
	}
	cases := []tc{
		{name: "mha", p: AttentionParams{Batch: 2, QHeads: 3, KVHeads: 3, QLen: 5, KVLen: 7, HeadDim: 16}},
		{name: "causal-prefill-gqa", p: AttentionParams{Batch: 1, QHeads: 8, KVHeads: 2, QLen: 300, KVLen: 300, HeadDim: 64, Causal: true}},
		{name: "decode-gqa7", p: AttentionParams{Batch: 2, QHeads: 7, KVHeads: 1, QLen: 1, KVLen: 1000, HeadDim: 128, Causal: true, Past: 999}},
		{name: "chunked-prefill", p: AttentionParams{Batch: 1, QHeads: 4, KVHeads: 2, QLen: 40, KVLen: 140, HeadDim: 32, Causal: true, Past: 100}},
		{name: "causal-past-lt-kv", p: AttentionParams{Batch: 1, QHeads: 2, KVHeads: 2, QLen: 6, KVLen: 20, HeadDim: 8, Causal: true, Past: 3}},
		{name: "scale", p: AttentionParams{Batch: 1, QHeads: 2, KVHeads: 1, QLen: 9, KVLen: 9, HeadDim: 24, Scale: 0.5}},
		{name: "mask-shared", p: AttentionParams{Batch: 2, QHeads: 2, KVHeads: 2, QLen: 6, KVLen: 11, HeadDim: 8}, mask: "shared"},
		{name: "mask-batch", p: AttentionParams{Batch: 2, QHeads: 2, KVHeads: 1, QLen: 6, KVLen: 11, HeadDim: 8}, mask: "batch"},
		{name: "mask-head-causal", p: AttentionParams{Batch: 2, QHeads: 4, KVHeads: 2, QLen: 6, KVLen: 11, HeadDim: 8, Causal: true, Past: 5}, mask: "head"},
		{name: "key-padding", p: AttentionParams{Batch: 3, QHeads: 4, KVHeads: 4, QLen: 12, KVLen: 300, HeadDim: 16}, keys: true},
		{name: "bthd", p: AttentionParams{Batch: 2, QHeads: 6, KVHeads: 2, QLen: 33, KVLen: 33, HeadDim: 32, Causal: true}, bthd: true},
		{name: "no-keys", p: AttentionParams{Batch: 1, QHeads: 1, KVHeads: 1, QLen: 2, KVLen: 0, HeadDim: 4}},
	}
	for _, c := range cases {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/threads=%d", c.name, threads), func(t *testing.T) {
				p := c.p
				d := p.HeadDim
				q := randNormal(rng, p.Batch*p.QHeads*p.QLen*d, 1)
				k := randNormal(rng, p.Batch*p.KVHeads*p.KVLen*d, 1)
				v := randNormal(rng, p.Batch*p.KVHeads*p.KVLen*d, 1)
				row := p.QLen * p.KVLen
				switch c.mask {
				case "shared":
					p.Mask = randSlice(rng, row, -3, 0)
				case "batch":
					p.Mask = randSlice(rng, p.Batch*row, -3, 0)
				case "head":
					p.Mask = randSlice(rng, p.Batch*p.QHeads*row, -3, 0)
				}
				if p.Mask != nil {
					p.Mask[1] = float32(math.Inf(-1))
				}
				if c.keys {
					p.KeyMask = make([]bool, p.Batch*p.KVLen)
					for i := range p.KeyMask {
						p.KeyMask[i] = rng.IntN(4) != 0
					}
					for j := range p.KVLen { // batch entry 1 is all padding: its rows come out 0
						p.KeyMask[p.KVLen+j] = false
					}
				}
				if c.bthd {
					p.Q, p.Out = LayoutBTHD(p.QHeads, p.QLen, d), LayoutBTHD(p.QHeads, p.QLen, d)
					p.K, p.V = LayoutBTHD(p.KVHeads, p.KVLen, d), LayoutBTHD(p.KVHeads, p.KVLen, d)
					q = toLayout(q, p.Batch, p.QHeads, p.QLen, d, p.Q)
					k = toLayout(k, p.Batch, p.KVHeads, p.KVLen, d, p.K)
					v = toLayout(v, p.Batch, p.KVHeads, p.KVLen, d, p.V)
				}
				want, tol := refAttention(p, q, k, v)
				out := make([]float32, len(want))
				Attention(threads, out, q, k, v, p)
				checkTol(t, "Attention", out, want, tol)
				// In place over q (same layout).
				q2 := append([]float32(nil), q...)
				Attention(threads, q2, q2, k, v, p)
				checkTol(t, "Attention in place", q2, want, tol)
			})
		}
	}
}

func TestAttentionPanics(t *testing.T) {
	x := make([]float32, 64)
	p := AttentionParams{Batch: 1, QHeads: 3, KVHeads: 2, QLen: 2, KVLen: 2, HeadDim: 4}
	mustPanic(t, "heads", func() { Attention(1, x, x, x, x, p) })
	p.QHeads = 4
	mustPanic(t, "short q", func() { Attention(1, x, x[:10], x, x, p) })
	p.Mask = make([]float32, 5)
	mustPanic(t, "mask", func() { Attention(1, x, x, x, x, p) })
	p.Mask, p.KeyMask = nil, make([]bool, 3)
	mustPanic(t, "key mask", func() { Attention(1, x, x, x, x, p) })
	p.KeyMask, p.K = nil, Layout{Batch: 8, Head: 8, Seq: 2}
	mustPanic(t, "seq stride < head dim", func() { Attention(1, x, x, x, x, p) })
}

// TestKVCacheDecode runs a prompt and then token-by-token decoding through
// a KVCache and checks every step against causal attention over the whole
// sequence at once.
func TestKVCacheDecode(t *testing.T) {
	rng := newRand(61)
	const batch, hq, hkv, d, prompt, steps = 2, 6, 2, 32, 37, 20
	total := prompt + steps
	q := randNormal(rng, batch*hq*total*d, 1)
	k := randNormal(rng, batch*hkv*total*d, 1)
	v := randNormal(rng, batch*hkv*total*d, 1)
	full := AttentionParams{Batch: batch, QHeads: hq, KVHeads: hkv, QLen: total, KVLen: total, HeadDim: d, Causal: true}
	want, tol := refAttention(full, q, k, v)

	// slice copies positions [t0, t1) of a dense [B, H, total, D] tensor.
	slice := func(x []float32, heads, t0, t1 int) []float32 {
		var y []float32
		for b := range batch {
			for h := range heads {
				y = append(y, x[((b*heads+h)*total+t0)*d:((b*heads+h)*total+t1)*d]...)
			}
		}
		return y
	}
	cache := NewKVCache(batch, hkv, total, d)
	for t0 := 0; t0 < total; {
		t1 := t0 + 1
		if t0 == 0 {
			t1 = prompt
		}
		if err := cache.Append(slice(k, hkv, t0, t1), slice(v, hkv, t0, t1)); err != nil {
			t.Fatal(err)
		}
		if cache.Len() != t1 {
			t.Fatalf("Len = %d, want %d", cache.Len(), t1)
		}
		p := cache.AttentionParams(hq, t1-t0)
		out := make([]float32, batch*hq*(t1-t0)*d)
		Attention(2, out, slice(q, hq, t0, t1), cache.K, cache.V, p)
		checkTol(t, fmt.Sprintf("step [%d,%d)", t0, t1), out, []float64(sliceF64(want, batch, hq, total, d, t0, t1)), sliceF64(tol, batch, hq, total, d, t0, t1))
		t0 = t1
	}
	err := cache.Append(slice(k, hkv, 0, 1), slice(v, hkv, 0, 1))
	if !errors.Is(err, ErrKVCacheFull) {
		t.Fatalf("Append past capacity: %v, want ErrKVCacheFull", err)
	}
	if cache.Len() != total {
		t.Fatalf("a failed Append changed Len to %d", cache.Len())
	}
	cache.Truncate(prompt)
	if cache.Len() != prompt {
		t.Fatalf("Truncate: Len = %d", cache.Len())
	}
	cache.Reset()
	if cache.Len() != 0 {
		t.Fatalf("Reset: Len = %d", cache.Len())
	}
	mustPanic(t, "AttentionParams before Append", func() { cache.AttentionParams(hq, 1) })
	mustPanic(t, "Truncate beyond Len", func() { cache.Truncate(1) })
	mustPanic(t, "Append wrong length", func() { _ = cache.Append(make([]float32, 3), make([]float32, 3)) })
	mustPanic(t, "Append k, v differ", func() { _ = cache.Append(make([]float32, batch*hkv*d), make([]float32, 2*batch*hkv*d)) })
}

func sliceF64(x []float64, batch, heads, total, d, t0, t1 int) []float64 {
	var y []float64
	for b := range batch {
		for h := range heads {
			y = append(y, x[((b*heads+h)*total+t0)*d:((b*heads+h)*total+t1)*d]...)
		}
	}
	return y
}

func TestKVCacheAppendSeqMajor(t *testing.T) {
	rng := newRand(62)
	const batch, heads, tt, d = 2, 3, 4, 5
	k, v := randNormal(rng, batch*heads*tt*d, 1), randNormal(rng, batch*heads*tt*d, 1)
	a, b := NewKVCache(batch, heads, 10, d), NewKVCache(batch, heads, 10, d)
	if err := a.Append(k, v); err != nil {
		t.Fatal(err)
	}
	sk := toLayout(k, batch, heads, tt, d, LayoutBTHD(heads, tt, d))
	sv := toLayout(v, batch, heads, tt, d, LayoutBTHD(heads, tt, d))
	if err := b.AppendSeqMajor(sk, sv); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "K", b.K, f64s(a.K), 0, 0)
	checkClose(t, "V", b.V, f64s(a.V), 0, 0)
}

// attnFlops counts 4·D flops (a multiply-add in QKᵀ and in PV) per visible
// (query, key) pair: the work a dense implementation does, not counting the
// masked half of a causal prefill.
func attnFlops(p AttentionParams) float64 {
	pairs := 0
	for i := range p.QLen {
		n := p.KVLen
		if p.Causal {
			n = min(n, p.Past+i+1)
		}
		pairs += n
	}
	return 4 * float64(p.HeadDim) * float64(pairs) * float64(p.Batch*p.QHeads)
}

func BenchmarkAttention(b *testing.B) {
	for _, c := range []struct {
		name string
		p    AttentionParams
	}{
		// Qwen2-7B shapes: 28 query heads, 4 KV heads, head_dim 128.
		{"prefill-causal/b1-h28-kv4-t512-d128", AttentionParams{Batch: 1, QHeads: 28, KVHeads: 4, QLen: 512, KVLen: 512, HeadDim: 128, Causal: true}},
		{"prefill/b1-h16-t512-d64", AttentionParams{Batch: 1, QHeads: 16, KVHeads: 16, QLen: 512, KVLen: 512, HeadDim: 64}},
		{"decode/b1-h28-kv4-tk2048-d128", AttentionParams{Batch: 1, QHeads: 28, KVHeads: 4, QLen: 1, KVLen: 2048, HeadDim: 128, Causal: true, Past: 2047}},
	} {
		for _, threads := range []int{1, 0} {
			b.Run(fmt.Sprintf("cpu/f32/%s/threads=%d", c.name, threads), func(b *testing.B) {
				p := c.p
				rng := newRand(1)
				q := randNormal(rng, p.Batch*p.QHeads*p.QLen*p.HeadDim, 1)
				k := randNormal(rng, p.Batch*p.KVHeads*p.KVLen*p.HeadDim, 1)
				v := randNormal(rng, p.Batch*p.KVHeads*p.KVLen*p.HeadDim, 1)
				out := make([]float32, len(q))
				b.ReportAllocs()
				for b.Loop() {
					Attention(threads, out, q, k, v, p)
				}
				reportGFLOPs(b, attnFlops(p))
				if p.QLen == 1 {
					reportGBs(b, float64(4*(len(k)+len(v))))
				}
			})
		}
	}
}

// TestKVCacheAppendSeqMajorReference checks AppendSeqMajor against the
// index map it stands for: k[b, s, h, :] of step n (a [B, T, H, D] block)
// lands at K[b, h, held+s, :] of the [B, H, MaxLen, D] cache. Exact: a copy.
func TestKVCacheAppendSeqMajorReference(t *testing.T) {
	rng := newRand(63)
	for _, tc := range []struct{ batch, heads, d, maxLen int }{{1, 1, 4, 6}, {2, 3, 5, 10}, {3, 2, 8, 7}} {
		t.Run(fmt.Sprintf("b%d-h%d-d%d", tc.batch, tc.heads, tc.d), func(t *testing.T) {
			c := NewKVCache(tc.batch, tc.heads, tc.maxLen, tc.d)
			wantK, wantV := make([]float64, len(c.K)), make([]float64, len(c.V))
			held := 0
			for _, steps := range []int{2, 1, 3, 1} {
				if held+steps > tc.maxLen {
					break
				}
				k := randNormal(rng, tc.batch*steps*tc.heads*tc.d, 1)
				v := randNormal(rng, len(k), 1)
				if err := c.AppendSeqMajor(k, v); err != nil {
					t.Fatal(err)
				}
				for b := range tc.batch {
					for s := range steps {
						for h := range tc.heads {
							for x := range tc.d {
								src := ((b*steps+s)*tc.heads+h)*tc.d + x
								dst := ((b*tc.heads+h)*tc.maxLen+held+s)*tc.d + x
								wantK[dst], wantV[dst] = float64(k[src]), float64(v[src])
							}
						}
					}
				}
				held += steps
				if c.Len() != held {
					t.Fatalf("Len %d, want %d", c.Len(), held)
				}
				checkClose(t, "K", c.K, wantK, 0, 0)
				checkClose(t, "V", c.V, wantV, 0, 0)
			}
			full := make([]float32, tc.batch*tc.heads*tc.d*(tc.maxLen-held+1))
			if err := c.AppendSeqMajor(full, full); !errors.Is(err, ErrKVCacheFull) {
				t.Errorf("append past capacity: %v", err)
			}
		})
	}
}
