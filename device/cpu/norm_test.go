package cpu

import (
	"fmt"
	"math"
	"testing"
)

// refMeanRstd returns the float64 mean and 1/sqrt(var+eps) of s (biased
// variance).
func refMeanRstd(s []float32, eps float64) (mean, rstd float64) {
	for _, v := range s {
		mean += float64(v)
	}
	mean /= float64(len(s))
	var q float64
	for _, v := range s {
		q += (float64(v) - mean) * (float64(v) - mean)
	}
	return mean, 1 / math.Sqrt(q/float64(len(s))+eps)
}

// normTol is the tolerance for y = (x - mean)*rstd*w + b formed in float32
// from float64 statistics: each of the six float32 roundings (mean, rstd,
// x - mean, *rstd, *w, +b) costs at most u32 of the quantity rounded, and
// the largest such quantity is bounded by the sum below.
func normTol(x, mean, rstd, w, b float64) float64 {
	return 6 * u32 * ((math.Abs(x-mean)+math.Abs(mean))*rstd*math.Abs(w) + math.Abs(b))
}

func TestLayerNorm(t *testing.T) {
	rng := newRand(30)
	for _, tc := range []struct {
		rows, cols   int
		offset       float32
		weight, bias bool
	}{
		{1, 1, 0, true, true}, {3, 7, 0, false, false}, {16, 896, 0, true, true}, {4, 4096, 0, true, false},
		{5, 1536, 0, false, true}, {8, 1024, 1000, true, true}, // mean far from 0: naive E[x²]-E[x]² would cancel
		{300, 64, 0, true, true},
	} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%dx%d/offset=%g/w=%v/b=%v/threads=%d", tc.rows, tc.cols, tc.offset, tc.weight, tc.bias, threads), func(t *testing.T) {
				const eps = 1e-5
				x := randNormal(rng, tc.rows*tc.cols, 2)
				for i := range x {
					x[i] += tc.offset
				}
				var w, b []float32
				if tc.weight {
					w = randSlice(rng, tc.cols, 0.5, 1.5)
				}
				if tc.bias {
					b = randSlice(rng, tc.cols, -1, 1)
				}
				want, tol := make([]float64, len(x)), make([]float64, len(x))
				for r := range tc.rows {
					row := x[r*tc.cols : (r+1)*tc.cols]
					m, rs := refMeanRstd(row, eps)
					for i, v := range row {
						wi, bi := 1.0, 0.0
						if w != nil {
							wi = float64(w[i])
						}
						if b != nil {
							bi = float64(b[i])
						}
						want[r*tc.cols+i] = (float64(v)-m)*rs*wi + bi
						tol[r*tc.cols+i] = normTol(float64(v), m, rs, wi, bi)
					}
				}
				dst := make([]float32, len(x))
				LayerNorm(threads, dst, x, tc.rows, tc.cols, w, b, eps)
				checkTol(t, "LayerNorm", dst, want, tol)
				LayerNorm(threads, x, x, tc.rows, tc.cols, w, b, eps) // in place
				checkTol(t, "LayerNorm in place", x, want, tol)
			})
		}
	}
}

func TestRMSNorm(t *testing.T) {
	rng := newRand(31)
	for _, tc := range []struct {
		rows, cols int
		weight     bool
	}{{1, 1, true}, {3, 5, false}, {7, 128, true}, {32, 3584, true}, {2, 5120, false}} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%dx%d/w=%v/threads=%d", tc.rows, tc.cols, tc.weight, threads), func(t *testing.T) {
				const eps = 1e-6
				x := randNormal(rng, tc.rows*tc.cols, 3)
				var w []float32
				if tc.weight {
					w = randSlice(rng, tc.cols, -2, 2)
				}
				want, tol := make([]float64, len(x)), make([]float64, len(x))
				for r := range tc.rows {
					row := x[r*tc.cols : (r+1)*tc.cols]
					ms := 0.0
					for _, v := range row {
						ms += float64(v) * float64(v)
					}
					rs := 1 / math.Sqrt(ms/float64(tc.cols)+eps)
					for i, v := range row {
						wi := 1.0
						if w != nil {
							wi = float64(w[i])
						}
						y := float64(v) * rs * wi
						want[r*tc.cols+i] = y
						// three float32 roundings (rstd, *rstd, *w): 3 u32 relative, plus margin
						tol[r*tc.cols+i] = 4 * u32 * math.Abs(y)
					}
				}
				dst := make([]float32, len(x))
				RMSNorm(threads, dst, x, tc.rows, tc.cols, w, eps)
				checkTol(t, "RMSNorm", dst, want, tol)
			})
		}
	}
}

// TestRMSNormChannels checks the channel-first RMS norm against its
// definition in float64, y = x / sqrt(mean_c(x²) + eps) * w_c, at every
// image and position. Shapes cover one channel, one position (the rows
// path), a block boundary that does not divide the positions, Wan's
// channel counts and a position whose channels are all zero (with Wan's
// eps of 1e-24/C it must give 0, not NaN). Tolerance: three float32
// roundings (rstd, ·rstd, ·w) of quantities bounded by |y|, 3 u32
// relative, plus a margin: 4 u32·|y|; the sums are in float64.
func TestRMSNormChannels(t *testing.T) {
	rng := newRand(33)
	for _, tc := range []struct {
		n, c, spatial int
		weight        bool
		eps           float32
	}{
		{1, 1, 7, true, 1e-6}, {2, 5, 1, true, 1e-6}, {1, 3, 1, false, 0.5}, {2, 4, 3 * 7 * 11, true, 1e-6},
		{1, 96, 1000, true, 1e-24 / 96}, {2, 384, 12 * 13, false, 1e-24 / 384}, {1, 1024, 37, true, 1e-5},
		{3, 16, 513, true, 1e-6},
	} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%dx%dx%d/w=%v/threads=%d", tc.n, tc.c, tc.spatial, tc.weight, threads), func(t *testing.T) {
				x := randNormal(rng, tc.n*tc.c*tc.spatial, 3)
				if tc.spatial > 1 {
					for ch := range tc.c { // position 1 of image 0 is all zeros
						x[ch*tc.spatial+1] = 0
					}
				}
				var w []float32
				if tc.weight {
					w = randSlice(rng, tc.c, -2, 2)
				}
				want, tol := make([]float64, len(x)), make([]float64, len(x))
				for img := range tc.n {
					for p := range tc.spatial {
						at := func(ch int) int { return (img*tc.c+ch)*tc.spatial + p }
						ms := 0.0
						for ch := range tc.c {
							ms += float64(x[at(ch)]) * float64(x[at(ch)])
						}
						rs := 1 / math.Sqrt(ms/float64(tc.c)+float64(tc.eps))
						for ch := range tc.c {
							wi := 1.0
							if w != nil {
								wi = float64(w[ch])
							}
							y := float64(x[at(ch)]) * rs * wi
							want[at(ch)], tol[at(ch)] = y, 4*u32*math.Abs(y)
						}
					}
				}
				dst := make([]float32, len(x))
				RMSNormChannels(threads, dst, x, tc.n, tc.c, tc.spatial, w, tc.eps)
				checkTol(t, "RMSNormChannels", dst, want, tol)
				if tc.spatial > 1 {
					for ch := range tc.c {
						if v := dst[ch*tc.spatial+1]; v != 0 {
							t.Fatalf("zero position, channel %d: %v, want 0", ch, v)
						}
					}
				}
				RMSNormChannels(threads, x, x, tc.n, tc.c, tc.spatial, w, tc.eps) // in place
				checkTol(t, "RMSNormChannels in place", x, want, tol)
			})
		}
	}
}

func TestGroupNorm(t *testing.T) {
	rng := newRand(32)
	for _, tc := range []struct {
		n, c, spatial, groups int
		affine                bool
	}{
		{1, 4, 1, 1, false}, {2, 6, 10, 3, true}, {2, 64, 16 * 16, 32, true}, // SD-VAE style: 32 groups
		{1, 128, 4 * 8 * 8, 32, true}, // video latent [T,H,W] flattened
		{3, 8, 7, 8, true},            // groups == channels (instance norm)
		{1, 12, 50, 1, true},          // one group (layer norm over C,H,W)
	} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%+v/threads=%d", tc, threads), func(t *testing.T) {
				const eps = 1e-6
				x := randNormal(rng, tc.n*tc.c*tc.spatial, 2)
				for i := range x {
					x[i] += 3
				}
				var w, b []float32
				if tc.affine {
					w, b = randSlice(rng, tc.c, 0.5, 2), randSlice(rng, tc.c, -1, 1)
				}
				cg := tc.c / tc.groups
				size := cg * tc.spatial
				want, tol := make([]float64, len(x)), make([]float64, len(x))
				for g := range tc.n * tc.groups {
					blk := x[g*size : (g+1)*size]
					m, rs := refMeanRstd(blk, eps)
					for i, v := range blk {
						ch := g%tc.groups*cg + i/tc.spatial
						wi, bi := 1.0, 0.0
						if tc.affine {
							wi, bi = float64(w[ch]), float64(b[ch])
						}
						want[g*size+i] = (float64(v)-m)*rs*wi + bi
						tol[g*size+i] = normTol(float64(v), m, rs, wi, bi)
					}
				}
				dst := make([]float32, len(x))
				GroupNorm(threads, dst, x, tc.n, tc.c, tc.spatial, tc.groups, w, b, eps)
				checkTol(t, "GroupNorm", dst, want, tol)
			})
		}
	}
}

func TestNormPanics(t *testing.T) {
	x := make([]float32, 12)
	mustPanic(t, "LayerNorm weight", func() { LayerNorm(1, x, x, 3, 4, make([]float32, 3), nil, 1e-5) })
	mustPanic(t, "RMSNorm len", func() { RMSNorm(1, x, x, 5, 4, nil, 1e-5) })
	mustPanic(t, "GroupNorm groups", func() { GroupNorm(1, x, x, 1, 6, 2, 4, nil, nil, 1e-5) })
	mustPanic(t, "RMSNormChannels weight", func() { RMSNormChannels(1, x, x, 1, 3, 4, make([]float32, 4), 1e-5) })
	mustPanic(t, "RMSNormChannels len", func() { RMSNormChannels(1, x, x, 2, 3, 4, nil, 1e-5) })
}

func BenchmarkLayerNorm(b *testing.B) {
	for _, sh := range []struct{ rows, cols int }{{512, 1024}, {4096, 1536}} {
		b.Run(fmt.Sprintf("cpu/f32/%dx%d", sh.rows, sh.cols), func(b *testing.B) {
			rng := newRand(1)
			x, w, bias := randNormal(rng, sh.rows*sh.cols, 1), randNormal(rng, sh.cols, 1), randNormal(rng, sh.cols, 1)
			dst := make([]float32, len(x))
			b.ReportAllocs()
			for b.Loop() {
				LayerNorm(0, dst, x, sh.rows, sh.cols, w, bias, 1e-5)
			}
			reportGBs(b, float64(8*len(x)))
		})
	}
}

func BenchmarkRMSNorm(b *testing.B) {
	for _, sh := range []struct{ rows, cols int }{{1, 3584}, {512, 3584}} {
		b.Run(fmt.Sprintf("cpu/f32/%dx%d", sh.rows, sh.cols), func(b *testing.B) {
			rng := newRand(1)
			x, w := randNormal(rng, sh.rows*sh.cols, 1), randNormal(rng, sh.cols, 1)
			dst := make([]float32, len(x))
			b.ReportAllocs()
			for b.Loop() {
				RMSNorm(0, dst, x, sh.rows, sh.cols, w, 1e-6)
			}
			reportGBs(b, float64(8*len(x)))
		})
	}
}

// BenchmarkRMSNormChannels runs the channel-first RMS norm at Wan 2.1
// VAE decoder shapes [N, C, T, H, W] (the 384-channel middle at a 480×832
// video's latent size, one frame; the last 96-channel stage on 4 frames of
// a 128×128 tile) and one 2-D Z-Image-like [1, 512, 64, 64]. GB/s counts x
// read once and the result written once.
func BenchmarkRMSNormChannels(b *testing.B) {
	for _, sh := range [][]int{{1, 384, 1, 60, 104}, {1, 96, 4, 128, 128}, {1, 512, 64, 64}} {
		name := fmt.Sprint(sh[0])
		for _, d := range sh[1:] {
			name += fmt.Sprintf("x%d", d)
		}
		b.Run("cpu/f32/"+name, func(b *testing.B) {
			n, c, spatial := sh[0], sh[1], 1
			for _, d := range sh[2:] {
				spatial *= d
			}
			rng := newRand(1)
			x, w := randNormal(rng, n*c*spatial, 1), randSlice(rng, c, 0.5, 1.5)
			dst := make([]float32, len(x))
			b.ReportAllocs()
			for b.Loop() {
				RMSNormChannels(0, dst, x, n, c, spatial, w, 1e-24/float32(c))
			}
			reportGBs(b, float64(8*len(x)))
		})
	}
}

func BenchmarkGroupNorm(b *testing.B) {
	const n, c, spatial, groups = 1, 256, 64 * 64, 32
	b.Run("cpu/f32/1x256x64x64/g32", func(b *testing.B) {
		rng := newRand(1)
		x, w, bias := randNormal(rng, n*c*spatial, 1), randNormal(rng, c, 1), randNormal(rng, c, 1)
		dst := make([]float32, len(x))
		b.ReportAllocs()
		for b.Loop() {
			GroupNorm(0, dst, x, n, c, spatial, groups, w, bias, 1e-6)
		}
		reportGBs(b, float64(8*len(x)))
	})
}
