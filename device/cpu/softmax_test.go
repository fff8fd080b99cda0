package cpu

import (
	"fmt"
	"math"
	"testing"
)

// refSoftmax returns softmax(scale*x) over the first n entries of a row in
// float64 (zeros after n), and the per-element tolerance for a float32
// kernel: expf and the final multiply cost a few ulp (4 eps32), and the
// float32 argument scale*x - scale*max carries a rounding error of up to
// u32*(|scale*x| + |scale*max|) per rounding (two roundings), which exp turns
// into the same relative error — the conditioning of softmax itself
// (Blanchard, Higham & Mary 2021, "Accurate computation of the log-sum-exp
// and softmax functions", sec. 3).
func refSoftmax(x []float32, n int, scale float64) (want, tol []float64) {
	want, tol = make([]float64, len(x)), make([]float64, len(x))
	if n == 0 {
		return want, tol
	}
	m := math.Inf(-1)
	for _, v := range x[:n] {
		m = math.Max(m, float64(v))
	}
	if math.IsInf(m, -1) {
		return want, tol
	}
	sum := 0.0
	for i, v := range x[:n] {
		want[i] = math.Exp(scale * (float64(v) - m))
		sum += want[i]
	}
	for i, v := range x[:n] {
		want[i] /= sum
		tol[i] = want[i]*(4*eps32+2*u32*(math.Abs(scale*float64(v))+math.Abs(scale*m))) + 0x1p-149
	}
	return want, tol
}

func TestSoftmax(t *testing.T) {
	rng := newRand(10)
	for _, tc := range []struct {
		rows, cols int
		scale      float32
		sd         float64
	}{
		{1, 1, 1, 1}, {3, 5, 1, 1}, {17, 100, 1, 3}, {64, 512, 0.125, 10}, {2, 151936, 1, 5}, // Qwen2 vocab
		{8, 1000, 1 / 0.7, 2}, // temperature 0.7
	} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%dx%d/scale=%g/threads=%d", tc.rows, tc.cols, tc.scale, threads), func(t *testing.T) {
				x := randNormal(rng, tc.rows*tc.cols, tc.sd)
				want, tol := make([]float64, 0, len(x)), make([]float64, 0, len(x))
				for r := range tc.rows {
					w, e := refSoftmax(x[r*tc.cols:(r+1)*tc.cols], tc.cols, float64(tc.scale))
					want, tol = append(want, w...), append(tol, e...)
				}
				dst := make([]float32, len(x))
				SoftmaxScaled(threads, dst, x, tc.rows, tc.cols, tc.scale)
				checkTol(t, "SoftmaxScaled", dst, want, tol)
				if tc.scale == 1 {
					Softmax(threads, x, x, tc.rows, tc.cols) // in place
					checkTol(t, "Softmax in place", x, want, tol)
				}
			})
		}
	}
}

func TestSoftmaxSpecial(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name string
		x    []float32
		want []float64
	}{
		{"masked", []float32{0, -inf, 0, -inf}, []float64{0.5, 0, 0.5, 0}},
		{"fully masked", []float32{-inf, -inf}, []float64{0, 0}},
		{"huge", []float32{1e30, 1e30, -1e30}, []float64{0.5, 0.5, 0}},
		{"nan", []float32{1, float32(math.NaN())}, []float64{math.NaN(), math.NaN()}},
	} {
		dst := make([]float32, len(tc.x))
		Softmax(1, dst, tc.x, 1, len(tc.x))
		checkClose(t, tc.name, dst, tc.want, 4*eps32, 0) // exp(0) = 1 exactly; one divide
	}
}

func TestSoftmaxCausal(t *testing.T) {
	rng := newRand(11)
	for _, tc := range []struct{ batch, tq, tk, past int }{
		{1, 5, 5, 0},  // prefill
		{3, 1, 9, 8},  // decode step
		{2, 4, 10, 6}, // chunked prefill after a cached prefix
		{2, 4, 3, 0},  // more queries than keys: later rows see all keys
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			const scale = 0.3
			x := randNormal(rng, tc.batch*tc.tq*tc.tk, 2)
			var want, tol []float64
			for r := range tc.batch * tc.tq {
				n := min(tc.tk, tc.past+r%tc.tq+1)
				w, e := refSoftmax(x[r*tc.tk:(r+1)*tc.tk], n, scale)
				want, tol = append(want, w...), append(tol, e...)
			}
			dst := make([]float32, len(x))
			SoftmaxCausal(2, dst, x, tc.batch, tc.tq, tc.tk, tc.past, scale)
			checkTol(t, "SoftmaxCausal", dst, want, tol)

			// Same as adding CausalMask and taking SoftmaxScaled.
			mask := make([]float32, tc.tq*tc.tk)
			CausalMask(mask, tc.tq, tc.tk, tc.past)
			y := append([]float32(nil), x...)
			for r := range tc.batch * tc.tq {
				for j := range tc.tk {
					y[r*tc.tk+j] += mask[r%tc.tq*tc.tk+j]
				}
			}
			SoftmaxScaled(1, y, y, tc.batch*tc.tq, tc.tk, scale)
			checkTol(t, "masked SoftmaxScaled", y, want, tol)
		})
	}
}

func TestLogSoftmax(t *testing.T) {
	rng := newRand(12)
	for _, tc := range []struct{ rows, cols int }{{1, 1}, {4, 7}, {9, 3000}, {2, 151936}} {
		t.Run(fmt.Sprintf("%dx%d", tc.rows, tc.cols), func(t *testing.T) {
			x := randNormal(rng, tc.rows*tc.cols, 4)
			want, tol := make([]float64, len(x)), make([]float64, len(x))
			for r := range tc.rows {
				row := x[r*tc.cols : (r+1)*tc.cols]
				m := math.Inf(-1)
				for _, v := range row {
					m = math.Max(m, float64(v))
				}
				s := 0.0
				for _, v := range row {
					s += math.Exp(float64(v) - m)
				}
				lse := m + math.Log(s)
				for i, v := range row {
					want[r*tc.cols+i] = float64(v) - lse
					// Two float32 roundings (m + log(sum), then x - c) of values of size
					// |x| and |lse|; log's argument is accurate to a few ulp, which
					// becomes an absolute error of a few eps32 (d log s = ds/s).
					tol[r*tc.cols+i] = 2*u32*(math.Abs(float64(v))+math.Abs(lse)) + 4*eps32
				}
			}
			dst := make([]float32, len(x))
			LogSoftmax(2, dst, x, tc.rows, tc.cols)
			checkTol(t, "LogSoftmax", dst, want, tol)
		})
	}
	inf := float32(math.Inf(-1))
	d := make([]float32, 3)
	LogSoftmax(1, d, []float32{inf, inf, inf}, 1, 3)
	if !math.IsInf(float64(d[0]), -1) {
		t.Errorf("LogSoftmax(all -Inf) = %v, want -Inf", d)
	}
}

func TestSoftmaxPanics(t *testing.T) {
	x := make([]float32, 6)
	mustPanic(t, "len", func() { Softmax(1, x, x, 2, 4) })
	mustPanic(t, "scale", func() { SoftmaxScaled(1, x, x, 2, 3, 0) })
	mustPanic(t, "causal len", func() { SoftmaxCausal(1, x, x, 1, 2, 4, 0, 1) })
}

func BenchmarkSoftmax(b *testing.B) {
	for _, sh := range []struct{ rows, cols int }{{512, 512}, {32, 2048}, {1, 151936}, {64, 151936}} {
		for _, threads := range []int{1, 0} {
			b.Run(fmt.Sprintf("cpu/f32/%dx%d/threads=%d", sh.rows, sh.cols, threads), func(b *testing.B) {
				x := randNormal(newRand(1), sh.rows*sh.cols, 3)
				dst := make([]float32, len(x))
				b.ReportAllocs()
				for b.Loop() {
					SoftmaxScaled(threads, dst, x, sh.rows, sh.cols, 0.125)
				}
				reportGBs(b, float64(8*len(x)))
			})
		}
	}
}

// TestCausalMask checks the mask against its definition: query i sits at
// absolute position past+i and may see keys j <= past+i (0 added), the
// rest get -Inf. Exact: the values are constants.
func TestCausalMask(t *testing.T) {
	for _, tc := range []struct{ tq, tk, past int }{
		{1, 1, 0}, {4, 4, 0}, {1, 9, 8}, {3, 10, 6}, {5, 3, 0}, {2, 7, 100},
	} {
		t.Run(fmt.Sprintf("q%d-k%d-past%d", tc.tq, tc.tk, tc.past), func(t *testing.T) {
			mask := make([]float32, tc.tq*tc.tk)
			for i := range mask {
				mask[i] = 42 // overwritten everywhere
			}
			CausalMask(mask, tc.tq, tc.tk, tc.past)
			want := make([]float64, len(mask))
			for i := range tc.tq {
				for j := range tc.tk {
					if j > tc.past+i {
						want[i*tc.tk+j] = math.Inf(-1)
					}
				}
			}
			checkClose(t, "CausalMask", mask, want, 0, 0)
		})
	}
}
