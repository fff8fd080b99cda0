package cpu

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on row-major float32
// matrices, where op(X) is X, or Xᵀ when the matching trans flag is set.
// op(A) is m×k, op(B) is k×n and C is m×n; lda, ldb and ldc are the row
// strides (in elements) of the matrices as stored, as in BLAS. threads <= 0
// means Threads(). With beta == 0, C is only written, never read, so it may
// hold NaNs or garbage.
//
// Sgemm panics on programmer errors: negative sizes, a leading dimension
// smaller than the stored row, or a slice too short for its matrix.
func Sgemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("Sgemm", true, transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	sgemm(gemmKern, threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SgemmBatched computes batch independent products
// C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i], where matrix i of X starts at
// x[i*strideX] (the layout of attention's per-head QKᵀ and PV). A stride of
// 0 for A or B reuses one matrix for every product; the C matrices must not
// overlap. Small matrices in large batches are spread over the threads one
// whole product at a time; otherwise each product uses every thread.
func SgemmBatched(threads int, transA, transB bool, batch, m, n, k int, alpha float32, a []float32, strideA, lda int, b []float32, strideB, ldb int, beta float32, c []float32, strideC, ldc int) {
	if batch < 0 {
		panic(fmt.Sprintf("cpu.SgemmBatched: negative batch %d", batch))
	}
	if strideA < 0 || strideB < 0 || strideC < 0 {
		panic(fmt.Sprintf("cpu.SgemmBatched: negative stride (strideA=%d strideB=%d strideC=%d)", strideA, strideB, strideC))
	}
	if batch == 0 {
		checkGemm("SgemmBatched", false, transA, transB, m, n, k, nil, lda, nil, ldb, nil, ldc)
		return
	}
	last := batch - 1
	checkGemm("SgemmBatched", true, transA, transB, m, n, k,
		tail(a, last*strideA), lda, tail(b, last*strideB), ldb, tail(c, last*strideC), ldc)
	if batch > 1 && m > 0 && n > 0 && strideC < (m-1)*ldc+n {
		panic(fmt.Sprintf("cpu.SgemmBatched: C matrices overlap: strideC %d < (m-1)·ldc+n = %d", strideC, (m-1)*ldc+n))
	}
	if threads <= 0 {
		threads = Threads()
	}
	flops := 2 * m * n * k
	// Whole products per goroutine when there are enough of them to keep
	// every thread busy with little imbalance, or when each product is too
	// small to be worth splitting (see gemmMinFlopsPerThread). tail keeps
	// the slicing safe where an empty operand (m, n or k = 0) has a short
	// slice.
	if threads > 1 && batch >= threads && (batch%threads == 0 || batch >= 4*threads || flops < 4*gemmMinFlopsPerThread) {
		ParallelFor(threads, batch, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				sgemm(gemmKern, 1, transA, transB, m, n, k, alpha, tail(a, i*strideA), lda, tail(b, i*strideB), ldb, beta, tail(c, i*strideC), ldc)
			}
		})
		return
	}
	for i := range batch {
		sgemm(gemmKern, threads, transA, transB, m, n, k, alpha, tail(a, i*strideA), lda, tail(b, i*strideB), ldb, beta, tail(c, i*strideC), ldc)
	}
}

// tail returns x[off:], or nil when x is too short: checkGemm then reports
// the short slice, or the matrix is empty and never read.
func tail(x []float32, off int) []float32 {
	if off > len(x) {
		return nil
	}
	return x[off:]
}

// checkGemm validates sizes and leading dimensions, and with checkLen the
// slice lengths too.
func checkGemm(fn string, checkLen, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("cpu.%s: negative size m=%d n=%d k=%d", fn, m, n, k))
	}
	check := func(name string, rows, cols int, x []float32, ld int) {
		if ld < max(1, cols) {
			panic(fmt.Sprintf("cpu.%s: ld%s = %d < max(1, %d), the columns of %s as stored", fn, name, ld, cols, name))
		}
		if checkLen && rows > 0 && cols > 0 {
			if need := (rows-1)*ld + cols; len(x) < need {
				panic(fmt.Sprintf("cpu.%s: len(%s) = %d < %d, needed by a %d×%d matrix with ld%s = %d", fn, name, len(x), need, rows, cols, name, ld))
			}
		}
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	check("a", ar, ac, a, lda)
	check("b", br, bc, b, ldb)
	check("c", m, n, c, ldc)
}

// gemmKernel is a micro-kernel: it computes the mr×nr tile
// C = alpha·Ã·B̃ + beta·C from a packed mr×k panel of A (column by column:
// mr values per k) and a packed k×nr panel of B (row by row: nr values per
// k). With beta == 0 it does not read C.
type gemmKernel struct {
	name   string
	mr, nr int
	fn     func(k int, a, b, c *float32, ldc int, alpha, beta float32)
	// asmPack says the packing routines may use assembly (the pure-Go
	// kernel packs in pure Go, so that forcing it tests only Go code).
	asmPack bool
	// The small-m path's routines (see gemm_small.go), nil where there
	// are none: dot4 sets out[8r:8r+8] to partial sums of x·w[r·ldw:] for
	// r < 4 over k values (a multiple of 8); axpy32 adds
	// Σ_p coef[p]·b[p·ldb:] to c, 32 columns at a time.
	dot4   func(k int, x, w *float32, ldw int, out *float32)
	axpy32 func(kb int, coef, b *float32, ldb int, c *float32, strips int)
	// The same for two rows of A and C at once, sharing the loads of B,
	// with the same arithmetic for each row as dot4 and axpy32 (so that a
	// row's result does not depend on the rows beside it): dot4x2 leaves
	// the sums of x row q with w row r in out[8(4q+r):], axpy32x2 takes
	// coef[2p+r] for C row r.
	dot4x2   func(k int, x *float32, ldx int, w *float32, ldw int, out *float32)
	axpy32x2 func(kb int, coef, b *float32, ldb int, c *float32, ldc int, strips int)
	// Cache blocking, in elements (see gemm_amd64.go for how they were
	// chosen): kc is the depth of the packed panels, nc the width of the
	// packed block of B that stays in L2, mc the height of the packed
	// block of A that stays in L3.
	kc, nc, mc int
}

// gemmKern is the kernel Sgemm uses: the best the CPU supports. Tests swap
// it to exercise every path.
var gemmKern = bestGemmKernel()

// gemmMinFlopsPerThread is the least work worth a goroutine of its own:
// 8 Mflop, ~80 µs on one core. Starting a goroutine costs the caller a few
// µs, and the goroutine itself may start 15–100 µs later when it has to
// wake an idle thread (measured on a 2-vCPU KVM guest, where waking a
// halted vCPU goes through the hypervisor), so a smaller share of a product
// can be done by the caller before the helper arrives. A var so that tests
// can split small products.
var gemmMinFlopsPerThread = 1 << 23

func sgemm(kern *gemmKernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	if threads <= 0 {
		threads = Threads()
	}
	threads = min(threads, max(1, 2*m*n*k/gemmMinFlopsPerThread))
	if gemmUseSmall(kern, m) {
		gemmSmall(kern, threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if threads > 1 && gemmUseShared(kern, threads, m, n, k) {
		gemmShared(kern, threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	tm, tn := gemmSplit(threads, m, n, kern.mr, kern.nr)
	if tm*tn == 1 {
		buf := getGemmBuf()
		gemmSerial(kern, buf, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		putGemmBuf(buf)
		return
	}
	// Each goroutine computes its own block of C with its own packing
	// buffers: no synchronization, at the cost of packing A tn times and B
	// tm times in all (gemmSplit keeps that small).
	rowsPer := roundUp((m+tm-1)/tm, kern.mr)
	colsPer := roundUp((n+tn-1)/tn, kern.nr)
	ParallelFor(tm*tn, tm*tn, 1, func(lo, hi int) {
		buf := getGemmBuf()
		defer putGemmBuf(buf)
		for t := lo; t < hi; t++ {
			r0, c0 := (t/tn)*rowsPer, (t%tn)*colsPer
			if r0 >= m || c0 >= n {
				continue
			}
			r1, c1 := min(r0+rowsPer, m), min(c0+colsPer, n)
			aOff, bOff := r0*lda, c0
			if transA {
				aOff = r0
			}
			if transB {
				bOff = c0 * ldb
			}
			gemmSerial(kern, buf, transA, transB, r1-r0, c1-c0, k, alpha, a[aOff:], lda, b[bOff:], ldb, beta, c[r0*ldc+c0:], ldc)
		}
	})
}

// gemmSharedMaxFlops bounds the products gemmShared runs (see
// gemmUseShared); a var so that tests can send every product there.
var gemmSharedMaxFlops = 1 << 26

// gemmUseShared says whether gemmShared should run a parallel product:
// when it is small enough for the start-up of the goroutines to matter
// (2·m·n·k up to gemmSharedMaxFlops, ~0.6 ms on one core), there are at
// least two row blocks per goroutine, and the packed B fits in one core's
// L2 (1 MiB). Measured on Zen 4 with 2 threads: 256³ runs at 140 GFLOP/s
// shared against 120 split, while from 384³ on, where B no longer fits
// L2 beside the rest, the static split is faster (178 against 134).
func gemmUseShared(kern *gemmKernel, threads, m, n, k int) bool {
	return 2*m*n*k <= gemmSharedMaxFlops &&
		(m+kern.mr-1)/kern.mr >= 2*threads &&
		roundUp(n, kern.nr)*roundUp(k, 8) <= 1<<18
}

// gemmSplit picks a tm×tn grid of blocks of C, tm·tn <= threads, that keeps
// every block at least one micro-tile and minimizes the duplicated packing
// (A is packed once per block column, B once per block row).
func gemmSplit(threads, m, n, mr, nr int) (tm, tn int) {
	tilesM, tilesN := (m+mr-1)/mr, (n+nr-1)/nr
	threads = min(threads, tilesM*tilesN)
	bestCost := -1
	tm, tn = 1, 1
	for t := threads; t >= 1 && bestCost < 0; t-- {
		for i := 1; i <= t; i++ {
			if t%i != 0 {
				continue
			}
			j := t / i
			if i > tilesM || j > tilesN {
				continue
			}
			cost := j*m + i*n
			if bestCost < 0 || cost <= bestCost { // ties: split rows, each goroutine then owns whole rows of C
				bestCost, tm, tn = cost, i, j
			}
		}
	}
	return tm, tn
}

// scaleC sets C = beta·C, without reading C when beta == 0.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// gemmBuf holds one goroutine's packing buffers, 64-byte aligned so that
// the micro-kernels' panel loads never split a cache line. They are sized
// for the product at hand (a small product does not pay for the largest
// blocks) and kept for the next one in gemmBufPool.
type gemmBuf struct {
	a, b  []float32
	tile  []float32 // an mr×nr tile for the ragged edges of C
	small []float32 // the small-m path's scratch
}

var gemmBufPool = sync.Pool{New: func() any { return new(gemmBuf) }}

func getGemmBuf() *gemmBuf    { return gemmBufPool.Get().(*gemmBuf) }
func putGemmBuf(buf *gemmBuf) { gemmBufPool.Put(buf) }

// atLeast returns x if it holds n values, or a new aligned slice that does.
func atLeast(x []float32, n int) []float32 {
	if len(x) >= n {
		return x
	}
	return alignedFloats(n)
}

// alignedFloats returns n float32s starting on a 64-byte boundary.
func alignedFloats(n int) []float32 {
	s := make([]float32, n+16)
	off := int(uintptr(unsafe.Pointer(&s[0])) & 63 / 4)
	if off != 0 {
		off = 16 - off
	}
	return s[off : off+n : off+n]
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }

// evenBlock returns a block size <= max that splits total into equal
// blocks, rounded up to a multiple of align, so that no last block is a
// thin sliver (k = 400 with kc = 384 runs as 2×200, not 384 + 16).
func evenBlock(total, maxBlock, align int) int {
	if total <= maxBlock {
		return total
	}
	blocks := (total + maxBlock - 1) / maxBlock
	return min(maxBlock, roundUp((total+blocks-1)/blocks, align))
}

// gemmSerial is the single-threaded blocked product, in BLIS's loop order
// (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly Instantiating
// BLAS Functionality", 2015) with the roles written for row-major C:
//
//	for each mc-row block of A (L3):
//	  for each kc-deep slice:          pack A block (mc×kc)
//	    for each nc-column block of B: pack B block (kc×nc, stays in L2)
//	      gemmMacro:
//	      for each mr-row micro-panel of A (stays in L1):
//	        for each nr-column micro-panel of B (streams from L2):
//	          micro-kernel: mr×nr tile of C += Ã·B̃
func gemmSerial(kern *gemmKernel, buf *gemmBuf, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	kc := evenBlock(k, kern.kc, 8)
	mc := evenBlock(m, kern.mc, mr)
	nc := evenBlock(n, kern.nc, nr)
	buf.a = atLeast(buf.a, roundUp(mc, mr)*kc)
	buf.b = atLeast(buf.b, roundUp(nc, nr)*kc)
	buf.tile = atLeast(buf.tile, mr*nr)
	for i3 := 0; i3 < m; i3 += mc {
		mb := min(mc, m-i3)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			bet := beta
			if pc > 0 {
				bet = 1
			}
			packA(buf.a, mr, kern.asmPack, transA, a, lda, i3, mb, pc, kb)
			for jc := 0; jc < n; jc += nc {
				nb := min(nc, n-jc)
				packB(buf.b, nr, kern.asmPack, transB, b, ldb, pc, kb, jc, nb)
				gemmMacro(kern, buf.a, buf.b, mb, nb, kb, alpha, bet, c[i3*ldc+jc:], ldc, buf.tile)
			}
		}
	}
}

// gemmMacro multiplies a packed mb×kb block of A by a packed kb×nb block of
// B into C (C = alpha·Ã·B̃ + beta·C), one micro-tile at a time. Tiles on the
// ragged right and bottom edges go through tile (mr×nr) and are copied.
func gemmMacro(kern *gemmKernel, pa, pb []float32, mb, nb, kb int, alpha, beta float32, c []float32, ldc int, tile []float32) {
	mr, nr := kern.mr, kern.nr
	for ir := 0; ir < mb; ir += mr {
		rows := min(mr, mb-ir)
		a := &pa[ir*kb]
		for jr := 0; jr < nb; jr += nr {
			cols := min(nr, nb-jr)
			b := &pb[jr*kb]
			ci := ir*ldc + jr
			if rows == mr && cols == nr {
				kern.fn(kb, a, b, &c[ci], ldc, alpha, beta)
				continue
			}
			kern.fn(kb, a, b, &tile[0], nr, 1, 0)
			for r := range rows {
				dst := c[ci+r*ldc : ci+r*ldc+cols]
				src := tile[r*nr : r*nr+cols]
				if beta == 0 {
					for j := range dst {
						dst[j] = alpha * src[j]
					}
				} else {
					for j := range dst {
						dst[j] = alpha*src[j] + beta*dst[j]
					}
				}
			}
		}
	}
}

// gemmShared is the parallel product for small problems, where starting
// the goroutines is not negligible: waking an idle thread takes from ~15 µs
// to ~100 µs on a virtual machine, a large share of a 200 µs product, so a
// static split leaves the caller's half done long before the late half.
// Here the caller packs all of B once (the helpers wait for it while they
// wake up) and then every goroutine takes row blocks of C from a shared
// counter, packing its own rows of A: a late goroutine just takes fewer
// blocks, and B is packed once instead of once per goroutine.
func gemmShared(kern *gemmKernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	kc := evenBlock(k, kern.kc, 8)
	nc := evenBlock(n, kern.nc, nr)
	nR := roundUp(n, nr)
	// Row blocks: about four per goroutine, for balance, in whole micro-panels.
	tilesM := (m + mr - 1) / mr
	rowsPer := mr * max(1, tilesM/(4*threads))
	blocks := (m + rowsPer - 1) / rowsPer
	shared := getGemmBuf()
	defer putGemmBuf(shared)
	shared.b = atLeast(shared.b, ((k+kc-1)/kc)*kc*nR)
	pb := shared.b
	var ready atomic.Bool
	var next atomic.Int64
	ParallelFor(threads, threads, 1, func(lo, _ int) {
		if lo == 0 {
			for pc, blk := 0, 0; pc < k; pc, blk = pc+kc, blk+1 {
				packB(pb[blk*kc*nR:], nr, kern.asmPack, transB, b, ldb, pc, min(kc, k-pc), 0, n)
			}
			ready.Store(true)
		} else {
			for !ready.Load() {
				runtime.Gosched()
			}
		}
		buf := getGemmBuf()
		defer putGemmBuf(buf)
		buf.a = atLeast(buf.a, roundUp(rowsPer, mr)*kc)
		buf.tile = atLeast(buf.tile, mr*nr)
		for {
			i := int(next.Add(1) - 1)
			if i >= blocks {
				return
			}
			r0 := i * rowsPer
			mb := min(rowsPer, m-r0)
			for pc, blk := 0, 0; pc < k; pc, blk = pc+kc, blk+1 {
				kb := min(kc, k-pc)
				bet := beta
				if pc > 0 {
					bet = 1
				}
				packA(buf.a, mr, kern.asmPack, transA, a, lda, r0, mb, pc, kb)
				bblk := pb[blk*kc*nR:]
				for jc := 0; jc < n; jc += nc {
					// Within a k-slice, the panels of B for columns
					// [jc, jc+nb) start at jc·kb: jc is a multiple of nr.
					gemmMacro(kern, buf.a, bblk[jc*kb:], mb, min(nc, n-jc), kb, alpha, bet, c[r0*ldc+jc:], ldc, buf.tile)
				}
			}
		}
	})
}

// SgemmKernel names the micro-kernel Sgemm runs on this CPU: "avx512",
// "avx2" or "generic" (pure Go).
func SgemmKernel() string { return gemmKern.name }
