package cpu

import (
	"fmt"
	"testing"
)

// Benchmarks for the kernels the per-file benchmarks leave out, named
// BenchmarkX/cpu/f32/<size>, with seeded inputs, allocations and a
// throughput metric: GFLOP/s for the matrix kernels, GB/s (bytes read plus
// written) for the memory-bound ones.

func BenchmarkSgemmBatched(b *testing.B) {
	// Attention-shaped batches: scores Q·Kᵀ per head, and a batch of
	// square products.
	for _, sh := range []struct {
		name           string
		batch, m, n, k int
		transA, transB bool
		shareB         bool
	}{
		{"scores/28x128x512x128", 28, 128, 512, 128, false, true, false},
		{"square/16x128", 16, 128, 128, 128, false, false, false},
		{"sharedB/8x64x256x256", 8, 64, 256, 256, false, false, true},
		{"transA/8x64x64x256", 8, 64, 64, 256, true, false, false},
	} {
		b.Run("cpu/f32/"+sh.name, func(b *testing.B) {
			rng := newRand(1)
			ar, ac := sh.m, sh.k
			if sh.transA {
				ar, ac = ac, ar
			}
			br, bc := sh.k, sh.n
			if sh.transB {
				br, bc = bc, br
			}
			sa, sb := ar*ac, br*bc
			nbB := sh.batch
			if sh.shareB {
				sb, nbB = 0, 1
			}
			a := randSlice(rng, sh.batch*ar*ac, -1, 1)
			bb := randSlice(rng, nbB*br*bc, -1, 1)
			c := make([]float32, sh.batch*sh.m*sh.n)
			run := func() {
				SgemmBatched(0, sh.transA, sh.transB, sh.batch, sh.m, sh.n, sh.k, 1, a, sa, ac, bb, sb, bc, 0, c, sh.m*sh.n, sh.n)
			}
			run() // warm the buffer pool
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				run()
			}
			reportGFLOPs(b, 2*float64(sh.batch)*float64(sh.m)*float64(sh.n)*float64(sh.k))
		})
	}
}

// rowShapes are [rows, cols] inputs for the row kernels: attention scores,
// and logits rows of a 152k vocabulary.
var rowShapes = []struct{ rows, cols int }{{512, 512}, {8, 151936}}

func BenchmarkSoftmaxPlain(b *testing.B) {
	for _, sh := range rowShapes {
		b.Run(fmt.Sprintf("cpu/f32/%dx%d", sh.rows, sh.cols), func(b *testing.B) {
			x := randNormal(newRand(1), sh.rows*sh.cols, 3)
			dst := make([]float32, len(x))
			b.ReportAllocs()
			for b.Loop() {
				Softmax(0, dst, x, sh.rows, sh.cols)
			}
			reportGBs(b, float64(8*len(x)))
		})
	}
}

func BenchmarkLogSoftmax(b *testing.B) {
	for _, sh := range rowShapes {
		b.Run(fmt.Sprintf("cpu/f32/%dx%d", sh.rows, sh.cols), func(b *testing.B) {
			x := randNormal(newRand(1), sh.rows*sh.cols, 3)
			dst := make([]float32, len(x))
			b.ReportAllocs()
			for b.Loop() {
				LogSoftmax(0, dst, x, sh.rows, sh.cols)
			}
			reportGBs(b, float64(8*len(x)))
		})
	}
}

func BenchmarkSoftmaxCausal(b *testing.B) {
	for _, sh := range []struct{ batch, tq, tk, past int }{{28, 512, 512, 0}, {28, 1, 1024, 1023}, {28, 64, 576, 512}} {
		b.Run(fmt.Sprintf("cpu/f32/b%d-q%d-k%d-past%d", sh.batch, sh.tq, sh.tk, sh.past), func(b *testing.B) {
			x := randNormal(newRand(1), sh.batch*sh.tq*sh.tk, 3)
			dst := make([]float32, len(x))
			b.ReportAllocs()
			for b.Loop() {
				SoftmaxCausal(0, dst, x, sh.batch, sh.tq, sh.tk, sh.past, 0.125)
			}
			reportGBs(b, float64(8*len(x)))
		})
	}
}

func BenchmarkCausalMask(b *testing.B) {
	for _, sh := range []struct{ tq, tk, past int }{{512, 512, 0}, {64, 2048, 1984}} {
		b.Run(fmt.Sprintf("cpu/f32/q%d-k%d-past%d", sh.tq, sh.tk, sh.past), func(b *testing.B) {
			mask := make([]float32, sh.tq*sh.tk)
			b.ReportAllocs()
			for b.Loop() {
				CausalMask(mask, sh.tq, sh.tk, sh.past)
			}
			reportGBs(b, float64(4*len(mask)))
		})
	}
}

func BenchmarkBinary(b *testing.B) {
	for _, op := range []struct {
		name string
		fn   func(int, []float32, []float32, []int, []float32, []int)
	}{{"Sub", Sub}, {"Mul", Mul}, {"Div", Div}} {
		for _, sh := range []struct {
			name  string
			a, bs []int
		}{
			{"same/1M", []int{1 << 20}, []int{1 << 20}},
			{"bias/4096x1024", []int{4096, 1024}, []int{1024}},
		} {
			b.Run(op.name+"/cpu/f32/"+sh.name, func(b *testing.B) {
				rng := newRand(1)
				na, nb := shapeSize("", sh.a), shapeSize("", sh.bs)
				x, y, dst := randSlice(rng, na, -1, 1), randSlice(rng, nb, 0.5, 2), make([]float32, na)
				b.ReportAllocs()
				for b.Loop() {
					op.fn(0, dst, x, sh.a, y, sh.bs)
				}
				reportGBs(b, float64(4*(2*na+nb)))
			})
		}
	}
}

func BenchmarkAddRows(b *testing.B) {
	for _, sh := range []struct{ rows, cols int }{{4096, 1024}, {8, 151936}} {
		b.Run(fmt.Sprintf("cpu/f32/%dx%d", sh.rows, sh.cols), func(b *testing.B) {
			rng := newRand(1)
			x, bias := randSlice(rng, sh.rows*sh.cols, -1, 1), randSlice(rng, sh.cols, -1, 1)
			dst := make([]float32, len(x))
			b.ReportAllocs()
			for b.Loop() {
				AddRows(0, dst, x, sh.rows, sh.cols, bias)
			}
			reportGBs(b, float64(4*(2*len(x)+sh.cols)))
		})
	}
}

func BenchmarkUnaryCheap(b *testing.B) {
	const n = 1 << 20
	rng := newRand(1)
	x := randSlice(rng, n, 0.01, 10)
	dst := make([]float32, n)
	for _, op := range []struct {
		name string
		fn   func(int, []float32, []float32)
	}{
		{"Neg", Neg},
		{"Rsqrt", Rsqrt},
		{"Scale", func(th int, d, s []float32) { Scale(th, d, s, 0.37) }},
		{"AddScalar", func(th int, d, s []float32) { AddScalar(th, d, s, -1.5) }},
	} {
		b.Run(op.name+"/cpu/f32/1M", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				op.fn(0, dst, x)
			}
			reportGBs(b, 8*n)
		})
	}
}

func BenchmarkReduce(b *testing.B) {
	for _, op := range []struct {
		name string
		fn   func(threads int, x []float32, rows, cols int)
	}{
		{"Mean", func(th int, x []float32, r, c int) { Mean(th, make32(r), x, r, c) }},
		{"Max", func(th int, x []float32, r, c int) { Max(th, make32(r), x, r, c) }},
		{"ArgMax", func(th int, x []float32, r, c int) { ArgMax(th, make([]int32, r), x, r, c) }},
	} {
		for _, sh := range []struct{ rows, cols int }{{1024, 4096}, {8, 151936}} {
			b.Run(fmt.Sprintf("%s/cpu/f32/%dx%d", op.name, sh.rows, sh.cols), func(b *testing.B) {
				x := randNormal(newRand(1), sh.rows*sh.cols, 1)
				b.ReportAllocs()
				for b.Loop() {
					op.fn(0, x, sh.rows, sh.cols)
				}
				reportGBs(b, float64(4*len(x)))
			})
		}
	}
}

var scratch32 []float32

// make32 returns a reused scratch slice of n floats (so a reduction's
// benchmark allocates nothing per op).
func make32(n int) []float32 {
	if cap(scratch32) < n {
		scratch32 = make([]float32, n)
	}
	return scratch32[:n]
}

func BenchmarkRopeAt(b *testing.B) {
	for _, sh := range []struct{ batch, seq, heads, d int }{{8, 1, 28, 128}, {1, 512, 28, 128}} {
		b.Run(fmt.Sprintf("cpu/f32/b%d-seq%d-h%d-d%d", sh.batch, sh.seq, sh.heads, sh.d), func(b *testing.B) {
			tab := NewRopeTable(4096, sh.d, 1e6)
			x := randNormal(newRand(1), sh.batch*sh.seq*sh.heads*sh.d, 1)
			pos := make([]int32, sh.batch*sh.seq)
			for i := range pos {
				pos[i] = int32((i*37 + 11) % 4096)
			}
			if sh.batch == 1 {
				pos = pos[:sh.seq]
			}
			b.ReportAllocs()
			for b.Loop() {
				RopeAt(0, x, sh.batch, sh.seq, sh.heads, sh.d, pos, tab, RopeHalf)
			}
			reportGBs(b, float64(8*len(x)))
		})
	}
}

func BenchmarkSwiGLUFused(b *testing.B) {
	for _, sh := range []struct{ rows, hidden int }{{1, 18944}, {512, 4864}} {
		b.Run(fmt.Sprintf("cpu/f32/%dx%d", sh.rows, sh.hidden), func(b *testing.B) {
			gu := randNormal(newRand(1), sh.rows*2*sh.hidden, 2)
			dst := make([]float32, sh.rows*sh.hidden)
			b.ReportAllocs()
			for b.Loop() {
				SwiGLUFused(0, dst, gu, sh.rows, sh.hidden)
			}
			reportGBs(b, float64(4*(len(gu)+len(dst))))
		})
	}
}

func BenchmarkKVCacheAppend(b *testing.B) {
	for _, sh := range []struct{ batch, heads, t, d int }{{1, 4, 1, 128}, {8, 4, 1, 128}, {1, 4, 512, 128}} {
		b.Run(fmt.Sprintf("cpu/f32/b%d-h%d-t%d-d%d", sh.batch, sh.heads, sh.t, sh.d), func(b *testing.B) {
			const steps = 64
			c := NewKVCache(sh.batch, sh.heads, steps*sh.t, sh.d)
			rng := newRand(1)
			k := randNormal(rng, sh.batch*sh.t*sh.heads*sh.d, 1)
			v := randNormal(rng, len(k), 1)
			b.ReportAllocs()
			for b.Loop() {
				if c.Len() == c.MaxLen {
					c.Reset()
				}
				if err := c.AppendSeqMajor(k, v); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, float64(4*4*len(k))) // k and v read, and written
		})
	}
}

func BenchmarkGreedy(b *testing.B) {
	for _, v := range []int{32000, 151936} {
		b.Run(fmt.Sprintf("cpu/f32/%s", sizeName(v)), func(b *testing.B) {
			l := randNormal(newRand(1), v, 3)
			b.ReportAllocs()
			for b.Loop() {
				Greedy(l)
			}
			reportGBs(b, float64(4*v))
		})
	}
}

func BenchmarkApplyRepetitionPenalty(b *testing.B) {
	for _, sh := range []struct{ vocab, hist int }{{151936, 256}, {151936, 4096}} {
		b.Run(fmt.Sprintf("cpu/f32/%s-hist%d", sizeName(sh.vocab), sh.hist), func(b *testing.B) {
			rng := newRand(1)
			l := randNormal(rng, sh.vocab, 3)
			prev := make([]int32, sh.hist)
			for i := range prev {
				prev[i] = int32(rng.IntN(sh.vocab))
			}
			b.ReportAllocs()
			penalty := float32(1.05)
			for b.Loop() {
				// Alternating penalty and its inverse keeps the logits
				// near where they started (no drift into denormals).
				ApplyRepetitionPenalty(l, prev, penalty)
				penalty = 1 / penalty
			}
			// Each history id is read and its logit read and written.
			reportGBs(b, float64(4*sh.hist+8*sh.hist))
		})
	}
}
