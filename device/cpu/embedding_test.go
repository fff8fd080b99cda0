package cpu

import (
	"errors"
	"fmt"
	"testing"
)

func TestEmbedding(t *testing.T) {
	rng := newRand(80)
	const vocab, dim = 1000, 48
	table := randNormal(rng, vocab*dim, 1)
	for _, ids := range [][]int32{{}, {0}, {999, 0, 5, 5, 17}, make([]int32, 3000)} {
		for i := range ids {
			if len(ids) > 100 {
				ids[i] = int32(rng.IntN(vocab))
			}
		}
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("n=%d/threads=%d", len(ids), threads), func(t *testing.T) {
				dst := make([]float32, len(ids)*dim)
				if err := Embedding(threads, dst, table, vocab, dim, ids); err != nil {
					t.Fatal(err)
				}
				want := make([]float64, 0, len(dst))
				for _, id := range ids {
					want = append(want, f64s(table[int(id)*dim:(int(id)+1)*dim])...)
				}
				checkClose(t, "Embedding", dst, want, 0, 0) // a copy: exact
			})
		}
	}
	dst := make([]float32, 2*dim)
	for _, bad := range [][]int32{{1, vocab}, {-1, 2}} {
		err := Embedding(1, dst, table, vocab, dim, bad)
		if !errors.Is(err, ErrTokenID) {
			t.Errorf("ids %v: err = %v, want ErrTokenID", bad, err)
		}
		for _, v := range dst {
			if v != 0 {
				t.Fatalf("ids %v: dst written before the error", bad)
			}
		}
	}
	mustPanic(t, "short table", func() { _ = Embedding(1, dst, table[:10], vocab, dim, []int32{1, 2}) })
	mustPanic(t, "short dst", func() { _ = Embedding(1, dst[:3], table, vocab, dim, []int32{1, 2}) })
}

func BenchmarkEmbedding(b *testing.B) {
	const vocab, dim, n = 32000, 3584, 512
	rng := newRand(1)
	table := make([]float32, vocab*dim)
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	dst := make([]float32, n*dim)
	b.Run("cpu/f32/512x3584", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Embedding(0, dst, table, vocab, dim, ids); err != nil {
				b.Fatal(err)
			}
		}
		reportGBs(b, 8*n*dim)
	})
}
