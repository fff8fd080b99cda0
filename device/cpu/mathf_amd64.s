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
