package cpu

import (
	"fmt"
	"math"
	"testing"
)

// refRope rotates one head in float64 with the angle computed directly
// (not from a table): the definition in Su et al. 2021, eq. 34, with the
// pairing of mode.
func refRope(head []float32, dim int, p int, theta float64, mode RopeMode) []float64 {
	out := f64s(head)
	h := dim / 2
	for i := range h {
		ang := float64(p) * math.Pow(theta, -float64(2*i)/float64(dim))
		s, c := math.Sincos(ang)
		j, k := i, i+h
		if mode == RopeInterleaved {
			j, k = 2*i, 2*i+1
		}
		a, b := float64(head[j]), float64(head[k])
		out[j], out[k] = a*c-b*s, b*c+a*s
	}
	return out
}

func TestRope(t *testing.T) {
	rng := newRand(50)
	for _, tc := range []struct {
		name                            string
		batch, seq, heads, headDim, dim int
		pos0                            int
		theta                           float64
	}{
		{"qwen2-prefill", 2, 7, 4, 128, 128, 0, 1e6},
		{"llama-decode", 3, 1, 8, 64, 64, 1000, 1e4},
		{"partial-rotary", 1, 5, 2, 80, 32, 17, 1e4}, // dim < headDim: the tail is untouched
		{"seq-major-single-head", 1, 33, 1, 16, 16, 3, 1e4},
	} {
		for _, mode := range []RopeMode{RopeHalf, RopeInterleaved} {
			t.Run(fmt.Sprintf("%s/%v", tc.name, mode), func(t *testing.T) {
				tab := NewRopeTable(tc.pos0+tc.seq, tc.dim, tc.theta)
				x := randNormal(rng, tc.batch*tc.seq*tc.heads*tc.headDim, 1)
				var want, tol []float64
				for b := range tc.batch {
					for s := range tc.seq {
						for hd := range tc.heads {
							off := ((b*tc.seq+s)*tc.heads + hd) * tc.headDim
							head := x[off : off+tc.headDim]
							w := refRope(head, tc.dim, tc.pos0+s, tc.theta, mode)
							want = append(want, w...)
							for range w {
								// cos and sin rounded to float32 (u32 each), two products and a
								// sum (3 u32), all bounded by |a|+|b| of the pair; the angle
								// itself is exact to float64 precision. 6 u32 with margin.
								mag := 0.0
								for _, v := range head {
									mag = max(mag, math.Abs(float64(v)))
								}
								tol = append(tol, 6*u32*2*mag)
							}
						}
					}
				}
				Rope(2, x, tc.batch, tc.seq, tc.heads, tc.headDim, tc.pos0, tab, mode)
				checkTol(t, "Rope", x, want, tol)
			})
		}
	}
}

func TestRopeAt(t *testing.T) {
	rng := newRand(51)
	const batch, seq, heads, d = 2, 3, 2, 8
	tab := NewRopeTable(64, d, 1e4)
	x := randNormal(rng, batch*seq*heads*d, 1)
	// Shared positions equal Rope with an offset.
	a, b := append([]float32(nil), x...), append([]float32(nil), x...)
	Rope(1, a, batch, seq, heads, d, 10, tab, RopeHalf)
	RopeAt(1, b, batch, seq, heads, d, []int32{10, 11, 12}, tab, RopeHalf)
	checkClose(t, "RopeAt shared", b, f64s(a), 0, 0) // same table entries, same arithmetic: identical
	// Per-sequence positions: sequence 1 continues at 40.
	c := append([]float32(nil), x...)
	RopeAt(1, c, batch, seq, heads, d, []int32{10, 11, 12, 40, 41, 42}, tab, RopeHalf)
	d2 := append([]float32(nil), x[seq*heads*d:]...)
	Rope(1, d2, 1, seq, heads, d, 40, tab, RopeHalf)
	checkClose(t, "RopeAt per batch", c[seq*heads*d:], f64s(d2), 0, 0)
	mustPanic(t, "position beyond table", func() { RopeAt(1, c, batch, seq, heads, d, []int32{10, 11, 64}, tab, RopeHalf) })
	mustPanic(t, "Rope beyond table", func() { Rope(1, c, batch, seq, heads, d, 62, tab, RopeHalf) })
	mustPanic(t, "dim > headDim", func() { Rope(1, c, batch, seq, heads*2, d/2, 0, tab, RopeHalf) })
}

// TestRopeRelative checks the property RoPE is built for (Su et al. 2021,
// sec. 3.2): the score <R(m)q, R(n)k> depends on m - n only.
func TestRopeRelative(t *testing.T) {
	rng := newRand(52)
	const d = 64
	tab := NewRopeTable(4096, d, 1e6)
	q, k := randNormal(rng, d, 1), randNormal(rng, d, 1)
	score := func(m, n int) float64 {
		qq, kk := append([]float32(nil), q...), append([]float32(nil), k...)
		Rope(1, qq, 1, 1, 1, d, m, tab, RopeHalf)
		Rope(1, kk, 1, 1, 1, d, n, tab, RopeHalf)
		s := 0.0
		for i := range qq {
			s += float64(qq[i]) * float64(kk[i])
		}
		return s
	}
	for _, off := range []int{0, 1, 100, 3000} {
		base := score(5+off, 5)
		for _, m := range []int{17, 500, 1000} {
			// Each rotated vector carries ~6 u32 relative error per entry (see TestRope);
			// the dot product of 64 such terms of size ~1: 64*12 u32, with margin.
			if s := score(m+off, m); math.Abs(s-base) > 1000*u32*float64(d) {
				t.Errorf("score(%d, %d) = %g, score(%d, 5) = %g: not translation invariant", m+off, m, s, 5+off, base)
			}
		}
	}
}

func BenchmarkRope(b *testing.B) {
	for _, sh := range []struct{ seq, heads, d int }{{1, 28, 128}, {512, 28, 128}} {
		b.Run(fmt.Sprintf("cpu/f32/seq%d-h%d-d%d", sh.seq, sh.heads, sh.d), func(b *testing.B) {
			tab := NewRopeTable(4096, sh.d, 1e6)
			x := randNormal(newRand(1), sh.seq*sh.heads*sh.d, 1)
			b.ReportAllocs()
			for b.Loop() {
				Rope(0, x, 1, sh.seq, sh.heads, sh.d, 7, tab, RopeHalf)
			}
			reportGBs(b, float64(8*len(x)))
		})
	}
}
