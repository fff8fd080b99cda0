package cpu

// Products with few rows of C (m <= gemmSmallMaxM): a decode step's
// x·Wᵀ or x·W, where the packed path would pad m to mr rows (12× the work
// for m = 1) and copy all of W through the packing buffers. These are
// matrix-vector products bound by reading B once from memory; the small-m
// path streams B in place instead, with two AVX2 routines:
//
//   - B transposed (W stored n×k, as torch's Linear stores it): each C
//     element is a dot product of two contiguous rows; dot4 does four rows
//     of W against one row of A at a time.
//   - B as is (W stored k×n): each row of C is a sum of rows of W scaled by
//     A's values; axpy32 keeps 32 columns of C in registers while it runs
//     down gemmSmallKB rows of W (see gemmSmallN).
//
// Both first set C = beta·C, then add alpha·op(A)·op(B) into it.
//
// Measured on Zen 4 (4096×4096 W, filled: untouched pages would all read
// the zero page from cache), one thread, GB/s of W: m = 1, W k×n: 26
// (packed path 8; OpenBLAS sgemv 32); m = 1, W n×k: 23 (packed 6; OpenBLAS
// 25). Each row of A is a pass over W (from L2 after the first), so the
// cost grows with m: at m = 8 the small-m path still runs at 8 GB/s against
// the packed path's 5, whose cost hardly changes up to m = mr = 12.

const (
	gemmSmallMaxM = 8
	gemmSmallKB   = 8
)

// gemmUseSmall says whether the small-m path runs the product.
func gemmUseSmall(kern *gemmKernel, m int) bool {
	return m <= gemmSmallMaxM && kern.dot4 != nil && kern.axpy32 != nil
}

func gemmSmall(kern *gemmKernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	scaleC(m, n, beta, c, ldc)
	threads = min(threads, max(1, 2*m*n*k/gemmMinFlopsPerThread))
	if !transB {
		if threads == 1 {
			gemmSmallN(kern, transA, m, 0, n, k, alpha, a, lda, b, ldb, c, ldc)
			return
		}
		// Split the columns in whole 32-column strips.
		units := (n + 31) / 32
		ParallelFor(threads, units, 1, func(lo, hi int) {
			gemmSmallN(kern, transA, m, lo*32, min(hi*32, n), k, alpha, a, lda, b, ldb, c, ldc)
		})
		return
	}
	// The rows of op(A), contiguous: gathered once when A is transposed.
	var xsArr [gemmSmallMaxM][]float32 // (escapes: one small allocation a call)
	xs := xsArr[:m]
	var buf *gemmBuf
	if transA {
		buf = getGemmBuf()
		defer putGemmBuf(buf)
		buf.a = atLeast(buf.a, m*k)
	}
	for i := range m {
		if transA {
			x := buf.a[i*k : i*k+k]
			for p := range x {
				x[p] = a[p*lda+i]
			}
			xs[i] = x
		} else {
			xs[i] = a[i*lda : i*lda+k]
		}
	}
	if threads == 1 {
		gemmSmallT(kern, xs, 0, n, k, alpha, b, ldb, c, ldc)
		return
	}
	units := (n + 3) / 4
	ParallelFor(threads, units, 1, func(lo, hi int) {
		gemmSmallT(kern, xs, lo*4, min(hi*4, n), k, alpha, b, ldb, c, ldc)
	})
}

// gemmSmallN adds alpha·op(A)·B to columns [j0, j1) of C, B stored k×n.
// It takes gemmSmallKB rows of B at a time across all the columns: each
// row is read from start to end, gemmSmallKB streams at once, few enough
// for the hardware prefetchers to follow (8 rows: 26 GB/s at m = 1; 16
// rows: 21; 32 rows: 14; 256 rows by 256 columns: 8).
func gemmSmallN(kern *gemmKernel, transA bool, m, j0, j1, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	// Scratch from the pool: arrays on the stack would escape to the heap,
	// as the routines are called through a func value.
	buf := getGemmBuf()
	defer putGemmBuf(buf)
	buf.small = atLeast(buf.small, gemmSmallKB+gemmSmallKB*32+32)
	coef := buf.small[:gemmSmallKB]
	bt := buf.small[gemmSmallKB : gemmSmallKB+gemmSmallKB*32] // a ragged strip of B, zero-padded
	ct := buf.small[gemmSmallKB+gemmSmallKB*32:][:32]         // and of C
	clear(bt)
	cols := j1 - j0
	strips := cols / 32
	for pc := 0; pc < k; pc += gemmSmallKB {
		kb := min(gemmSmallKB, k-pc)
		for i := range m {
			for p := range kb {
				if transA {
					coef[p] = alpha * a[(pc+p)*lda+i]
				} else {
					coef[p] = alpha * a[i*lda+pc+p]
				}
			}
			crow := c[i*ldc+j0 : i*ldc+j1]
			if strips > 0 {
				// The assembly reads b[(pc+p)·ldb + j0 + j] for p < kb,
				// j < 32·strips, and writes crow[:32·strips].
				_ = b[(pc+kb-1)*ldb+j0+32*strips-1]
				kern.axpy32(kb, &coef[0], &b[pc*ldb+j0], ldb, &crow[0], strips)
			}
			if rem := cols - 32*strips; rem > 0 {
				// The last columns go through a zero-padded strip, so
				// that every column gets the same arithmetic (fused
				// multiply-adds in the same order) wherever it falls:
				// callers that split n into chunks (a streaming
				// convolution) get bit-identical results.
				j := j0 + 32*strips
				for p := range kb {
					copy(bt[p*32:p*32+rem], b[(pc+p)*ldb+j:(pc+p)*ldb+j+rem])
				}
				copy(ct[:rem], crow[32*strips:])
				kern.axpy32(kb, &coef[0], &bt[0], 32, &ct[0], 1)
				copy(crow[32*strips:], ct[:rem])
			}
		}
	}
}

// gemmSmallT adds alpha·X·Wᵀ to columns [j0, j1) of C, where X's rows are
// xs and W = b is stored n×k.
func gemmSmallT(kern *gemmKernel, xs [][]float32, j0, j1, k int, alpha float32, b []float32, ldb int, c []float32, ldc int) {
	k8 := k &^ 7
	buf := getGemmBuf()
	defer putGemmBuf(buf)
	buf.small = atLeast(buf.small, 32)
	out := buf.small[:32]
	for j := j0; j < j1; j += 4 {
		rows := min(4, j1-j)
		for i, x := range xs {
			for r := 0; r < rows; {
				// Four rows of W at once; past the last whole group, one
				// row at a time (ldw = 0 reads that row four times).
				ldw, step := ldb, 4
				if rows < 4 {
					ldw, step = 0, 1
				}
				row := j + r
				if k8 > 0 {
					_ = b[(row+(step-1))*ldb+k8-1]
					kern.dot4(k8, &x[0], &b[row*ldb], ldw, &out[0])
				} else {
					clear(out)
				}
				for q := range step {
					var s float32
					for _, v := range out[8*q : 8*q+8] {
						s += v
					}
					w := b[(row+q)*ldb : (row+q)*ldb+k]
					for p := k8; p < k; p++ {
						s += x[p] * w[p]
					}
					c[i*ldc+row+q] += alpha * s
				}
				r += step
			}
		}
	}
}
