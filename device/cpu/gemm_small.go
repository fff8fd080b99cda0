package cpu

// Products with few rows of C (m <= gemmSmallMaxM): a decode step's
// x·Wᵀ or x·W, where the packed path would pad m to mr rows (12× the work
// for m = 1) and copy all of W through the packing buffers. These are
// matrix-vector products bound by reading B once from memory; the small-m
// path streams B in place instead, with two AVX2 routines:
//
//   - B transposed (W stored n×k, as torch's Linear stores it): each C
//     element is a dot product of two contiguous rows; dot4x2 does four
//     rows of W against two rows of A at a time.
//   - B as is (W stored k×n): each row of C is a sum of rows of W scaled by
//     A's values; axpy32x2 keeps 32 columns of two rows of C in registers
//     while it runs down gemmSmallKB rows of W (see gemmSmallN).
//
// Both first set C = beta·C, then add alpha·op(A)·op(B) into it.
//
// Measured on Zen 4 (4096×4096 W, filled: untouched pages would all read
// the zero page from cache), one thread, GB/s of W: m = 1, W k×n: 26
// (packed path 8; OpenBLAS sgemv 32); m = 1, W n×k: 23 (packed 6; OpenBLAS
// 25). Each pair of rows of A is a pass over W (from L2 after the first),
// so the cost grows with m: at m = 8 the small-m path runs at 11 (W k×n)
// and 10 (W n×k) GB/s against the packed path's 5, whose cost hardly
// changes up to m = mr = 12.

const (
	gemmSmallMaxM = 8
	gemmSmallKB   = 8
)

// gemmUseSmall says whether the small-m path runs the product.
func gemmUseSmall(kern *gemmKernel, m int) bool {
	return m <= gemmSmallMaxM && kern.dot4 != nil && kern.axpy32 != nil && kern.dot4x2 != nil && kern.axpy32x2 != nil
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
	// The rows of op(A), contiguous, ldx apart: gathered once when A is
	// transposed.
	x, ldx := a, lda
	if transA {
		buf := getGemmBuf()
		defer putGemmBuf(buf)
		buf.a = atLeast(buf.a, m*k)
		x, ldx = buf.a[:m*k], k
		for i := range m {
			xi := x[i*k : i*k+k]
			for p := range xi {
				xi[p] = a[p*lda+i]
			}
		}
	}
	if threads == 1 {
		gemmSmallT(kern, m, x, ldx, 0, n, k, alpha, b, ldb, c, ldc)
		return
	}
	units := (n + 3) / 4
	ParallelFor(threads, units, 1, func(lo, hi int) {
		gemmSmallT(kern, m, x, ldx, lo*4, min(hi*4, n), k, alpha, b, ldb, c, ldc)
	})
}

// gemmSmallN adds alpha·op(A)·B to columns [j0, j1) of C, B stored k×n,
// two rows of C at a time. It takes gemmSmallKB rows of B at a time across
// all the columns: each row is read from start to end, gemmSmallKB streams
// at once, few enough for the hardware prefetchers to follow (8 rows: 26
// GB/s at m = 1; 16 rows: 21; 32 rows: 14; 256 rows by 256 columns: 8).
func gemmSmallN(kern *gemmKernel, transA bool, m, j0, j1, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	const kbMax = gemmSmallKB
	// Scratch from the pool: arrays on the stack would escape to the heap,
	// as the routines are called through a func value.
	buf := getGemmBuf()
	defer putGemmBuf(buf)
	buf.small = atLeast(buf.small, 2*kbMax+32*kbMax+64)
	coef := buf.small[:2*kbMax]                 // alpha·A, interleaved by row
	bt := buf.small[2*kbMax : 2*kbMax+32*kbMax] // the ragged strip of B, zero-padded
	ct := buf.small[2*kbMax+32*kbMax:][:64]     // and of two rows of C
	clear(bt)
	cols := j1 - j0
	strips := cols / 32
	rem := cols - 32*strips
	jr := j0 + 32*strips
	for pc := 0; pc < k; pc += kbMax {
		kb := min(kbMax, k-pc)
		if rem > 0 {
			// The last columns go through a zero-padded strip, so that
			// every column gets the same arithmetic (fused multiply-adds in
			// the same order) wherever it falls: callers that split n into
			// chunks (a streaming convolution) get bit-identical results.
			for p := range kb {
				copy(bt[p*32:p*32+rem], b[(pc+p)*ldb+jr:(pc+p)*ldb+jr+rem])
			}
		}
		for i := 0; i < m; {
			rows := min(2, m-i)
			for p := range kb {
				for r := range rows {
					if transA {
						coef[rows*p+r] = alpha * a[(pc+p)*lda+i+r]
					} else {
						coef[rows*p+r] = alpha * a[(i+r)*lda+pc+p]
					}
				}
			}
			ci := i*ldc + j0
			if strips > 0 {
				// The assembly reads b[(pc+p)·ldb + j0 + j] for p < kb,
				// j < 32·strips, and writes those columns of rows i, i+rows-1.
				_ = b[(pc+kb-1)*ldb+j0+32*strips-1]
				_ = c[ci+(rows-1)*ldc+32*strips-1]
				if rows == 2 {
					kern.axpy32x2(kb, &coef[0], &b[pc*ldb+j0], ldb, &c[ci], ldc, strips)
				} else {
					kern.axpy32(kb, &coef[0], &b[pc*ldb+j0], ldb, &c[ci], strips)
				}
			}
			if rem > 0 {
				for r := range rows {
					copy(ct[32*r:32*r+rem], c[ci+r*ldc+32*strips:])
				}
				if rows == 2 {
					kern.axpy32x2(kb, &coef[0], &bt[0], 32, &ct[0], 32, 1)
				} else {
					kern.axpy32(kb, &coef[0], &bt[0], 32, &ct[0], 1)
				}
				for r := range rows {
					copy(c[ci+r*ldc+32*strips:ci+r*ldc+cols], ct[32*r:32*r+rem])
				}
			}
			i += rows
		}
	}
}

// gemmSmallT adds alpha·X·Wᵀ to columns [j0, j1) of C, where X is m rows
// of k values, ldx apart, and W = b is stored n×k; two rows of X at a time.
func gemmSmallT(kern *gemmKernel, m int, x []float32, ldx, j0, j1, k int, alpha float32, b []float32, ldb int, c []float32, ldc int) {
	k8 := k &^ 7
	buf := getGemmBuf()
	defer putGemmBuf(buf)
	buf.small = atLeast(buf.small, 64)
	out := buf.small[:64]
	for j := j0; j < j1; j += 4 {
		rows := min(4, j1-j)
		for i := 0; i < m; {
			nx := min(2, m-i)
			for r := 0; r < rows; {
				// Four rows of W at once; past the last whole group, one
				// row at a time (ldw = 0 reads that row four times).
				ldw, step := ldb, 4
				if rows < 4 {
					ldw, step = 0, 1
				}
				row := j + r
				if k8 > 0 {
					_ = b[(row+step-1)*ldb+k8-1]
					_ = x[(i+nx-1)*ldx+k8-1]
					if nx == 2 {
						kern.dot4x2(k8, &x[i*ldx], ldx, &b[row*ldb], ldw, &out[0])
					} else {
						kern.dot4(k8, &x[i*ldx], &b[row*ldb], ldw, &out[0])
					}
				} else {
					clear(out)
				}
				for q := range nx {
					xq := x[(i+q)*ldx : (i+q)*ldx+k]
					for t := range step {
						var s float32
						for _, v := range out[8*(4*q+t) : 8*(4*q+t)+8] {
							s += v
						}
						w := b[(row+t)*ldb : (row+t)*ldb+k]
						for p := k8; p < k; p++ {
							s += xq[p] * w[p]
						}
						c[(i+q)*ldc+row+t] += alpha * s
					}
				}
				r += step
			}
			i += nx
		}
	}
}
