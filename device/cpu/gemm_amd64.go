package cpu

import "golang.org/x/sys/cpu"

// AVX-512 kernel: a 12×32 tile of C in 24 zmm accumulators, with 2 zmm
// for the row of B̃ and 6 for broadcasts of Ã: all 32 registers. Each k
// step is 24 FMAs for 2 vector loads and 12 broadcasts, so the loads never
// limit the FMA pipes (Zen 4 runs one 512-bit FMA per cycle as two 256-bit
// halves; Intel cores one or two).
//
// Blocking (Zen 4: 32 KiB L1d, 1 MiB L2 per core, 32 MiB shared L3):
//   - kc = 384: the 12×kc panel of Ã is 18 KiB, so it stays in L1 while
//     B̃ panels stream past it, and a tile of C (1.5 KiB) is loaded and
//     stored once per 9216 FMAs.
//   - nc = 480: the kc×nc block of B̃ is 720 KiB, inside the 1 MiB L2
//     with room for the Ã panel and C.
//   - mc = 3072: the packed A block (4.5 MiB) stays in L3, a share of it
//     per core.
//
// These are BLIS's choices for Skylake-X / Zen 4 sgemm, transposed for
// row-major C. Around them performance is flat: on Zen 4 at n = 1024, one
// thread, kc ∈ {256, 384, 512} × nc ∈ {320, 480, 640} all ran at 100–105
// GFLOP/s, within the noise of the machine. Software prefetch of B̃ in the
// k loop (512 or 1024 bytes ahead) did not help either: the hardware
// prefetchers follow the packed panels.
var avx512Gemm = &gemmKernel{
	name: "avx512",
	mr:   12, nr: 32,
	kc: 384, nc: 480, mc: 3072,
	fn:       sgemmKernelAVX512,
	asmPack:  true,
	dot4:     sdot4AVX2,
	axpy32:   saxpy32AVX2,
	dot4x2:   sdot4x2AVX2,
	axpy32x2: saxpy32x2AVX2,
}

// AVX2 kernel: a 6×16 tile in 12 ymm accumulators, 2 ymm for B̃ and 2 for
// broadcasts (all 16 registers); 12 FMAs per 2 loads and 6 broadcasts.
// The 6×kc panel of Ã is 6 KiB at kc = 256; the kc×nc block of B̃ is
// 256×768×4 B = 768 KiB (L2).
var avx2Gemm = &gemmKernel{
	name: "avx2",
	mr:   6, nr: 16,
	kc: 256, nc: 768, mc: 3072,
	fn:       sgemmKernelAVX2,
	asmPack:  true,
	dot4:     sdot4AVX2,
	axpy32:   saxpy32AVX2,
	dot4x2:   sdot4x2AVX2,
	axpy32x2: saxpy32x2AVX2,
}

//go:noescape
func sgemmKernelAVX512(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func sdot4AVX2(k int, x, w *float32, ldw int, out *float32)

//go:noescape
func saxpy32AVX2(kb int, coef, b *float32, ldb int, c *float32, strips int)

//go:noescape
func sdot4x2AVX2(k int, x *float32, ldx int, w *float32, ldw int, out *float32)

//go:noescape
func saxpy32x2AVX2(kb int, coef, b *float32, ldb int, c *float32, ldc int, strips int)

//go:noescape
func packCols4AVX2(dst *float32, w int, src *float32, lds int, blocks int)

//go:noescape
func sgemmKernelAVX2(k int, a, b, c *float32, ldc int, alpha, beta float32)

var (
	hasAVX512 = cpu.X86.HasAVX512F
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

// gemmKernels lists the micro-kernels this CPU can run, best first.
func gemmKernels() []*gemmKernel {
	var ks []*gemmKernel
	if hasAVX512 {
		ks = append(ks, avx512Gemm)
	}
	if hasAVX2 {
		ks = append(ks, avx2Gemm)
	}
	return append(ks, genericGemm)
}

func bestGemmKernel() *gemmKernel { return gemmKernels()[0] }

// packCols4 transposes 4 rows of src into dst (see packCols) for the first
// p < kb that the AVX2 routine covers, and returns how many it did.
func packCols4(dst []float32, w int, src []float32, lds, kb int) int {
	blocks := kb / 8
	if blocks == 0 {
		return 0
	}
	// The assembly reads src[r*lds+p] for r < 4, p < 8·blocks, and writes
	// dst[p*w+r] for the same range: check both ends once here.
	_ = src[3*lds+8*blocks-1]
	_ = dst[(8*blocks-1)*w+3]
	packCols4AVX2(&dst[0], w, &src[0], lds, blocks)
	return 8 * blocks
}
