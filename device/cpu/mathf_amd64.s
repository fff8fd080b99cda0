#include "textflag.h"

// func expAffineAVX512(dst, x *float32, n int, a, c float32) float64
//
// dst[i] = e**(a*x[i] + c) for i < n (n a multiple of 16), and the sum of
// dst in float64. The same method as expf (Cephes expf: Cody-Waite range
// reduction, degree-6 polynomial) with two differences that only make it
// better: FMAs round once where expf rounds twice, and VSCALEFPS applies
// 2**n with IEEE overflow to +Inf and gradual underflow, so no argument
// needs a slow path. The argument is clamped to [-110, 89] first (NaN
// passes through): e**-110 rounds to 0 and e**89 overflows to +Inf in
// float32, so -Inf gives 0 and +Inf gives +Inf.
TEXT ·expAffineAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Z0
	VBROADCASTSS c+28(FP), Z1
	MOVL $0x3fb8aa3b, AX // log2(e)
	VPBROADCASTD AX, Z2
	MOVL $0xbf318000, AX // -0.693359375 (-ln2 high part)
	VPBROADCASTD AX, Z3
	MOVL $0x395e8083, AX // 2.12194440e-4 (-ln2 low part)
	VPBROADCASTD AX, Z4
	MOVL $0x39506967, AX // 1.9875691500e-4
	VPBROADCASTD AX, Z5
	MOVL $0x3ab743ce, AX // 1.3981999507e-3
	VPBROADCASTD AX, Z6
	MOVL $0x3c088908, AX // 8.3334519073e-3
	VPBROADCASTD AX, Z7
	MOVL $0x3d2aa9c1, AX // 4.1665795894e-2
	VPBROADCASTD AX, Z8
	MOVL $0x3e2aaaaa, AX // 1.6666665459e-1
	VPBROADCASTD AX, Z9
	MOVL $0x3f000000, AX // 5.0000001201e-1 (rounds to 0.5)
	VPBROADCASTD AX, Z10
	MOVL $0x3f800000, AX // 1
	VPBROADCASTD AX, Z11
	MOVL $0xc2dc0000, AX // -110
	VPBROADCASTD AX, Z12
	MOVL $0x42b20000, AX // 89
	VPBROADCASTD AX, Z13
	VXORPD Z14, Z14, Z14
	VXORPD Z15, Z15, Z15

loop:
	CMPQ CX, $16
	JLT done
	VMOVUPS (SI), Z16
	VFMADD213PS Z1, Z0, Z16 // v = a*x + c
	VMAXPS Z16, Z12, Z16    // max(-110, v); a NaN v is kept (second source)
	VMINPS Z16, Z13, Z16    // min(89, v)
	VMULPS Z2, Z16, Z17
	VRNDSCALEPS $0, Z17, Z17 // n = round(v*log2e), ties to even
	VFMADD231PS Z3, Z17, Z16 // r = v - n*ln2hi
	VFMADD231PS Z4, Z17, Z16 // r -= n*ln2lo
	VMOVAPS Z5, Z18
	VFMADD213PS Z6, Z16, Z18 // p = p*r + c1, Horner
	VFMADD213PS Z7, Z16, Z18
	VFMADD213PS Z8, Z16, Z18
	VFMADD213PS Z9, Z16, Z18
	VFMADD213PS Z10, Z16, Z18
	VMULPS Z16, Z16, Z19     // z = r*r
	VFMADD213PS Z16, Z19, Z18 // p*z + r
	VADDPS Z11, Z18, Z18      // + 1
	VSCALEFPS Z17, Z18, Z18   // * 2**n
	VMOVUPS Z18, (DI)
	VEXTRACTF32X8 $1, Z18, Y19
	VCVTPS2PD Y18, Z20
	VCVTPS2PD Y19, Z21
	VADDPD Z20, Z14, Z14
	VADDPD Z21, Z15, Z15
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP loop

done:
	VADDPD Z15, Z14, Z14
	VEXTRACTF64X4 $1, Z14, Y15
	VADDPD Y15, Y14, Y14
	VEXTRACTF128 $1, Y14, X15
	VADDPD X15, X14, X14
	VUNPCKHPD X14, X14, X15
	VADDSD X15, X14, X14
	VZEROUPPER
	MOVSD X14, ret+32(FP)
	RET

// func maxAVX512(x *float32, n int) float32
//
// The largest of x[0:n] (n a multiple of 16, > 0); with NaNs in x, the
// largest of the others or NaN (VMAXPS returns its second source when either
// is NaN).
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Z0
	VMOVAPS Z0, Z1
	VMOVAPS Z0, Z2
	VMOVAPS Z0, Z3
	ADDQ $64, SI
	SUBQ $16, CX

loop4:
	CMPQ CX, $64
	JLT loop1
	VMAXPS (SI), Z0, Z0
	VMAXPS 64(SI), Z1, Z1
	VMAXPS 128(SI), Z2, Z2
	VMAXPS 192(SI), Z3, Z3
	ADDQ $256, SI
	SUBQ $64, CX
	JMP loop4

loop1:
	CMPQ CX, $16
	JLT done
	VMAXPS (SI), Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JMP loop1

done:
	VMAXPS Z1, Z0, Z0
	VMAXPS Z3, Z2, Z2
	VMAXPS Z2, Z0, Z0
	VEXTRACTF32X8 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// Constants for the AVX2 kernels, eight copies each (AVX2 has no embedded
// broadcast, and sixteen YMM registers do not hold them all).
#define CONST8(name, bits) \
	DATA name<>+0(SB)/4, $bits; \
	DATA name<>+4(SB)/4, $bits; \
	DATA name<>+8(SB)/4, $bits; \
	DATA name<>+12(SB)/4, $bits; \
	DATA name<>+16(SB)/4, $bits; \
	DATA name<>+20(SB)/4, $bits; \
	DATA name<>+24(SB)/4, $bits; \
	DATA name<>+28(SB)/4, $bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

CONST8(expLog2e, 0x3fb8aa3b)
CONST8(expNegLn2Hi, 0xbf318000)
CONST8(expNegLn2Lo, 0x395e8083)
CONST8(expP0, 0x39506967)
CONST8(expP1, 0x3ab743ce)
CONST8(expP2, 0x3c088908)
CONST8(expP3, 0x3d2aa9c1)
CONST8(expP4, 0x3e2aaaaa)
CONST8(expP5, 0x3f000000)
CONST8(expOne, 0x3f800000)
CONST8(expLo, 0xc2d00000) // -104
CONST8(expHi, 0x42b20000) // 89
CONST8(expBias, 0x0000007f) // 127, an int32

// func expAffineAVX2(dst, x *float32, n int, a, c float32) float64
//
// expAffineAVX512 for AVX2+FMA, 8 lanes. Without VSCALEFPS, 2**n is applied
// as two exact powers of two, 2**(n>>1) then 2**(n - n>>1): the first
// product stays normal, the second rounds once, so results overflow to +Inf
// and underflow gradually as IEEE multiplication does. The argument is
// clamped to [-104, 89]: e**-104 rounds to 0 and e**89 overflows.
TEXT ·expAffineAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Y0
	VBROADCASTSS c+28(FP), Y1
	VXORPD Y14, Y14, Y14
	VXORPD Y15, Y15, Y15

loop:
	CMPQ CX, $8
	JLT done
	VMOVUPS (SI), Y2
	VFMADD213PS Y1, Y0, Y2       // v = a*x + c
	VMOVUPS expLo<>(SB), Y5
	VMAXPS Y2, Y5, Y2            // clamp; a NaN v is kept (second source)
	VMOVUPS expHi<>(SB), Y5
	VMINPS Y2, Y5, Y2
	VMULPS expLog2e<>(SB), Y2, Y3
	VROUNDPS $0, Y3, Y3          // n = round(v*log2e), ties to even
	VFMADD231PS expNegLn2Hi<>(SB), Y3, Y2 // r = v - n*ln2hi
	VFMADD231PS expNegLn2Lo<>(SB), Y3, Y2 // r -= n*ln2lo
	VMOVUPS expP0<>(SB), Y4
	VFMADD213PS expP1<>(SB), Y2, Y4 // Horner
	VFMADD213PS expP2<>(SB), Y2, Y4
	VFMADD213PS expP3<>(SB), Y2, Y4
	VFMADD213PS expP4<>(SB), Y2, Y4
	VFMADD213PS expP5<>(SB), Y2, Y4
	VMULPS Y2, Y2, Y5
	VFMADD213PS Y2, Y5, Y4       // p*r² + r
	VADDPS expOne<>(SB), Y4, Y4  // + 1
	VCVTPS2DQ Y3, Y3             // n as int32
	VPSRAD $1, Y3, Y6            // n1 = n >> 1
	VPSUBD Y6, Y3, Y3            // n2 = n - n1
	VPADDD expBias<>(SB), Y6, Y6
	VPADDD expBias<>(SB), Y3, Y3
	VPSLLD $23, Y6, Y6           // 2**n1
	VPSLLD $23, Y3, Y3           // 2**n2
	VMULPS Y6, Y4, Y4
	VMULPS Y3, Y4, Y4
	VMOVUPS Y4, (DI)
	VEXTRACTF128 $1, Y4, X5
	VCVTPS2PD X4, Y6
	VCVTPS2PD X5, Y7
	VADDPD Y6, Y14, Y14
	VADDPD Y7, Y15, Y15
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop

done:
	VADDPD Y15, Y14, Y14
	VEXTRACTF128 $1, Y14, X15
	VADDPD X15, X14, X14
	VUNPCKHPD X14, X14, X15
	VADDSD X15, X14, X14
	VZEROUPPER
	MOVSD X14, ret+32(FP)
	RET

// func maxAVX2(x *float32, n int) float32
//
// maxAVX512 for AVX2, n a positive multiple of 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0
	VMOVAPS Y0, Y1
	ADDQ $32, SI
	SUBQ $8, CX

loop2:
	CMPQ CX, $16
	JLT loop1
	VMAXPS (SI), Y0, Y0
	VMAXPS 32(SI), Y1, Y1
	ADDQ $64, SI
	SUBQ $16, CX
	JMP loop2

loop1:
	CMPQ CX, $8
	JLT done
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP loop1

done:
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// Scalars for geluErfAVX512, read with embedded broadcast.
DATA geluK<>+0(SB)/4, $0x7fffffff  // |x| mask
DATA geluK<>+4(SB)/4, $0x3eb504f3  // 1/(2√2): t = 1/(1 + z/2), z = |x|/√2
DATA geluK<>+8(SB)/4, $0x3e2ef945  // erfcc coefficients (Numerical Recipes §6.2), highest first: 0.17087277
DATA geluK<>+12(SB)/4, $0xbf527892 // -0.82215223
DATA geluK<>+16(SB)/4, $0x3fbe87b0 // 1.48851587
DATA geluK<>+20(SB)/4, $0xbf914e5d // -1.13520398
DATA geluK<>+24(SB)/4, $0x3e8ec7cc // 0.27886807
DATA geluK<>+28(SB)/4, $0xbe3ec24c // -0.18628806
DATA geluK<>+32(SB)/4, $0x3dc636c9 // 0.09678418
DATA geluK<>+36(SB)/4, $0x3ebf88fb // 0.37409196
DATA geluK<>+40(SB)/4, $0x3f8000c7 // 1.00002368
DATA geluK<>+44(SB)/4, $0xbfa1fc4e // -1.26551223
GLOBL geluK<>(SB), RODATA|NOPTR, $48

// func geluErfAVX512(dst, x *float32, n int)
//
// dst = x * Φ(x) for n elements (a multiple of 16), as geluVec: erfc(z),
// z = |x|/√2, from the erfcc fit t*exp(-z² + P(t)), t = 1/(1 + z/2); Φ is
// erfc/2 for x < 0 and 1 - erfc/2 otherwise. The exp is expAffineAVX512's.
TEXT ·geluErfAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x3fb8aa3b, AX
	VPBROADCASTD AX, Z2
	MOVL $0xbf318000, AX
	VPBROADCASTD AX, Z3
	MOVL $0x395e8083, AX
	VPBROADCASTD AX, Z4
	MOVL $0x39506967, AX
	VPBROADCASTD AX, Z5
	MOVL $0x3ab743ce, AX
	VPBROADCASTD AX, Z6
	MOVL $0x3c088908, AX
	VPBROADCASTD AX, Z7
	MOVL $0x3d2aa9c1, AX
	VPBROADCASTD AX, Z8
	MOVL $0x3e2aaaaa, AX
	VPBROADCASTD AX, Z9
	MOVL $0x3f000000, AX // 0.5
	VPBROADCASTD AX, Z10
	MOVL $0x3f800000, AX // 1
	VPBROADCASTD AX, Z11
	MOVL $0xc2dc0000, AX // -110
	VPBROADCASTD AX, Z12
	MOVL $0x42b20000, AX // 89
	VPBROADCASTD AX, Z13
	VPXORD Z25, Z25, Z25 // 0

gloop:
	CMPQ CX, $16
	JLT gdone
	VMOVUPS (SI), Z16                  // x
	VPANDD.BCST geluK<>+0(SB), Z16, Z17 // |x|
	VMULPS.BCST geluK<>+4(SB), Z17, Z18 // z/2
	VADDPS Z11, Z18, Z18
	VDIVPS Z18, Z11, Z18               // t = 1/(1 + z/2)
	VBROADCASTSS geluK<>+8(SB), Z19
	VFMADD213PS.BCST geluK<>+12(SB), Z18, Z19 // P(t), Horner
	VFMADD213PS.BCST geluK<>+16(SB), Z18, Z19
	VFMADD213PS.BCST geluK<>+20(SB), Z18, Z19
	VFMADD213PS.BCST geluK<>+24(SB), Z18, Z19
	VFMADD213PS.BCST geluK<>+28(SB), Z18, Z19
	VFMADD213PS.BCST geluK<>+32(SB), Z18, Z19
	VFMADD213PS.BCST geluK<>+36(SB), Z18, Z19
	VFMADD213PS.BCST geluK<>+40(SB), Z18, Z19
	VFMADD213PS.BCST geluK<>+44(SB), Z18, Z19
	VMULPS Z16, Z16, Z20
	VFNMADD231PS Z10, Z20, Z19 // arg = P(t) - x²/2 = P(t) - z²
	VMAXPS Z19, Z12, Z19       // e = exp(arg), as in expAffineAVX512
	VMINPS Z19, Z13, Z19
	VMULPS Z2, Z19, Z22
	VRNDSCALEPS $0, Z22, Z22
	VFMADD231PS Z3, Z22, Z19
	VFMADD231PS Z4, Z22, Z19
	VMOVAPS Z5, Z23
	VFMADD213PS Z6, Z19, Z23
	VFMADD213PS Z7, Z19, Z23
	VFMADD213PS Z8, Z19, Z23
	VFMADD213PS Z9, Z19, Z23
	VFMADD213PS Z10, Z19, Z23
	VMULPS Z19, Z19, Z24
	VFMADD213PS Z19, Z24, Z23
	VADDPS Z11, Z23, Z23
	VSCALEFPS Z22, Z23, Z23
	VMULPS Z18, Z23, Z23       // erfc(z) = t*e
	VMULPS Z10, Z23, Z23       // Φ(-|x|) = erfc/2
	VSUBPS Z23, Z11, Z24       // 1 - erfc/2
	VCMPPS $1, Z25, Z16, K1    // x < 0
	VMOVAPS Z23, K1, Z24       // Φ(x)
	VMULPS Z24, Z16, Z24
	VMOVUPS Z24, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP gloop

gdone:
	VZEROUPPER
	RET
