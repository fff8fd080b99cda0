package cpu

import (
	"fmt"
	"math"
)

// Binary ops broadcast NumPy-style: shapes are aligned at their last
// dimension, and a dimension of size 1 (or a missing leading one) repeats.
// dst has the broadcast shape and must not overlap a or b unless it is the
// same slice as an operand of the full output shape (in-place a += b).
//
// The shapes are reduced first: size-1 dimensions are dropped and adjacent
// dimensions that are contiguous in every operand are merged, so a
// same-shape op becomes one flat loop, a bias add over [N, C] rows becomes
// N calls of a row kernel, and [N, C, H, W] + [1, C, 1, 1] becomes N*C calls
// of a row-plus-scalar kernel over H*W. The inner loops never see a stride.

// BroadcastShape returns the NumPy broadcast of shapes a and b, or an error
// naming the first dimension that neither matches nor is 1.
func BroadcastShape(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("cpu: shapes %v and %v do not broadcast (dimension %d: %d vs %d)", a, b, i-n, da, db)
		}
	}
	return out, nil
}

// Add sets dst = a + b with broadcasting; dst has the broadcast shape.
func Add(threads int, dst, a []float32, aShape []int, b []float32, bShape []int) {
	binary(threads, "Add", &addOps, dst, a, aShape, b, bShape)
}

// Sub sets dst = a - b with broadcasting.
func Sub(threads int, dst, a []float32, aShape []int, b []float32, bShape []int) {
	binary(threads, "Sub", &subOps, dst, a, aShape, b, bShape)
}

// Mul sets dst = a * b with broadcasting.
func Mul(threads int, dst, a []float32, aShape []int, b []float32, bShape []int) {
	binary(threads, "Mul", &mulOps, dst, a, aShape, b, bShape)
}

// Div sets dst = a / b with broadcasting (IEEE division: x/0 is ±Inf or NaN).
func Div(threads int, dst, a []float32, aShape []int, b []float32, bShape []int) {
	binary(threads, "Div", &divOps, dst, a, aShape, b, bShape)
}

// AddRows sets dst[r, :] = x[r, :] + bias for each of rows rows: the bias
// add after a linear layer, without the shape bookkeeping of Add.
func AddRows(threads int, dst, x []float32, rows, cols int, bias []float32) {
	mustDims("AddRows", rows, cols)
	mustLen("AddRows", "x", x, rows*cols)
	mustLen("AddRows", "dst", dst, rows*cols)
	mustLen("AddRows", "bias", bias, cols)
	ParallelFor(threads, rows, grainFor(cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			addVV(dst[r*cols:(r+1)*cols], x[r*cols:(r+1)*cols], bias)
		}
	})
}

// Scale sets dst = x * s.
func Scale(threads int, dst, x []float32, s float32) {
	mapScalar(threads, "Scale", mulVS, dst, x, s)
}

// AddScalar sets dst = x + s.
func AddScalar(threads int, dst, x []float32, s float32) {
	mapScalar(threads, "AddScalar", addVS, dst, x, s)
}

// Exp sets dst = e**x (float32 polynomial, within 2 ulp; see expf).
func Exp(threads int, dst, x []float32) { mapUnary(threads, "Exp", expVec, dst, x) }

// Tanh sets dst = tanh(x).
func Tanh(threads int, dst, x []float32) { mapUnary(threads, "Tanh", tanhVec, dst, x) }

// Sigmoid sets dst = 1 / (1 + e**-x).
func Sigmoid(threads int, dst, x []float32) { mapUnary(threads, "Sigmoid", sigmoidVec, dst, x) }

// Neg sets dst = -x.
func Neg(threads int, dst, x []float32) { mapUnary(threads, "Neg", negVec, dst, x) }

// Sqrt sets dst = sqrt(x) (NaN for x < 0).
func Sqrt(threads int, dst, x []float32) { mapUnary(threads, "Sqrt", sqrtVec, dst, x) }

// Rsqrt sets dst = 1 / sqrt(x) (+Inf at 0).
func Rsqrt(threads int, dst, x []float32) { mapUnary(threads, "Rsqrt", rsqrtVec, dst, x) }

// --- reductions along the last axis: x is [rows, cols] ---

// Sum sets dst[r] = sum of row r of x ([rows, cols]); it accumulates in
// float64, so the result is the correctly rounded sum for any practical
// row length.
func Sum(threads int, dst, x []float32, rows, cols int) {
	reduceRows(threads, "Sum", dst, x, rows, cols, func(row []float32) float32 { return float32(sumF64(row)) })
}

// Mean sets dst[r] = the mean of row r of x; cols must be > 0.
func Mean(threads int, dst, x []float32, rows, cols int) {
	mustPositive("Mean", "cols", cols)
	reduceRows(threads, "Mean", dst, x, rows, cols, func(row []float32) float32 {
		return float32(sumF64(row) / float64(len(row)))
	})
}

// Max sets dst[r] = the largest element of row r (NaN if the row holds a
// NaN, as in PyTorch); cols must be > 0.
func Max(threads int, dst, x []float32, rows, cols int) {
	mustPositive("Max", "cols", cols)
	reduceRows(threads, "Max", dst, x, rows, cols, func(row []float32) float32 {
		return row[argmaxRow(row)]
	})
}

// ArgMax sets dst[r] = the index of the largest element of row r, the first
// one on ties; a NaN counts as larger than everything (as in PyTorch).
func ArgMax(threads int, dst []int32, x []float32, rows, cols int) {
	mustDims("ArgMax", rows, cols)
	mustPositive("ArgMax", "cols", cols)
	mustLen("ArgMax", "x", x, rows*cols)
	mustLen("ArgMax", "dst", dst, rows)
	ParallelFor(threads, rows, grainFor(cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dst[r] = int32(argmaxRow(x[r*cols : (r+1)*cols]))
		}
	})
}

func reduceRows(threads int, kernel string, dst, x []float32, rows, cols int, f func([]float32) float32) {
	mustDims(kernel, rows, cols)
	mustLen(kernel, "x", x, rows*cols)
	mustLen(kernel, "dst", dst, rows)
	ParallelFor(threads, rows, grainFor(cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dst[r] = f(x[r*cols : (r+1)*cols])
		}
	})
}

// sumF64 sums x in float64 with four accumulators (independent add chains
// run in parallel; the float64 conversion is nearly free in scalar code).
func sumF64(x []float32) float64 {
	var s0, s1, s2, s3 float64
	for len(x) >= 4 {
		s0 += float64(x[0])
		s1 += float64(x[1])
		s2 += float64(x[2])
		s3 += float64(x[3])
		x = x[4:]
	}
	for _, v := range x {
		s0 += float64(v)
	}
	return (s0 + s1) + (s2 + s3)
}

// maxF32Go is the portable maxF32 (it returns NaN only when x[0] is NaN).
func maxF32Go(x []float32) float32 {
	m0, m1, m2, m3 := x[0], x[0], x[0], x[0]
	for len(x) >= 4 {
		m0 = max32(m0, x[0])
		m1 = max32(m1, x[1])
		m2 = max32(m2, x[2])
		m3 = max32(m3, x[3])
		x = x[4:]
	}
	for _, v := range x {
		m0 = max32(m0, v)
	}
	return max32(max32(m0, m1), max32(m2, m3))
}

// max32 is a branch-free max that ignores a NaN in b (Go's builtin max
// propagates NaNs and costs more).
func max32(a, b float32) float32 {
	if b > a {
		return b
	}
	return a
}

// argmaxRow returns the index of the first largest element of a non-empty
// row, or of its first NaN.
func argmaxRow(x []float32) int {
	m := x[0]
	if m != m {
		return 0
	}
	best := 0
	for i, v := range x {
		if v > m {
			m, best = v, i
		} else if v != v {
			return i
		}
	}
	return best
}

// --- elementwise maps ---

// mapUnary runs f over dst and x in parallel chunks; dst may be x.
func mapUnary(threads int, kernel string, f func(dst, x []float32), dst, x []float32) {
	mustLen(kernel, "dst", dst, len(x))
	const chunk = 1 << 12
	n := len(x)
	ParallelFor(threads, (n+chunk-1)/chunk, grainFor(chunk), func(lo, hi int) {
		lo, hi = lo*chunk, min(hi*chunk, n)
		f(dst[lo:hi], x[lo:hi])
	})
}

func mapScalar(threads int, kernel string, f func(dst, x []float32, s float32), dst, x []float32, s float32) {
	mustLen(kernel, "dst", dst, len(x))
	const chunk = 1 << 12
	n := len(x)
	ParallelFor(threads, (n+chunk-1)/chunk, grainFor(chunk), func(lo, hi int) {
		lo, hi = lo*chunk, min(hi*chunk, n)
		f(dst[lo:hi], x[lo:hi], s)
	})
}

func expVec(dst, x []float32) { expAffine(dst, x, 1, 0) }

// tanhVec computes e**(2|x|) a block at a time with expAffine, then
// tanh = ±(1 - 2/(e**2|x| + 1)), or Cephes tanhf's odd polynomial for
// |x| < 0.625, which keeps full relative precision near 0.
// Both forms are computed for every element and one is picked with a bit
// mask: on real activations the choice is random, and a branch on it
// mispredicts often enough to cost more than the polynomial.
func tanhVec(dst, x []float32) {
	const block = 256
	var e [block]float32
	for len(x) > 0 {
		n := min(len(x), block)
		d := dst[:n]
		for i, v := range x[:n] {
			e[i] = math.Float32frombits(math.Float32bits(v) &^ (1 << 31))
		}
		expAffine(e[:n], e[:n], 2, 0)
		for i, v := range x[:n] {
			bits := math.Float32bits(v)
			sign := bits & (1 << 31)
			z := v * v
			p := float32(-5.70498872745e-3)
			p = p*z + 2.06390887954e-2
			p = p*z - 5.37397613446e-2
			p = p*z + 1.33314422036e-1
			p = p*z - 3.33332819422e-1
			small := math.Float32bits(p*z*v + v)
			large := math.Float32bits(1-2/(e[i]+1)) | sign // e = +Inf gives ±1
			var m uint32
			if bits&^(1<<31) < math.Float32bits(tanhfLo) { // |x| < 0.625; compiles to CMOV
				m = ^uint32(0)
			}
			r := small&m | large&^m
			if v != v {
				r = bits
			}
			d[i] = math.Float32frombits(r)
		}
		dst, x = dst[n:], x[n:]
	}
}

func sigmoidVec(dst, x []float32) {
	const block = 256
	var e [block]float32
	for len(x) > 0 {
		n := min(len(x), block)
		expAffine(e[:n], x[:n], -1, 0)
		d := dst[:n]
		for i, v := range x[:n] {
			if v < -80 { // 1 + e**x rounds to 1: keep the subnormal tail of e**x
				d[i] = expf(v)
			} else {
				d[i] = 1 / (1 + e[i])
			}
		}
		dst, x = dst[n:], x[n:]
	}
}

func negVec(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = -v
	}
}

func sqrtVec(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = float32(math.Sqrt(float64(v))) // compiles to SQRTSS
	}
}

func rsqrtVec(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = 1 / float32(math.Sqrt(float64(v)))
	}
}

// --- binary kernels: vv (both operands vary), vs (b is a scalar over the
// row), sv (a is a scalar) ---

type binaryOps struct {
	vv func(dst, a, b []float32)
	vs func(dst, a []float32, s float32)
	sv func(dst []float32, s float32, b []float32)
}

var (
	addOps = binaryOps{addVV, addVS, func(d []float32, s float32, b []float32) { addVS(d, b, s) }}
	subOps = binaryOps{subVV, subVS, subSV}
	mulOps = binaryOps{mulVV, mulVS, func(d []float32, s float32, b []float32) { mulVS(d, b, s) }}
	divOps = binaryOps{divVV, divVS, divSV}
)

func addVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] + b[i]
	}
}

func addVS(dst, a []float32, s float32) {
	a = a[:len(dst)]
	for i := range dst {
		dst[i] = a[i] + s
	}
}

func subVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] - b[i]
	}
}

func subVS(dst, a []float32, s float32) {
	a = a[:len(dst)]
	for i := range dst {
		dst[i] = a[i] - s
	}
}

func subSV(dst []float32, s float32, b []float32) {
	b = b[:len(dst)]
	for i := range dst {
		dst[i] = s - b[i]
	}
}

func mulVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] * b[i]
	}
}

func mulVS(dst, a []float32, s float32) {
	a = a[:len(dst)]
	for i := range dst {
		dst[i] = a[i] * s
	}
}

func divVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] / b[i]
	}
}

func divVS(dst, a []float32, s float32) {
	a = a[:len(dst)]
	for i := range dst {
		dst[i] = a[i] / s
	}
}

func divSV(dst []float32, s float32, b []float32) {
	b = b[:len(dst)]
	for i := range dst {
		dst[i] = s / b[i]
	}
}

// --- the strided broadcast walk ---

// bcastPlan is a broadcast binary op reduced to outer dims (walked with
// strides) and one inner dim (handed to a row kernel).
type bcastPlan struct {
	dims   []int // outer dims, outermost first
	sa, sb []int // element strides of a and b over dims (0 = broadcast)
	inner  int   // length of the inner run
	ia, ib int   // inner strides of a and b: 1 or 0
}

func shapeSize(kernel string, shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("cpu.%s: negative dimension in shape %v", kernel, shape))
		}
		n *= d
	}
	return n
}

func planBroadcast(out, aShape, bShape []int) bcastPlan {
	r := len(out)
	// Strides of a and b aligned to out's rank, 0 where broadcast.
	sa, sb := make([]int, r), make([]int, r)
	fill := func(dst []int, shape []int) {
		st := 1
		for i := len(shape) - 1; i >= 0; i-- {
			j := r - len(shape) + i
			if shape[i] != 1 {
				dst[j] = st
			}
			st *= shape[i]
		}
	}
	fill(sa, aShape)
	fill(sb, bShape)
	// Drop size-1 dims, then merge a dim into the next when both operands
	// (and the contiguous output) step through it contiguously.
	var d, da, db []int
	for i := range r {
		if out[i] == 1 {
			continue
		}
		if k := len(d) - 1; k >= 0 && da[k] == sa[i]*out[i] && db[k] == sb[i]*out[i] {
			d[k] *= out[i]
			da[k], db[k] = sa[i], sb[i]
			continue
		}
		d, da, db = append(d, out[i]), append(da, sa[i]), append(db, sb[i])
	}
	if len(d) == 0 {
		return bcastPlan{inner: 1, ia: 1, ib: 1}
	}
	k := len(d) - 1
	return bcastPlan{dims: d[:k], sa: da[:k], sb: db[:k], inner: d[k], ia: da[k], ib: db[k]}
}

func binary(threads int, kernel string, ops *binaryOps, dst, a []float32, aShape []int, b []float32, bShape []int) {
	mustLen(kernel, "a", a, shapeSize(kernel, aShape))
	mustLen(kernel, "b", b, shapeSize(kernel, bShape))
	out, err := BroadcastShape(aShape, bShape)
	if err != nil {
		panic(fmt.Sprintf("cpu.%s: %v", kernel, err))
	}
	total := shapeSize(kernel, out)
	mustLen(kernel, "dst", dst, total)
	if total == 0 {
		return
	}
	p := planBroadcast(out, aShape, bShape)
	rows := total / p.inner
	row := func(o, oa, ob, n int) {
		d := dst[o : o+n]
		switch {
		case p.ia == 1 && p.ib == 1:
			ops.vv(d, a[oa:oa+n], b[ob:ob+n])
		case p.ia == 1:
			ops.vs(d, a[oa:oa+n], b[ob])
		default:
			ops.sv(d, a[oa], b[ob:ob+n])
		}
	}
	// Few long rows (same-shape ops collapse to one): split the rows too.
	if t := threadsOr(threads); rows < 2*t && p.inner >= 1<<14 {
		pieces := min(4*t/rows+1, p.inner>>12)
		step := (p.inner + pieces - 1) / pieces
		ParallelFor(threads, rows*pieces, 1, func(lo, hi int) {
			for task := lo; task < hi; task++ {
				r, c := task/pieces, task%pieces*step
				oa, ob := p.offsets(r)
				n := min(step, p.inner-c)
				row(r*p.inner+c, oa+c*p.ia, ob+c*p.ib, n)
			}
		})
		return
	}
	ParallelFor(threads, rows, grainFor(p.inner), func(lo, hi int) {
		// Walk the outer dims with a mixed-radix counter from row lo.
		idx := make([]int, len(p.dims))
		oa, ob := 0, 0
		rem := lo
		for i := len(p.dims) - 1; i >= 0; i-- {
			idx[i] = rem % p.dims[i]
			rem /= p.dims[i]
			oa += idx[i] * p.sa[i]
			ob += idx[i] * p.sb[i]
		}
		for r := lo; r < hi; r++ {
			row(r*p.inner, oa, ob, p.inner)
			for i := len(p.dims) - 1; i >= 0; i-- {
				idx[i]++
				oa += p.sa[i]
				ob += p.sb[i]
				if idx[i] < p.dims[i] {
					break
				}
				oa -= idx[i] * p.sa[i]
				ob -= idx[i] * p.sb[i]
				idx[i] = 0
			}
		}
	})
}

// offsets returns the offsets into a and b of outer row r.
func (p *bcastPlan) offsets(r int) (oa, ob int) {
	for i := len(p.dims) - 1; i >= 0; i-- {
		j := r % p.dims[i]
		r /= p.dims[i]
		oa += j * p.sa[i]
		ob += j * p.sb[i]
	}
	return oa, ob
}

func threadsOr(threads int) int {
	if threads <= 0 {
		return Threads()
	}
	return threads
}
