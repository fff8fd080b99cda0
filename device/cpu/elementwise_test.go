package cpu

import (
	"fmt"
	"math"
	"testing"
)

// refBroadcast computes op over the NumPy broadcast of a and b in float64,
// by the definition: each output index maps to an operand index with the
// broadcast dimensions pinned to 0.
func refBroadcast(out []int, a []float32, aShape []int, b []float32, bShape []int, op func(x, y float64) float64) []float64 {
	n := 1
	for _, d := range out {
		n *= d
	}
	res := make([]float64, n)
	idx := make([]int, len(out))
	at := func(shape []int, i []int) int {
		off := 0
		for k, d := range shape {
			j := i[len(out)-len(shape)+k]
			if d == 1 {
				j = 0
			}
			off = off*d + j
		}
		return off
	}
	for f := range n {
		rem := f
		for k := len(out) - 1; k >= 0; k-- {
			idx[k] = rem % out[k]
			rem /= out[k]
		}
		res[f] = op(float64(a[at(aShape, idx)]), float64(b[at(bShape, idx)]))
	}
	return res
}

func TestBroadcastShape(t *testing.T) {
	for _, tc := range []struct {
		a, b, want []int
		ok         bool
	}{
		{[]int{2, 3}, []int{2, 3}, []int{2, 3}, true},
		{[]int{2, 3}, []int{3}, []int{2, 3}, true},
		{[]int{4, 1, 5}, []int{3, 1}, []int{4, 3, 5}, true},
		{[]int{}, []int{2}, []int{2}, true},
		{[]int{0, 3}, []int{1, 3}, []int{0, 3}, true},
		{[]int{2, 3}, []int{2}, nil, false},
		{[]int{2, 3}, []int{4, 3}, nil, false},
	} {
		got, err := BroadcastShape(tc.a, tc.b)
		if (err == nil) != tc.ok || fmt.Sprint(got) != fmt.Sprint(tc.want) && tc.ok {
			t.Errorf("BroadcastShape(%v, %v) = %v, %v; want %v, ok=%v", tc.a, tc.b, got, err, tc.want, tc.ok)
		}
	}
}

func TestBinaryBroadcast(t *testing.T) {
	ops := []struct {
		name string
		fn   func(int, []float32, []float32, []int, []float32, []int)
		ref  func(x, y float64) float64
	}{
		{"Add", Add, func(x, y float64) float64 { return x + y }},
		{"Sub", Sub, func(x, y float64) float64 { return x - y }},
		{"Mul", Mul, func(x, y float64) float64 { return x * y }},
		{"Div", Div, func(x, y float64) float64 { return x / y }},
	}
	shapes := []struct {
		name string
		a, b []int
	}{
		{"same", []int{3, 5, 7}, []int{3, 5, 7}},
		{"same-large", []int{1 << 17}, []int{1 << 17}}, // few long rows: split inside the row
		{"bias", []int{6, 33}, []int{33}},
		{"bias-large", []int{700, 96}, []int{96}},
		{"channel", []int{2, 4, 5, 6}, []int{1, 4, 1, 1}},
		{"channel-large", []int{2, 64, 48, 48}, []int{64, 1, 1}},
		{"outer", []int{7, 1}, []int{1, 9}},
		{"scalar-b", []int{4, 5}, []int{}},
		{"scalar-a", []int{1}, []int{4, 5}},
		{"column", []int{5, 1}, []int{5, 6}},
		{"middle", []int{3, 1, 4}, []int{3, 5, 4}},
		{"rank-mismatch", []int{2, 3, 4, 5}, []int{4, 1}},
		{"empty", []int{0, 4}, []int{4}},
	}
	rng := newRand(1)
	for _, op := range ops {
		for _, sh := range shapes {
			for _, threads := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%s/threads=%d", op.name, sh.name, threads), func(t *testing.T) {
					na, nb := 1, 1
					for _, d := range sh.a {
						na *= d
					}
					for _, d := range sh.b {
						nb *= d
					}
					a := randSlice(rng, na, -2, 2)
					b := randSlice(rng, nb, 0.5, 3) // away from 0 for Div
					if op.name != "Div" {
						b = randSlice(rng, nb, -2, 2)
					}
					out, err := BroadcastShape(sh.a, sh.b)
					if err != nil {
						t.Fatal(err)
					}
					want := refBroadcast(out, a, sh.a, b, sh.b, op.ref)
					dst := make([]float32, len(want))
					op.fn(threads, dst, a, sh.a, b, sh.b)
					// Exact: each output is one IEEE op on float32 inputs, and rounding the
					// float64 result to float32 equals the direct float32 op (double rounding
					// is innocuous for +-*/ when 53 >= 2*24+2; Figueroa 1995).
					checkClose(t, op.name, dst, rounded(want), 0, 0)
				})
			}
		}
	}
}

func TestBinaryInPlace(t *testing.T) {
	rng := newRand(2)
	a := randSlice(rng, 12*40, -1, 1)
	b := randSlice(rng, 40, -1, 1)
	want := refBroadcast([]int{12, 40}, a, []int{12, 40}, b, []int{40}, func(x, y float64) float64 { return x + y })
	Add(2, a, a, []int{12, 40}, b, []int{40})
	checkClose(t, "Add in place", a, rounded(want), 0, 0) // exact: one rounding (Figueroa 1995)
}

func TestBinaryPanics(t *testing.T) {
	a := make([]float32, 6)
	mustPanic(t, "no broadcast", func() { Add(1, a, a, []int{2, 3}, a[:2], []int{2}) })
	mustPanic(t, "short a", func() { Add(1, a, a[:5], []int{2, 3}, a, []int{2, 3}) })
	mustPanic(t, "short dst", func() { Add(1, a[:4], a, []int{2, 3}, a[:3], []int{3}) })
}

func TestAddRows(t *testing.T) {
	rng := newRand(3)
	const rows, cols = 37, 129
	x, bias := randSlice(rng, rows*cols, -1, 1), randSlice(rng, cols, -1, 1)
	want := refBroadcast([]int{rows, cols}, x, []int{rows, cols}, bias, []int{cols}, func(a, b float64) float64 { return a + b })
	dst := make([]float32, rows*cols)
	AddRows(2, dst, x, rows, cols, bias)
	checkClose(t, "AddRows", dst, rounded(want), 0, 0) // exact: one rounding (Figueroa 1995)
}

func TestUnary(t *testing.T) {
	rng := newRand(4)
	n := 50000
	wide := randSlice(rng, n, -100, 100)
	small := randNormal(rng, n, 1)
	tiny := randNormal(rng, n, 1e-4)
	pos := randSlice(rng, n, 1e-6, 1e4)
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		88.7, 88.8, -87.5, -100, -104, 1e-30, -1e-30, 9, -9, 0.625, -0.625}
	cat := func(xs ...[]float32) []float32 {
		var all []float32
		for _, x := range xs {
			all = append(all, x...)
		}
		return all
	}
	for _, tc := range []struct {
		name     string
		fn       func(int, []float32, []float32)
		ref      func(float64) float64
		in       []float32
		rel, abs float64
		why      string
	}{
		{"Exp", Exp, math.Exp, cat(wide, small, tiny, special), 4 * eps32, 0,
			"Cephes expf: <=1 ulp polynomial, Cody-Waite reduction error <1 ulp, exact 2^n scaling; 4 ulp with margin"},
		{"Tanh", Tanh, math.Tanh, cat(wide, small, tiny, special), 4 * eps32, 0,
			"Cephes tanhf polynomial (<=2 ulp) below 0.625; 1-2/(e^2x+1) above, with expf's 2 ulp damped by 2/(e^2x+1)<=0.6"},
		{"Sigmoid", Sigmoid, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, cat(wide, small, tiny, special), 5 * eps32, 0,
			"expf's 2 ulp scaled by e^-x/(1+e^-x) <= 1, plus two roundings (add, divide)"},
		{"Neg", Neg, func(x float64) float64 { return -x }, cat(wide, special), 0, 0, "exact"},
		{"Sqrt", Sqrt, math.Sqrt, cat(pos, special), 0, 0,
			"exact: correctly rounded, double rounding innocuous for sqrt (Figueroa 1995)"},
		{"Rsqrt", Rsqrt, func(x float64) float64 { return 1 / math.Sqrt(x) }, cat(pos, special), 2 * u32, 0,
			"two correctly rounded ops (sqrt, divide): 2 half-ulps"},
	} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/threads=%d", tc.name, threads), func(t *testing.T) {
				want := make([]float64, len(tc.in))
				for i, v := range tc.in {
					want[i] = tc.ref(float64(v))
					if a := math.Abs(want[i]); a < 0x1p-126 || a > math.MaxFloat32 {
						// Outside float32's normal range (subnormal or overflowing): compare
						// with the rounded value.
						want[i] = float64(float32(want[i]))
					}
				}
				if tc.rel == 0 {
					want = rounded(want) // exact kernels: compare with the correctly rounded value
				}
				dst := make([]float32, len(tc.in))
				tc.fn(threads, dst, tc.in)
				checkClose(t, tc.name+" ("+tc.why+")", dst, want, tc.rel, 0x1p-149)
				// In place gives the same.
				in := append([]float32(nil), tc.in...)
				tc.fn(threads, in, in)
				checkClose(t, tc.name+" in place", in, want, tc.rel, 0x1p-149)
			})
		}
	}
}

func TestScaleAddScalar(t *testing.T) {
	rng := newRand(5)
	x := randSlice(rng, 70000, -10, 10)
	ws, wa := make([]float64, len(x)), make([]float64, len(x))
	for i, v := range x {
		ws[i] = float64(v) * float64(float32(0.37))
		wa[i] = float64(v) + float64(float32(-1.5))
	}
	d := make([]float32, len(x))
	Scale(2, d, x, 0.37)
	checkClose(t, "Scale", d, rounded(ws), 0, 0) // exact: one rounding (Figueroa 1995)
	AddScalar(2, d, x, -1.5)
	checkClose(t, "AddScalar", d, rounded(wa), 0, 0)
}

func TestReductions(t *testing.T) {
	rng := newRand(6)
	for _, sh := range []struct{ rows, cols int }{{1, 1}, {3, 7}, {64, 1000}, {5, 100003}, {1000, 3}} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%dx%d/threads=%d", sh.rows, sh.cols, threads), func(t *testing.T) {
				x := randNormal(rng, sh.rows*sh.cols, 3)
				sum, mean, mx := make([]float64, sh.rows), make([]float64, sh.rows), make([]float64, sh.rows)
				am := make([]int32, sh.rows)
				bound := make([]float64, sh.rows)
				for r := range sh.rows {
					row := x[r*sh.cols : (r+1)*sh.cols]
					s, sa, best := 0.0, 0.0, 0
					for i, v := range row {
						s += float64(v)
						sa += math.Abs(float64(v))
						if v > row[best] {
							best = i
						}
					}
					sum[r], mean[r], mx[r], am[r] = s, s/float64(sh.cols), float64(row[best]), int32(best)
					bound[r] = sa
				}
				gs, gm, gx := make([]float32, sh.rows), make([]float32, sh.rows), make([]float32, sh.rows)
				ga := make([]int32, sh.rows)
				Sum(threads, gs, x, sh.rows, sh.cols)
				Mean(threads, gm, x, sh.rows, sh.cols)
				Max(threads, gx, x, sh.rows, sh.cols)
				ArgMax(threads, ga, x, sh.rows, sh.cols)
				for r := range sh.rows {
					// float64 accumulation: |error| <= cols*2^-53*sum|x| (Higham 2002, eq. 4.4),
					// then one rounding to float32 (u32 relative).
					tol := u32*math.Abs(sum[r]) + float64(sh.cols)*0x1p-53*bound[r]
					if d := math.Abs(float64(gs[r]) - sum[r]); d > tol {
						t.Errorf("Sum[%d] = %v, want %v (tol %g)", r, gs[r], sum[r], tol)
					}
					tol = u32*math.Abs(mean[r]) + 2*float64(sh.cols)*0x1p-53*bound[r]/float64(sh.cols)
					if d := math.Abs(float64(gm[r]) - mean[r]); d > tol {
						t.Errorf("Mean[%d] = %v, want %v", r, gm[r], mean[r])
					}
					if float64(gx[r]) != mx[r] || ga[r] != am[r] {
						t.Errorf("Max/ArgMax[%d] = %v/%d, want %v/%d", r, gx[r], ga[r], mx[r], am[r])
					}
				}
			})
		}
	}
}

func TestArgMaxTiesAndNaN(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		row  []float32
		want int32
	}{
		{[]float32{1, 3, 3, 2}, 1},
		{[]float32{-1, -1}, 0},
		{[]float32{1, nan, 5}, 1},
		{[]float32{1, 5, nan}, 2},
		{[]float32{nan, 5}, 0},
		{[]float32{float32(math.Inf(-1)), float32(math.Inf(-1))}, 0},
	} {
		var got [1]int32
		ArgMax(1, got[:], tc.row, 1, len(tc.row))
		var mx [1]float32
		Max(1, mx[:], tc.row, 1, len(tc.row))
		if got[0] != tc.want {
			t.Errorf("ArgMax(%v) = %d, want %d", tc.row, got[0], tc.want)
		}
		if w := tc.row[tc.want]; !(mx[0] == w || w != w && mx[0] != mx[0]) {
			t.Errorf("Max(%v) = %v, want %v", tc.row, mx[0], w)
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	for _, sh := range []struct {
		name  string
		a, bs []int
	}{
		{"same/1M", []int{1 << 20}, []int{1 << 20}},
		{"bias/4096x1024", []int{4096, 1024}, []int{1024}},
		{"channel/8x128x32x32", []int{8, 128, 32, 32}, []int{128, 1, 1}},
	} {
		b.Run("cpu/f32/"+sh.name, func(b *testing.B) {
			rng := newRand(1)
			na, nb := shapeSize("", sh.a), shapeSize("", sh.bs)
			x, y, dst := randSlice(rng, na, -1, 1), randSlice(rng, nb, -1, 1), make([]float32, na)
			b.ReportAllocs()
			for b.Loop() {
				Add(0, dst, x, sh.a, y, sh.bs)
			}
			reportGBs(b, float64(4*(2*na+nb)))
		})
	}
}

func BenchmarkUnary(b *testing.B) {
	const n = 1 << 20
	rng := newRand(1)
	x, dst := randNormal(rng, n, 2), make([]float32, n)
	for _, op := range []struct {
		name string
		fn   func(int, []float32, []float32)
	}{{"Exp", Exp}, {"Tanh", Tanh}, {"Sigmoid", Sigmoid}, {"Sqrt", func(th int, d, s []float32) { Sqrt(th, d, s) }}} {
		for _, threads := range []int{1, 0} {
			b.Run(fmt.Sprintf("%s/cpu/f32/1M/threads=%d", op.name, threads), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					op.fn(threads, dst, x)
				}
				reportGBs(b, 8*n)
			})
		}
	}
}

func BenchmarkSum(b *testing.B) {
	const rows, cols = 1024, 4096
	x, dst := randNormal(newRand(1), rows*cols, 1), make([]float32, rows)
	b.Run("cpu/f32/1024x4096", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Sum(0, dst, x, rows, cols)
		}
		reportGBs(b, 4*rows*cols)
	})
}
