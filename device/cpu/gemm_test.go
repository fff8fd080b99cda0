package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// gemmCase is one product C = alpha·op(A)·op(B) + beta·C. pad is added to
// every leading dimension, to check strided (sub-matrix) operands.
type gemmCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int
	nanC           bool // fill C with NaN (only with beta == 0: it must not be read)
}

func (tc gemmCase) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	s := fmt.Sprintf("%s%s/%dx%dx%d/a%g/b%g", t(tc.transA), t(tc.transB), tc.m, tc.n, tc.k, tc.alpha, tc.beta)
	if tc.pad > 0 {
		s += fmt.Sprintf("/pad%d", tc.pad)
	}
	if tc.nanC {
		s += "/nanC"
	}
	return s
}

// gemmOperands makes seeded operands for tc, stored as BLAS stores them:
// A is m×k (k×m when transposed), B k×n (n×k), C m×n, each with its
// leading dimension widened by tc.pad. Padding elements hold NaN, so any
// read outside the matrix shows up in the result.
func gemmOperands(tc gemmCase, seed uint64) (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	fill := func(rows, cols, pad int) ([]float32, int) {
		ld := max(cols, 1) + pad
		x := make([]float32, max(rows*ld, 1))
		for i := range x {
			if i%ld >= cols {
				x[i] = float32(math.NaN())
			} else {
				x[i] = rng.Float32()*2 - 1
			}
		}
		return x, ld
	}
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = tc.n, tc.k
	}
	a, lda = fill(ar, ac, tc.pad)
	b, ldb = fill(br, bc, tc.pad)
	c, ldc = fill(tc.m, tc.n, tc.pad)
	if tc.nanC {
		for i := range c {
			c[i] = float32(math.NaN())
		}
	}
	return a, lda, b, ldb, c, ldc
}

// gemmReference computes C in float64 from the operands (c0 is C before
// the product) and the tolerance of each element.
//
// Tolerance, from the forward error bound of a dot product computed in
// floating point (Higham, Accuracy and Stability of Numerical Algorithms,
// 2nd ed., §3.1, eq. 3.5): |fl(xᵀy) − xᵀy| ≤ γ_k·Σ|x_i||y_i| with
// γ_k = k·u/(1−k·u), u = 2⁻²⁴ for float32. The bound holds for any order
// of summation and with fused multiply-adds, so for blocked sums too. The
// product by alpha, the beta·C term, its addition and the rounding of the
// result add four more rounding errors, hence
//
//	|c − ref| ≤ γ_{k+4}·(|alpha|·Σ_p|a_ip||b_pj| + |beta|·|c0_ij|).
func gemmReference(tc gemmCase, a []float32, lda int, b []float32, ldb int, c0 []float32, ldc int) (ref, tol []float64) {
	const u = 1.0 / (1 << 24)
	g := float64(tc.k+4) * u / (1 - float64(tc.k+4)*u)
	// op(A) by rows and op(B) by columns, in float64, so that the inner
	// loop runs over two contiguous slices.
	opA := make([]float64, tc.m*tc.k)
	opBT := make([]float64, tc.n*tc.k)
	for i := range tc.m {
		for p := range tc.k {
			if tc.transA {
				opA[i*tc.k+p] = float64(a[p*lda+i])
			} else {
				opA[i*tc.k+p] = float64(a[i*lda+p])
			}
		}
	}
	for j := range tc.n {
		for p := range tc.k {
			if tc.transB {
				opBT[j*tc.k+p] = float64(b[j*ldb+p])
			} else {
				opBT[j*tc.k+p] = float64(b[p*ldb+j])
			}
		}
	}
	ref = make([]float64, tc.m*tc.n)
	tol = make([]float64, tc.m*tc.n)
	alpha, beta := float64(tc.alpha), float64(tc.beta)
	for i := range tc.m {
		x := opA[i*tc.k : (i+1)*tc.k]
		for j := range tc.n {
			y := opBT[j*tc.k : (j+1)*tc.k]
			var dot, abs float64
			for p, xp := range x {
				dot += xp * y[p]
				abs += math.Abs(xp * y[p])
			}
			r, bound := alpha*dot, math.Abs(alpha)*abs
			if beta != 0 {
				r += beta * float64(c0[i*ldc+j])
				bound += math.Abs(beta * float64(c0[i*ldc+j]))
			}
			ref[i*tc.n+j], tol[i*tc.n+j] = r, g*bound
		}
	}
	return ref, tol
}

// checkGemmResult compares got (C after the product) with the reference,
// and checks that the padding of C past column n is untouched.
func checkGemmResult(t *testing.T, tc gemmCase, ref, tol []float64, c0, got []float32, ldc int) {
	t.Helper()
	bad := 0
	for i := range tc.m {
		for j := range tc.n {
			v, r, e := float64(got[i*ldc+j]), ref[i*tc.n+j], tol[i*tc.n+j]
			if !(math.Abs(v-r) <= e) {
				if bad < 5 {
					t.Errorf("C[%d][%d] = %g, want %g ± %.3g", i, j, v, r, e)
				}
				bad++
			}
		}
		for j := tc.n; j < ldc && i*ldc+j < len(got); j++ {
			if math.Float32bits(got[i*ldc+j]) != math.Float32bits(c0[i*ldc+j]) {
				t.Fatalf("C padding [%d][%d] written: %g", i, j, got[i*ldc+j])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d elements outside the tolerance", bad, tc.m*tc.n)
	}
}

// gemmFixture is a case's operands and reference, computed once and
// shared by every kernel and thread count that runs the case.
type gemmFixture struct {
	tc            gemmCase
	a, b, c0      []float32
	lda, ldb, ldc int
	ref, tol      []float64
}

func newGemmFixture(tc gemmCase, seed uint64) *gemmFixture {
	f := &gemmFixture{tc: tc}
	f.a, f.lda, f.b, f.ldb, f.c0, f.ldc = gemmOperands(tc, seed)
	f.ref, f.tol = gemmReference(tc, f.a, f.lda, f.b, f.ldb, f.c0, f.ldc)
	return f
}

// run computes the case with kern on threads goroutines and checks it.
func (f *gemmFixture) run(t *testing.T, kern *gemmKernel, threads int) {
	t.Helper()
	tc := f.tc
	c := append([]float32(nil), f.c0...)
	sgemm(kern, threads, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, f.a, f.lda, f.b, f.ldb, tc.beta, c, f.ldc)
	checkGemmResult(t, tc, f.ref, f.tol, f.c0, c, f.ldc)
}

// gemmTestKernels is every micro-kernel this CPU runs, each also with tiny
// cache blocks, so that small products cross every block boundary (kc, nc,
// mc) of the driver.
func gemmTestKernels() []*gemmKernel {
	var ks []*gemmKernel
	all := gemmKernels()
	// Both pure-Go tiles, whichever this GOARCH uses.
	other := *generic4x4Gemm
	if genericGemm == generic4x4Gemm {
		other = *generic2x4Gemm
	}
	other.name = fmt.Sprintf("generic%dx%d", other.mr, other.nr)
	all = append(all, &other)
	for _, k := range all {
		small := *k
		small.name += "-smallblocks"
		small.kc, small.nc, small.mc = 16, 2*k.nr, 2*k.mr
		ks = append(ks, k, &small)
	}
	return ks
}

func TestSgemmKernelsFound(t *testing.T) {
	var names []string
	for _, k := range gemmKernels() {
		names = append(names, k.name)
	}
	t.Logf("micro-kernels on this CPU: %s (Sgemm uses %s)", strings.Join(names, ", "), gemmKern.name)
	if gemmKern != gemmKernels()[0] {
		t.Errorf("Sgemm uses %s, want the best, %s", gemmKern.name, gemmKernels()[0].name)
	}
}

// TestSgemmSmallShapes crosses odd sizes on every kernel and transpose.
func TestSgemmSmallShapes(t *testing.T) {
	sizes := []int{1, 3, 17, 31, 33, 65}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 2}, {0.75, -1}}
	kernels := gemmTestKernels()
	i := 0
	for _, m := range sizes {
		for _, n := range sizes {
			for _, k := range sizes {
				for tr := range 4 {
					s := scalars[i%len(scalars)]
					tc := gemmCase{transA: tr&1 != 0, transB: tr&2 != 0, m: m, n: n, k: k, alpha: s[0], beta: s[1], pad: i % 3}
					i++
					t.Run(tc.String(), func(t *testing.T) {
						f := newGemmFixture(tc, uint64(i))
						for _, kern := range kernels {
							t.Run(kern.name, func(t *testing.T) { f.run(t, kern, 1) })
						}
					})
				}
			}
		}
	}
}

// TestSgemmShapes covers larger and special shapes on every kernel.
func TestSgemmShapes(t *testing.T) {
	var cases []gemmCase
	for tr := range 4 {
		ta, tb := tr&1 != 0, tr&2 != 0
		cases = append(cases,
			gemmCase{transA: ta, transB: tb, m: 127, n: 257, k: 65, alpha: 1, beta: 0},
			gemmCase{transA: ta, transB: tb, m: 257, n: 127, k: 31, alpha: 1, beta: 1, pad: 5},
			gemmCase{transA: ta, transB: tb, m: 65, n: 33, k: 1000, alpha: 0.5, beta: -1},
			gemmCase{transA: ta, transB: tb, m: 100, n: 520, k: 400, alpha: 1, beta: 0, nanC: true},
			gemmCase{transA: ta, transB: tb, m: 1, n: 300, k: 257, alpha: 2, beta: 0.5},
			gemmCase{transA: ta, transB: tb, m: 300, n: 1, k: 257, alpha: 1, beta: 0, nanC: true},
			gemmCase{transA: ta, transB: tb, m: 4, n: 300, k: 600, alpha: -1, beta: 0, nanC: true, pad: 3}, // small-m path
			gemmCase{transA: ta, transB: tb, m: 2, n: 97, k: 13, alpha: 0.5, beta: 1},
			gemmCase{transA: ta, transB: tb, m: 9, n: 64, k: 64, alpha: 1, beta: 0},  // just past the small-m path
			gemmCase{transA: ta, transB: tb, m: 8, n: 100, k: 50, alpha: 1, beta: 0}, // the largest small-m product
		)
	}
	cases = append(cases,
		gemmCase{m: 33, n: 17, k: 0, alpha: 1, beta: 0, nanC: true},  // k = 0: C = 0·C, without reading it
		gemmCase{m: 33, n: 17, k: 0, alpha: 1, beta: 0.5},            // k = 0: C = beta·C
		gemmCase{m: 33, n: 17, k: 31, alpha: 0, beta: 2, pad: 1},     // alpha = 0: C = beta·C
		gemmCase{m: 33, n: 17, k: 31, alpha: 0, beta: 0, nanC: true}, // alpha = 0, beta = 0: C = 0
		gemmCase{m: 0, n: 17, k: 31, alpha: 1, beta: 1},              // empty
		gemmCase{m: 17, n: 0, k: 31, alpha: 1, beta: 1},              // empty
		gemmCase{m: 48, n: 64, k: 64, alpha: 1, beta: 0, nanC: true}, // whole tiles only
		gemmCase{m: 17, n: 31, k: 5, alpha: -1, beta: 0, pad: 7, nanC: true},
	)
	kernels := gemmTestKernels()
	for i, tc := range cases {
		t.Run(tc.String(), func(t *testing.T) {
			f := newGemmFixture(tc, uint64(100+i))
			for _, kern := range kernels {
				t.Run(kern.name, func(t *testing.T) { f.run(t, kern, 1) })
			}
		})
	}
}

// TestSgemmThreads splits products over several goroutines, both ways:
// the static split into blocks of C and gemmShared's shared B (run it with
// -race: sizes stay modest for the race detector).
func TestSgemmThreads(t *testing.T) {
	savedMin, savedShared := gemmMinFlopsPerThread, gemmSharedMaxFlops
	defer func() { gemmMinFlopsPerThread, gemmSharedMaxFlops = savedMin, savedShared }()
	gemmMinFlopsPerThread = 1 // split whatever the size
	cases := []gemmCase{
		{m: 200, n: 150, k: 70, alpha: 1, beta: 0, nanC: true},
		{m: 37, n: 300, k: 64, alpha: 1, beta: 1, transB: true},
		{m: 300, n: 37, k: 64, alpha: 0.5, beta: 0.5, transA: true, pad: 3},
		{m: 129, n: 129, k: 129, alpha: 1, beta: 0, transA: true, transB: true},
		{m: 1, n: 1000, k: 300, alpha: 1, beta: 0},
		{m: 1000, n: 1, k: 300, alpha: 1, beta: 0},
		{m: 100, n: 70, k: 1000, alpha: 1, beta: 0.5},
	}
	kernels := gemmTestKernels()
	for i, tc := range cases {
		t.Run(tc.String(), func(t *testing.T) {
			f := newGemmFixture(tc, uint64(200+i))
			for _, kern := range kernels {
				for _, threads := range []int{2, 3, 4, 7} {
					for _, mode := range []string{"split", "shared"} {
						if mode == "shared" && !gemmUseSharedFor(kern, threads, tc) {
							continue
						}
						t.Run(fmt.Sprintf("%s/t%d/%s", kern.name, threads, mode), func(t *testing.T) {
							gemmSharedMaxFlops = 0
							if mode == "shared" {
								gemmSharedMaxFlops = math.MaxInt
							}
							f.run(t, kern, threads)
						})
					}
				}
			}
		})
	}
}

// gemmUseSharedFor says whether gemmShared runs tc when its flop bound is
// lifted.
func gemmUseSharedFor(kern *gemmKernel, threads int, tc gemmCase) bool {
	saved := gemmSharedMaxFlops
	defer func() { gemmSharedMaxFlops = saved }()
	gemmSharedMaxFlops = math.MaxInt
	return gemmUseShared(kern, threads, tc.m, tc.n, tc.k)
}

// TestSgemmPublic runs the exported entry point with each kernel forced.
func TestSgemmPublic(t *testing.T) {
	saved := gemmKern
	defer func() { gemmKern = saved }()
	tc := gemmCase{m: 70, n: 90, k: 130, alpha: 1.5, beta: 0.25, transA: true, pad: 2}
	f := newGemmFixture(tc, 9)
	for _, kern := range gemmKernels() {
		gemmKern = kern
		t.Run(kern.name, func(t *testing.T) {
			for _, threads := range []int{0, 1, 2} {
				c := append([]float32(nil), f.c0...)
				Sgemm(threads, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, f.a, f.lda, f.b, f.ldb, tc.beta, c, f.ldc)
				checkGemmResult(t, tc, f.ref, f.tol, f.c0, c, f.ldc)
			}
		})
	}
}

func TestSgemmBatched(t *testing.T) {
	saved := gemmKern
	defer func() { gemmKern = saved }()
	type batchCase struct {
		gemmCase
		batch          int
		shareA, shareB bool // stride 0: one matrix for the whole batch
	}
	cases := []batchCase{
		{gemmCase{m: 17, n: 19, k: 16, alpha: 1, beta: 0, transB: true, nanC: true}, 8, false, false}, // QKᵀ-like
		{gemmCase{m: 17, n: 16, k: 19, alpha: 1, beta: 0}, 8, false, false},                           // PV-like
		{gemmCase{m: 33, n: 40, k: 20, alpha: 0.5, beta: 1, pad: 2}, 3, true, false},
		{gemmCase{m: 150, n: 70, k: 90, alpha: 1, beta: 0, transA: true}, 2, false, true},
		{gemmCase{m: 5, n: 6, k: 7, alpha: 1, beta: 0}, 1, false, false},
		{gemmCase{m: 5, n: 6, k: 7, alpha: 1, beta: 0}, 0, false, false},
	}
	for _, kern := range gemmKernels() {
		gemmKern = kern
		for _, threads := range []int{1, 2, 3} {
			for ci, bc := range cases {
				t.Run(fmt.Sprintf("%s/t%d/batch%d/%v", kern.name, threads, bc.batch, bc.gemmCase), func(t *testing.T) {
					type mats struct {
						a, b, c, c0  []float32
						lda, ldb, ld int
					}
					var ms []mats
					var a, b, c []float32
					for i := range bc.batch {
						x := mats{}
						x.a, x.lda, x.b, x.ldb, x.c, x.ld = gemmOperands(bc.gemmCase, uint64(300+10*ci+i))
						if bc.shareA && i > 0 {
							x.a = ms[0].a
						}
						if bc.shareB && i > 0 {
							x.b = ms[0].b
						}
						x.c0 = append([]float32(nil), x.c...)
						ms = append(ms, x)
						if !bc.shareA || i == 0 {
							a = append(a, x.a...)
						}
						if !bc.shareB || i == 0 {
							b = append(b, x.b...)
						}
						c = append(c, x.c...)
					}
					var sa, sb, sc, lda, ldb, ldc int
					if bc.batch > 0 {
						lda, ldb, ldc = ms[0].lda, ms[0].ldb, ms[0].ld
						sa, sb, sc = len(ms[0].a), len(ms[0].b), len(ms[0].c)
					} else {
						lda, ldb, ldc = bc.k, bc.n, bc.n
					}
					if bc.shareA {
						sa = 0
					}
					if bc.shareB {
						sb = 0
					}
					SgemmBatched(threads, bc.transA, bc.transB, bc.batch, bc.m, bc.n, bc.k, bc.alpha, a, sa, lda, b, sb, ldb, bc.beta, c, sc, ldc)
					for i, x := range ms {
						ref, tol := gemmReference(bc.gemmCase, x.a, x.lda, x.b, x.ldb, x.c0, x.ld)
						checkGemmResult(t, bc.gemmCase, ref, tol, x.c0, c[i*sc:], ldc)
					}
				})
			}
		}
	}
}

// TestSgemmBatchedEmpty runs batches of empty products whose operands are
// shorter than batch·stride: nothing is read, so nothing may panic.
func TestSgemmBatchedEmpty(t *testing.T) {
	c := []float32{7, 7, 7, 7, 7, 7}
	SgemmBatched(2, false, false, 3, 0, 2, 4, 1, nil, 8, 4, make([]float32, 8), 0, 2, 0, nil, 4, 2) // m = 0
	SgemmBatched(2, false, false, 3, 1, 2, 0, 1, nil, 8, 1, nil, 8, 2, 0, c, 2, 2)                  // k = 0: C = 0
	for i, v := range c {
		if v != 0 {
			t.Fatalf("k = 0, beta = 0: c[%d] = %g, want 0", i, v)
		}
	}
}

func TestSgemmPanics(t *testing.T) {
	buf := make([]float32, 100)
	cases := []struct {
		name string
		fn   func()
		want string
	}{
		{"negative m", func() { Sgemm(1, false, false, -1, 2, 2, 1, buf, 2, buf, 2, 0, buf, 2) }, "negative size"},
		{"lda too small", func() { Sgemm(1, false, false, 2, 2, 3, 1, buf, 2, buf, 2, 0, buf, 2) }, "lda = 2 < max(1, 3)"},
		{"lda too small transposed", func() { Sgemm(1, true, false, 4, 2, 3, 1, buf, 3, buf, 2, 0, buf, 2) }, "lda = 3 < max(1, 4)"},
		{"ldb too small", func() { Sgemm(1, false, true, 2, 2, 3, 1, buf, 3, buf, 2, 0, buf, 2) }, "ldb = 2 < max(1, 3)"},
		{"ldc too small", func() { Sgemm(1, false, false, 2, 5, 3, 1, buf, 3, buf, 5, 0, buf, 4) }, "ldc = 4 < max(1, 5)"},
		{"short a", func() { Sgemm(1, false, false, 10, 2, 11, 1, buf, 11, buf, 2, 0, buf, 2) }, "len(a) = 100 < 110"},
		{"short b", func() { Sgemm(1, false, false, 2, 10, 11, 1, buf, 11, buf, 10, 0, buf, 10) }, "len(b) = 100 < 110"},
		{"short c", func() { Sgemm(1, false, false, 11, 10, 1, 1, buf, 1, buf, 10, 0, buf, 10) }, "len(c) = 100 < 110"},
		{"negative batch", func() { SgemmBatched(1, false, false, -1, 2, 2, 2, 1, buf, 4, 2, buf, 4, 2, 0, buf, 4, 2) }, "negative batch"},
		{"negative stride", func() { SgemmBatched(1, false, false, 2, 2, 2, 2, 1, buf, -4, 2, buf, 4, 2, 0, buf, 4, 2) }, "negative stride"},
		{"short batch", func() { SgemmBatched(1, false, false, 30, 2, 2, 2, 1, buf, 4, 2, buf, 4, 2, 0, buf, 4, 2) }, "len(a)"},
		{"overlapping C", func() { SgemmBatched(1, false, false, 2, 2, 2, 2, 1, buf, 4, 2, buf, 4, 2, 0, buf, 3, 2) }, "overlap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("no panic, want one containing %q", tc.want)
				}
				if msg := fmt.Sprint(r); !strings.Contains(msg, tc.want) {
					t.Fatalf("panic %q, want one containing %q", msg, tc.want)
				}
			}()
			tc.fn()
		})
	}
}

func TestGemmSplit(t *testing.T) {
	cases := []struct{ threads, m, n, tm, tn int }{
		{2, 1024, 1024, 2, 1},
		{2, 12, 1024, 1, 2}, // one row of tiles: split the columns
		{4, 1024, 1024, 2, 2},
		{4, 4096, 64, 4, 1},
		{8, 12, 32, 1, 1}, // a single tile
		{3, 1000, 10, 3, 1},
	}
	for _, tc := range cases {
		tm, tn := gemmSplit(tc.threads, tc.m, tc.n, 12, 32)
		if tm != tc.tm || tn != tc.tn {
			t.Errorf("gemmSplit(%d, %d, %d) = %d×%d, want %d×%d", tc.threads, tc.m, tc.n, tm, tn, tc.tm, tc.tn)
		}
	}
}

func TestAlignedFloats(t *testing.T) {
	for n := range 40 {
		x := alignedFloats(n + 1)
		if p := uintptrOf(&x[0]); p%64 != 0 || len(x) != n+1 {
			t.Fatalf("alignedFloats(%d): address %#x, len %d", n+1, p, len(x))
		}
	}
}

func uintptrOf(p *float32) uintptr { return uintptr(unsafe.Pointer(p)) }

// TestSgemmColumnChunks checks that splitting n into chunks gives
// bit-identical results: every element of C gets the same arithmetic
// wherever its column falls (streaming operators, such as a causal
// convolution fed in chunks, rely on it).
func TestSgemmColumnChunks(t *testing.T) {
	for _, kern := range gemmTestKernels() {
		for _, m := range []int{1, 3, 8, 20} {
			for _, transB := range []bool{false, true} {
				tc := gemmCase{m: m, n: 100, k: 45, alpha: 1, beta: 0, transB: transB}
				t.Run(fmt.Sprintf("%s/%v", kern.name, tc), func(t *testing.T) {
					a, lda, b, ldb, _, _ := gemmOperands(tc, 11)
					whole := make([]float32, m*tc.n)
					sgemm(kern, 1, false, transB, m, tc.n, tc.k, 1, a, lda, b, ldb, 0, whole, tc.n)
					chunks := make([]float32, m*tc.n)
					for c0 := 0; c0 < tc.n; {
						w := min(37, tc.n-c0)
						bOff := c0
						if transB {
							bOff = c0 * ldb
						}
						sgemm(kern, 1, false, transB, m, w, tc.k, 1, a, lda, b[bOff:], ldb, 0, chunks[c0:], tc.n)
						c0 += w
					}
					for i := range whole {
						if math.Float32bits(whole[i]) != math.Float32bits(chunks[i]) {
							t.Fatalf("C[%d][%d] = %g whole, %g in chunks", i/tc.n, i%tc.n, whole[i], chunks[i])
						}
					}
				})
			}
		}
	}
}

// TestSgemmRowsIndependent checks that within the small-m path a row of C
// is bit-identical whether computed alone or beside others (up to
// gemmSmallMaxM rows): callers that batch decode rows rely on it.
func TestSgemmRowsIndependent(t *testing.T) {
	for _, kern := range gemmKernels() {
		if !gemmUseSmall(kern, 1) {
			continue
		}
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				tc := gemmCase{m: gemmSmallMaxM, n: 70, k: 45, alpha: 0.5, beta: 0, transA: transA, transB: transB}
				t.Run(fmt.Sprintf("%s/%v", kern.name, tc), func(t *testing.T) {
					a, lda, b, ldb, _, _ := gemmOperands(tc, 13)
					for m := 1; m <= gemmSmallMaxM; m++ {
						got := make([]float32, m*tc.n)
						sgemm(kern, 1, transA, transB, m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, 0, got, tc.n)
						for i := range m {
							aOff := i * lda
							if transA {
								aOff = i
							}
							alone := make([]float32, tc.n)
							sgemm(kern, 1, transA, transB, 1, tc.n, tc.k, tc.alpha, a[aOff:], lda, b, ldb, 0, alone, tc.n)
							for j, v := range alone {
								if math.Float32bits(v) != math.Float32bits(got[i*tc.n+j]) {
									t.Fatalf("m=%d: C[%d][%d] = %g, alone %g", m, i, j, got[i*tc.n+j], v)
								}
							}
						}
					}
				})
			}
		}
	}
}
