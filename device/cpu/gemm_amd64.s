#include "textflag.h"

// Micro-kernels for Sgemm: C = alpha·Ã·B̃ + beta·C on one register tile,
// Ã packed mr values per k, B̃ packed nr values per k (see gemmKernel).
// Go's ABI0 lets assembly use every vector register.

// AVX-512, 12×32: row r of the tile accumulates in Z(2r) (columns 0–15)
// and Z(2r+1) (columns 16–31); Z24/Z25 hold a row of B̃, Z26–Z31 rotate as
// broadcasts of Ã so consecutive broadcasts do not wait on each other.
#define KSTEP_12x32 \
	VMOVUPS (DI), Z24; \
	VMOVUPS 64(DI), Z25; \
	VBROADCASTSS 0(SI), Z26; \
	VFMADD231PS Z24, Z26, Z0; \
	VFMADD231PS Z25, Z26, Z1; \
	VBROADCASTSS 4(SI), Z27; \
	VFMADD231PS Z24, Z27, Z2; \
	VFMADD231PS Z25, Z27, Z3; \
	VBROADCASTSS 8(SI), Z28; \
	VFMADD231PS Z24, Z28, Z4; \
	VFMADD231PS Z25, Z28, Z5; \
	VBROADCASTSS 12(SI), Z29; \
	VFMADD231PS Z24, Z29, Z6; \
	VFMADD231PS Z25, Z29, Z7; \
	VBROADCASTSS 16(SI), Z30; \
	VFMADD231PS Z24, Z30, Z8; \
	VFMADD231PS Z25, Z30, Z9; \
	VBROADCASTSS 20(SI), Z31; \
	VFMADD231PS Z24, Z31, Z10; \
	VFMADD231PS Z25, Z31, Z11; \
	VBROADCASTSS 24(SI), Z26; \
	VFMADD231PS Z24, Z26, Z12; \
	VFMADD231PS Z25, Z26, Z13; \
	VBROADCASTSS 28(SI), Z27; \
	VFMADD231PS Z24, Z27, Z14; \
	VFMADD231PS Z25, Z27, Z15; \
	VBROADCASTSS 32(SI), Z28; \
	VFMADD231PS Z24, Z28, Z16; \
	VFMADD231PS Z25, Z28, Z17; \
	VBROADCASTSS 36(SI), Z29; \
	VFMADD231PS Z24, Z29, Z18; \
	VFMADD231PS Z25, Z29, Z19; \
	VBROADCASTSS 40(SI), Z30; \
	VFMADD231PS Z24, Z30, Z20; \
	VFMADD231PS Z25, Z30, Z21; \
	VBROADCASTSS 44(SI), Z31; \
	VFMADD231PS Z24, Z31, Z22; \
	VFMADD231PS Z25, Z31, Z23; \
	ADDQ $48, SI; \
	ADDQ $128, DI

// Row r of C = alpha·acc (Z30 = alpha), then += beta·C (Z31 = beta).
#define STORE_ROW_512(x, y) \
	VMULPS Z30, x, x; \
	VMULPS Z30, y, y; \
	VMOVUPS x, (R10); \
	VMOVUPS y, 64(R10); \
	ADDQ R9, R10

#define STORE_ROW_512_BETA(x, y) \
	VMULPS Z30, x, x; \
	VMULPS Z30, y, y; \
	VFMADD231PS (R10), Z31, x; \
	VFMADD231PS 64(R10), Z31, y; \
	VMOVUPS x, (R10); \
	VMOVUPS y, 64(R10); \
	ADDQ R9, R10

// func sgemmKernelAVX512(k int, a, b, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemmKernelAVX512(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), R10
	MOVQ ldc+32(FP), R9
	SHLQ $2, R9
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23

	// Bring the tile of C toward L1 while the k loop runs.
	MOVQ R10, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 64(R11)
	ADDQ R9, R11

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   avx512_tail

avx512_loop4:
	KSTEP_12x32
	KSTEP_12x32
	KSTEP_12x32
	KSTEP_12x32
	DECQ BX
	JNZ  avx512_loop4

avx512_tail:
	ANDQ $3, CX
	JZ   avx512_store

avx512_loop1:
	KSTEP_12x32
	DECQ CX
	JNZ  avx512_loop1

avx512_store:
	VBROADCASTSS alpha+40(FP), Z30
	MOVL beta+44(FP), AX
	SHLL $1, AX // drop the sign: -0 counts as 0
	JZ   avx512_nobeta
	VBROADCASTSS beta+44(FP), Z31
	STORE_ROW_512_BETA(Z0, Z1)
	STORE_ROW_512_BETA(Z2, Z3)
	STORE_ROW_512_BETA(Z4, Z5)
	STORE_ROW_512_BETA(Z6, Z7)
	STORE_ROW_512_BETA(Z8, Z9)
	STORE_ROW_512_BETA(Z10, Z11)
	STORE_ROW_512_BETA(Z12, Z13)
	STORE_ROW_512_BETA(Z14, Z15)
	STORE_ROW_512_BETA(Z16, Z17)
	STORE_ROW_512_BETA(Z18, Z19)
	STORE_ROW_512_BETA(Z20, Z21)
	STORE_ROW_512_BETA(Z22, Z23)
	VZEROUPPER
	RET

avx512_nobeta:
	STORE_ROW_512(Z0, Z1)
	STORE_ROW_512(Z2, Z3)
	STORE_ROW_512(Z4, Z5)
	STORE_ROW_512(Z6, Z7)
	STORE_ROW_512(Z8, Z9)
	STORE_ROW_512(Z10, Z11)
	STORE_ROW_512(Z12, Z13)
	STORE_ROW_512(Z14, Z15)
	STORE_ROW_512(Z16, Z17)
	STORE_ROW_512(Z18, Z19)
	STORE_ROW_512(Z20, Z21)
	STORE_ROW_512(Z22, Z23)
	VZEROUPPER
	RET

// AVX2, 6×16: row r accumulates in Y(2r), Y(2r+1); Y12/Y13 hold a row of
// B̃, Y14/Y15 alternate as broadcasts of Ã.
#define KSTEP_6x16 \
	VMOVUPS (DI), Y12; \
	VMOVUPS 32(DI), Y13; \
	VBROADCASTSS 0(SI), Y14; \
	VFMADD231PS Y12, Y14, Y0; \
	VFMADD231PS Y13, Y14, Y1; \
	VBROADCASTSS 4(SI), Y15; \
	VFMADD231PS Y12, Y15, Y2; \
	VFMADD231PS Y13, Y15, Y3; \
	VBROADCASTSS 8(SI), Y14; \
	VFMADD231PS Y12, Y14, Y4; \
	VFMADD231PS Y13, Y14, Y5; \
	VBROADCASTSS 12(SI), Y15; \
	VFMADD231PS Y12, Y15, Y6; \
	VFMADD231PS Y13, Y15, Y7; \
	VBROADCASTSS 16(SI), Y14; \
	VFMADD231PS Y12, Y14, Y8; \
	VFMADD231PS Y13, Y14, Y9; \
	VBROADCASTSS 20(SI), Y15; \
	VFMADD231PS Y12, Y15, Y10; \
	VFMADD231PS Y13, Y15, Y11; \
	ADDQ $24, SI; \
	ADDQ $64, DI

#define STORE_ROW_256(x, y) \
	VMULPS Y14, x, x; \
	VMULPS Y14, y, y; \
	VMOVUPS x, (R10); \
	VMOVUPS y, 32(R10); \
	ADDQ R9, R10

#define STORE_ROW_256_BETA(x, y) \
	VMULPS Y14, x, x; \
	VMULPS Y14, y, y; \
	VFMADD231PS (R10), Y15, x; \
	VFMADD231PS 32(R10), Y15, y; \
	VMOVUPS x, (R10); \
	VMOVUPS y, 32(R10); \
	ADDQ R9, R10

// func sgemmKernelAVX2(k int, a, b, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemmKernelAVX2(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), R10
	MOVQ ldc+32(FP), R9
	SHLQ $2, R9
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	MOVQ R10, R11
	PREFETCHT0 (R11)
	PREFETCHT0 63(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 63(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 63(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 63(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 63(R11)
	ADDQ R9, R11
	PREFETCHT0 (R11)
	PREFETCHT0 63(R11)
	ADDQ R9, R11

	MOVQ CX, BX
	SHRQ $2, BX
	JZ   avx2_tail

avx2_loop4:
	KSTEP_6x16
	KSTEP_6x16
	KSTEP_6x16
	KSTEP_6x16
	DECQ BX
	JNZ  avx2_loop4

avx2_tail:
	ANDQ $3, CX
	JZ   avx2_store

avx2_loop1:
	KSTEP_6x16
	DECQ CX
	JNZ  avx2_loop1

avx2_store:
	VBROADCASTSS alpha+40(FP), Y14
	MOVL beta+44(FP), AX
	SHLL $1, AX
	JZ   avx2_nobeta
	VBROADCASTSS beta+44(FP), Y15
	STORE_ROW_256_BETA(Y0, Y1)
	STORE_ROW_256_BETA(Y2, Y3)
	STORE_ROW_256_BETA(Y4, Y5)
	STORE_ROW_256_BETA(Y6, Y7)
	STORE_ROW_256_BETA(Y8, Y9)
	STORE_ROW_256_BETA(Y10, Y11)
	VZEROUPPER
	RET

avx2_nobeta:
	STORE_ROW_256(Y0, Y1)
	STORE_ROW_256(Y2, Y3)
	STORE_ROW_256(Y4, Y5)
	STORE_ROW_256(Y6, Y7)
	STORE_ROW_256(Y8, Y9)
	STORE_ROW_256(Y10, Y11)
	VZEROUPPER
	RET

// func packCols4AVX2(dst *float32, w int, src *float32, lds int, blocks int)
// Transposes 4 rows of src into dst: dst[p*w+r] = src[r*lds+p] for r < 4,
// p < 8·blocks. Each block loads 8 values of each row, transposes the 4×4
// quarters in registers and stores 8 runs of 4.
TEXT ·packCols4AVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ w+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ blocks+32(FP), CX
	LEAQ (SI)(R9*1), R10
	LEAQ (SI)(R9*2), R11
	LEAQ (R10)(R9*2), R12
	LEAQ (R8)(R8*2), R13

pack4_loop:
	VMOVUPS (SI), Y0
	VMOVUPS (R10), Y1
	VMOVUPS (R11), Y2
	VMOVUPS (R12), Y3
	VUNPCKLPS Y1, Y0, Y4
	VUNPCKHPS Y1, Y0, Y5
	VUNPCKLPS Y3, Y2, Y6
	VUNPCKHPS Y3, Y2, Y7
	VUNPCKLPD Y6, Y4, Y0 // p0 | p4
	VUNPCKHPD Y6, Y4, Y1 // p1 | p5
	VUNPCKLPD Y7, Y5, Y2 // p2 | p6
	VUNPCKHPD Y7, Y5, Y3 // p3 | p7
	VMOVUPS X0, (DI)
	VMOVUPS X1, (DI)(R8*1)
	VMOVUPS X2, (DI)(R8*2)
	VMOVUPS X3, (DI)(R13*1)
	LEAQ (DI)(R8*4), DI
	VEXTRACTF128 $1, Y0, (DI)
	VEXTRACTF128 $1, Y1, (DI)(R8*1)
	VEXTRACTF128 $1, Y2, (DI)(R8*2)
	VEXTRACTF128 $1, Y3, (DI)(R13*1)
	LEAQ (DI)(R8*4), DI
	ADDQ $32, SI
	ADDQ $32, R10
	ADDQ $32, R11
	ADDQ $32, R12
	DECQ CX
	JNZ  pack4_loop
	VZEROUPPER
	RET

// func sdot4AVX2(k int, x, w *float32, ldw int, out *float32)
// Four dot products of x with rows w, w+ldw, w+2·ldw, w+3·ldw over k
// values (k a multiple of 8), left as 8 partial sums each in
// out[8r : 8r+8], for the caller to add up. One accumulator per row, so
// that sdot4x2AVX2 does the same arithmetic for each of its rows; the W
// rows stream from memory, so four FMA chains are not the limit.
TEXT ·sdot4AVX2(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DI
	MOVQ ldw+24(FP), R8
	SHLQ $2, R8
	MOVQ out+32(FP), DX
	LEAQ (DI)(R8*1), R9
	LEAQ (DI)(R8*2), R10
	LEAQ (R9)(R8*2), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	SHRQ $3, CX
	JZ   dot4_done

dot4_loop:
	VMOVUPS     (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS (R9), Y8, Y1
	VFMADD231PS (R10), Y8, Y2
	VFMADD231PS (R11), Y8, Y3
	ADDQ        $32, SI
	ADDQ        $32, DI
	ADDQ        $32, R9
	ADDQ        $32, R10
	ADDQ        $32, R11
	DECQ        CX
	JNZ         dot4_loop

dot4_done:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VZEROUPPER
	RET

// func sdot4x2AVX2(k int, x *float32, ldx int, w *float32, ldw int, out *float32)
// sdot4AVX2 for two rows of x at once (x and x+ldx), sharing the loads of
// w: the partial sums of x row q with w row r go to out[8(4q+r) : +8].
TEXT ·sdot4x2AVX2(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ ldx+16(FP), R12
	SHLQ $2, R12
	MOVQ w+24(FP), DI
	MOVQ ldw+32(FP), R8
	SHLQ $2, R8
	MOVQ out+40(FP), DX
	LEAQ (SI)(R12*1), R12
	LEAQ (DI)(R8*1), R9
	LEAQ (DI)(R8*2), R10
	LEAQ (R9)(R8*2), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	SHRQ $3, CX
	JZ   dot4x2_done

dot4x2_loop:
	VMOVUPS     (SI), Y8
	VMOVUPS     (R12), Y9
	VMOVUPS     (DI), Y10
	VMOVUPS     (R9), Y11
	VMOVUPS     (R10), Y12
	VMOVUPS     (R11), Y13
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y13, Y8, Y3
	VFMADD231PS Y10, Y9, Y4
	VFMADD231PS Y11, Y9, Y5
	VFMADD231PS Y12, Y9, Y6
	VFMADD231PS Y13, Y9, Y7
	ADDQ        $32, SI
	ADDQ        $32, R12
	ADDQ        $32, DI
	ADDQ        $32, R9
	ADDQ        $32, R10
	ADDQ        $32, R11
	DECQ        CX
	JNZ         dot4x2_loop

dot4x2_done:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VMOVUPS Y4, 128(DX)
	VMOVUPS Y5, 160(DX)
	VMOVUPS Y6, 192(DX)
	VMOVUPS Y7, 224(DX)
	VZEROUPPER
	RET

// func saxpy32AVX2(kb int, coef, b *float32, ldb int, c *float32, strips int)
// For each of strips 32-column strips s:
// c[32s : 32s+32] += Σ_{p<kb} coef[p] · b[p·ldb + 32s : p·ldb + 32s + 32].
// The strip of c stays in 4 ymm registers while p runs down the rows of b.
TEXT ·saxpy32AVX2(SB), NOSPLIT, $0-48
	MOVQ kb+0(FP), CX
	MOVQ coef+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ ldb+24(FP), R8
	SHLQ $2, R8
	MOVQ c+32(FP), DX
	MOVQ strips+40(FP), R9

axpy32_strip:
	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 64(DX), Y2
	VMOVUPS 96(DX), Y3
	MOVQ    SI, R10
	MOVQ    DI, R11
	MOVQ    CX, BX

axpy32_row:
	VBROADCASTSS (R10), Y4
	VFMADD231PS  (R11), Y4, Y0
	VFMADD231PS  32(R11), Y4, Y1
	VFMADD231PS  64(R11), Y4, Y2
	VFMADD231PS  96(R11), Y4, Y3
	ADDQ         $4, R10
	ADDQ         R8, R11
	DECQ         BX
	JNZ          axpy32_row
	VMOVUPS      Y0, (DX)
	VMOVUPS      Y1, 32(DX)
	VMOVUPS      Y2, 64(DX)
	VMOVUPS      Y3, 96(DX)
	ADDQ         $128, DX
	ADDQ         $128, DI
	DECQ         R9
	JNZ          axpy32_strip
	VZEROUPPER
	RET

// func saxpy32x2AVX2(kb int, coef, b *float32, ldb int, c *float32, ldc int, strips int)
// saxpy32AVX2 for two rows of C at once, sharing the loads of b:
// c[r·ldc + 32s : +32] += Σ_{p<kb} coef[2p+r] · b[p·ldb + 32s : +32], r < 2.
// Eight independent accumulators keep both FMA pipes busy.
TEXT ·saxpy32x2AVX2(SB), NOSPLIT, $0-56
	MOVQ kb+0(FP), CX
	MOVQ coef+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ ldb+24(FP), R8
	SHLQ $2, R8
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R12
	SHLQ $2, R12
	MOVQ strips+48(FP), R9

axpy32x2_strip:
	LEAQ    (DX)(R12*1), R13
	VMOVUPS (DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 64(DX), Y2
	VMOVUPS 96(DX), Y3
	VMOVUPS (R13), Y4
	VMOVUPS 32(R13), Y5
	VMOVUPS 64(R13), Y6
	VMOVUPS 96(R13), Y7
	MOVQ    SI, R10
	MOVQ    DI, R11
	MOVQ    CX, BX

axpy32x2_row:
	VMOVUPS      (R11), Y8
	VMOVUPS      32(R11), Y9
	VMOVUPS      64(R11), Y10
	VMOVUPS      96(R11), Y11
	VBROADCASTSS (R10), Y12
	VBROADCASTSS 4(R10), Y13
	VFMADD231PS  Y8, Y12, Y0
	VFMADD231PS  Y9, Y12, Y1
	VFMADD231PS  Y10, Y12, Y2
	VFMADD231PS  Y11, Y12, Y3
	VFMADD231PS  Y8, Y13, Y4
	VFMADD231PS  Y9, Y13, Y5
	VFMADD231PS  Y10, Y13, Y6
	VFMADD231PS  Y11, Y13, Y7
	ADDQ         $8, R10
	ADDQ         R8, R11
	DECQ         BX
	JNZ          axpy32x2_row
	VMOVUPS      Y0, (DX)
	VMOVUPS      Y1, 32(DX)
	VMOVUPS      Y2, 64(DX)
	VMOVUPS      Y3, 96(DX)
	VMOVUPS      Y4, (R13)
	VMOVUPS      Y5, 32(R13)
	VMOVUPS      Y6, 64(R13)
	VMOVUPS      Y7, 96(R13)
	ADDQ         $128, DX
	ADDQ         $128, DI
	DECQ         R9
	JNZ          axpy32x2_strip
	VZEROUPPER
	RET
