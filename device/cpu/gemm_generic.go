package cpu

import (
	"runtime"
	"unsafe"
)

// The pure-Go micro-kernels. Go does not vectorize, so these are scalar
// register tiles sized to the register file: 4×4 (16 accumulators plus 8
// operands) where there are 32 floating-point registers (arm64, ppc64,
// riscv64, ...), 2×4 (8 + 6) on amd64 and 386, whose 16 (15 usable)
// would spill the 4×4 tile on every k step: on Zen 4, 6 GFLOP/s for 2×4
// against 4 for 4×4.
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

func gemmKernelGeneric2x4(k int, pa, pb, pc *float32, ldc int, alpha, beta float32) {
	a := unsafe.Slice(pa, 2*k)
	b := unsafe.Slice(pb, 4*k)
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	for len(a) >= 2 && len(b) >= 4 {
		a0, a1 := a[0], a[1]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a, b = a[2:], b[4:]
	}
	c := unsafe.Slice(pc, ldc+4)
	store4(c[0:4:4], alpha, beta, c00, c01, c02, c03)
	store4(c[ldc:ldc+4:ldc+4], alpha, beta, c10, c11, c12, c13)
}

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
