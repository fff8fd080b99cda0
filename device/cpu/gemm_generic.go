package cpu

import (
	"runtime"
	"unsafe"
)

// The pure-Go micro-kernels. Go does not vectorize, so these are scalar
// register tiles sized to the register file: 4×4 (16 accumulators plus 8
// operands) where there are 32 floating-point registers (arm64, ppc64,
// riscv64, ...), 2×4 (8 + 6) on amd64 and 386, whose 16 (15 usable)
// would spill the 4×4 tile on every k step. On the 2-core Zen 3 machine,
// one thread, n = 256: 2×4 with k unrolled by 8 (below) 4.5–5.6 GFLOP/s,
// the same tile one k step per iteration 2.5–3.8, gonum's pure-Go Sgemm
// (-tags noasm) 1.5–2.3, all measured side by side.
//
// Blocking: the mr×kc panel of A (at most 4 KiB) stays in L1 while it
// sweeps the kc×nc block of B (256×512×4 B = 512 KiB), which fits the
// 1 MiB L2 of the machines we target (on smaller L2s the B panels still
// stream in order). mc bounds the packed A block to 4 MiB, a share of a
// typical L3.
var (
	generic4x4Gemm = &gemmKernel{
		name: "generic", mr: 4, nr: 4,
		kc: 256, nc: 512, mc: 4096,
		fn: gemmKernelGeneric4x4,
	}
	generic2x4Gemm = &gemmKernel{
		name: "generic", mr: 2, nr: 4,
		kc: 256, nc: 512, mc: 4096,
		fn: gemmKernelGeneric2x4,
	}
	genericGemm = pickGenericGemm(runtime.GOARCH)
)

func pickGenericGemm(goarch string) *gemmKernel {
	switch goarch {
	case "amd64", "386":
		return generic2x4Gemm
	}
	return generic4x4Gemm
}

func gemmKernelGeneric4x4(k int, pa, pb, pc *float32, ldc int, alpha, beta float32) {
	a := unsafe.Slice(pa, 4*k)
	b := unsafe.Slice(pb, 4*k)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	for len(a) >= 4 && len(b) >= 4 {
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
		a, b = a[4:], b[4:]
	}
	c := unsafe.Slice(pc, 3*ldc+4)
	store4(c[0:4:4], alpha, beta, c00, c01, c02, c03)
	store4(c[ldc:ldc+4:ldc+4], alpha, beta, c10, c11, c12, c13)
	store4(c[2*ldc:2*ldc+4:2*ldc+4], alpha, beta, c20, c21, c22, c23)
	store4(c[3*ldc:3*ldc+4:3*ldc+4], alpha, beta, c30, c31, c32, c33)
}

// gemmKernelGeneric2x4 is the 2×4 tile, k unrolled by 8. The unrolling is
// for the compiler's scheduler, which puts values used within their block
// first: in a loop body of one k step every product (used by an add in the
// block) is computed before any accumulation (used only by the next
// iteration), so 8 products, 8 accumulators and the operands do not fit
// the 16 registers and spill on every step. Unrolled, the accumulations of
// the first 7 steps feed the next step in the block, so each product is
// added as soon as it is made (products and sums on separate lines keep
// the scheduler's line order), and only the last step of 8 spills. Each
// element still sums its products in k order, one rounding per multiply
// and per add, as the simple loop does. Operands are read through unsafe
// pointers: the packed panels hold k steps of 2 and 4 values.
func gemmKernelGeneric2x4(k int, pa, pb, pc *float32, ldc int, alpha, beta float32) {
	a, pb8 := unsafe.Pointer(pa), unsafe.Pointer(pb)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var a0, a1, b, p float32
	for ; k >= 8; k -= 8 {
		pb := pb8
		// k + 0
		a0, a1 = ld(a, 0), ld(a, 4)
		b = ld(pb, 0)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 4)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 8)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 12)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		// k + 1
		a0, a1 = ld(a, 8), ld(a, 12)
		b = ld(pb, 16)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 20)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 24)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 28)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		// k + 2
		a0, a1 = ld(a, 16), ld(a, 20)
		b = ld(pb, 32)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 36)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 40)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 44)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		// k + 3
		a0, a1 = ld(a, 24), ld(a, 28)
		b = ld(pb, 48)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 52)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 56)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 60)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		// k + 4
		a0, a1 = ld(a, 32), ld(a, 36)
		b = ld(pb, 64)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 68)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 72)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 76)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		// k + 5
		a0, a1 = ld(a, 40), ld(a, 44)
		b = ld(pb, 80)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 84)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 88)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 92)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		// k + 6
		a0, a1 = ld(a, 48), ld(a, 52)
		b = ld(pb, 96)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 100)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 104)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 108)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		// k + 7
		a0, a1 = ld(a, 56), ld(a, 60)
		b = ld(pb, 112)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 116)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 120)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 124)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		a, pb8 = unsafe.Add(a, 8*8), unsafe.Add(pb8, 8*16)
	}
	for ; k > 0; k-- {
		pb := pb8
		a0, a1 = ld(a, 0), ld(a, 4)
		b = ld(pb, 0)
		p = a0 * b
		c00 += p
		p = a1 * b
		c10 += p
		b = ld(pb, 4)
		p = a0 * b
		c01 += p
		p = a1 * b
		c11 += p
		b = ld(pb, 8)
		p = a0 * b
		c02 += p
		p = a1 * b
		c12 += p
		b = ld(pb, 12)
		p = a0 * b
		c03 += p
		p = a1 * b
		c13 += p
		a, pb8 = unsafe.Add(a, 8), unsafe.Add(pb8, 16)
	}
	c := unsafe.Slice(pc, ldc+4)
	store4(c[0:4:4], alpha, beta, c00, c01, c02, c03)
	store4(c[ldc:ldc+4:ldc+4], alpha, beta, c10, c11, c12, c13)
}

// ld loads the float32 at byte offset off from p.
func ld(p unsafe.Pointer, off uintptr) float32 { return *(*float32)(unsafe.Add(p, off)) }

func store4(c []float32, alpha, beta, v0, v1, v2, v3 float32) {
	c = c[:4]
	if beta == 0 {
		c[0], c[1], c[2], c[3] = alpha*v0, alpha*v1, alpha*v2, alpha*v3
		return
	}
	c[0] = alpha*v0 + beta*c[0]
	c[1] = alpha*v1 + beta*c[1]
	c[2] = alpha*v2 + beta*c[2]
	c[3] = alpha*v3 + beta*c[3]
}
