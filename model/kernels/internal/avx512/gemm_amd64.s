//go:build goexperiment.simd && amd64

#include "textflag.h"

// The 8×32 AVX-512 GEMM micro-kernel (see Gemm8x32).
// Registers: Z0, Z1 hold a step of the B panel (32 floats), Z2 and Z3
// the broadcasts of A, Z16…Z31 the 8×2 accumulators. A row i of a step
// is at (R8)(R9*i) for i < 3, (R10)(R9*(i-3)) for i < 6 and (R11)(R9*(i-6)).

// FMAROW multiplies the B step by one broadcast element of A into two
// accumulators.
#define FMAROW(addr, tmp, acc0, acc1) \
	VBROADCASTSS addr, tmp; \
	VFMADD231PS tmp, Z0, acc0; \
	VFMADD231PS tmp, Z1, acc1

// STORE0 writes alpha·acc to a row of C and moves DI to the next row.
#define STORE0(acc0, acc1) \
	VMULPS Z0, acc0, acc0; \
	VMOVUPS acc0, (DI); \
	VMULPS Z0, acc1, acc1; \
	VMOVUPS acc1, 64(DI); \
	ADDQ SI, DI

// STOREB writes alpha·acc + beta·C to a row of C and moves DI on.
#define STOREB(acc0, acc1) \
	VMULPS Z0, acc0, acc0; \
	VFMADD231PS (DI), Z1, acc0; \
	VMOVUPS acc0, (DI); \
	VMULPS Z0, acc1, acc1; \
	VFMADD231PS 64(DI), Z1, acc1; \
	VMOVUPS acc1, 64(DI); \
	ADDQ SI, DI

// func Gemm8x32(kc int, a unsafe.Pointer, ak, ar uintptr, b, c unsafe.Pointer, ldc uintptr, alpha, beta float32)
TEXT ·Gemm8x32(SB), NOSPLIT, $0-64
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), R8
	MOVQ ak+16(FP), DX
	MOVQ ar+24(FP), R9
	MOVQ b+32(FP), BX
	LEAQ (R9)(R9*2), AX
	LEAQ (R8)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31
	TESTQ CX, CX
	JLE store

loop:
	VMOVUPS (BX), Z0
	VMOVUPS 64(BX), Z1
	FMAROW((R8), Z2, Z16, Z17)
	FMAROW((R8)(R9*1), Z3, Z18, Z19)
	FMAROW((R8)(R9*2), Z2, Z20, Z21)
	FMAROW((R10), Z3, Z22, Z23)
	FMAROW((R10)(R9*1), Z2, Z24, Z25)
	FMAROW((R10)(R9*2), Z3, Z26, Z27)
	FMAROW((R11), Z2, Z28, Z29)
	FMAROW((R11)(R9*1), Z3, Z30, Z31)
	ADDQ $128, BX
	ADDQ DX, R8
	ADDQ DX, R10
	ADDQ DX, R11
	DECQ CX
	JNZ loop

store:
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), SI
	VBROADCASTSS alpha+56(FP), Z0
	MOVL beta+60(FP), AX
	ANDL $0x7fffffff, AX
	JNZ withbeta
	STORE0(Z16, Z17)
	STORE0(Z18, Z19)
	STORE0(Z20, Z21)
	STORE0(Z22, Z23)
	STORE0(Z24, Z25)
	STORE0(Z26, Z27)
	STORE0(Z28, Z29)
	STORE0(Z30, Z31)
	VZEROUPPER
	RET

withbeta:
	VBROADCASTSS beta+60(FP), Z1
	STOREB(Z16, Z17)
	STOREB(Z18, Z19)
	STOREB(Z20, Z21)
	STOREB(Z22, Z23)
	STOREB(Z24, Z25)
	STOREB(Z26, Z27)
	STOREB(Z28, Z29)
	STOREB(Z30, Z31)
	VZEROUPPER
	RET

// The 6×16 AVX2 tile (see Gemm6x16): Y0, Y1 hold a step of the B panel
// (16 floats), Y2 and Y3 the broadcasts of A, Y4…Y15 the 6×2
// accumulators. Row i of a step of A is at (R8)(R9*i) for i < 3 and
// (R10)(R9*(i-3)).

#define FMAROW2(addr, tmp, acc0, acc1) \
	VBROADCASTSS addr, tmp; \
	VFMADD231PS tmp, Y0, acc0; \
	VFMADD231PS tmp, Y1, acc1

#define STORE0Y(acc0, acc1) \
	VMULPS Y0, acc0, acc0; \
	VMOVUPS acc0, (DI); \
	VMULPS Y0, acc1, acc1; \
	VMOVUPS acc1, 32(DI); \
	ADDQ SI, DI

#define STOREBY(acc0, acc1) \
	VMULPS Y0, acc0, acc0; \
	VFMADD231PS (DI), Y1, acc0; \
	VMOVUPS acc0, (DI); \
	VMULPS Y0, acc1, acc1; \
	VFMADD231PS 32(DI), Y1, acc1; \
	VMOVUPS acc1, 32(DI); \
	ADDQ SI, DI

// func Gemm6x16(kc int, a unsafe.Pointer, ak, ar uintptr, b, c unsafe.Pointer, ldc uintptr, alpha, beta float32)
TEXT ·Gemm6x16(SB), NOSPLIT, $0-64
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), R8
	MOVQ ak+16(FP), DX
	MOVQ ar+24(FP), R9
	MOVQ b+32(FP), BX
	LEAQ (R9)(R9*2), AX
	LEAQ (R8)(AX*1), R10
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	TESTQ CX, CX
	JLE store6

loop6:
	VMOVUPS (BX), Y0
	VMOVUPS 32(BX), Y1
	FMAROW2((R8), Y2, Y4, Y5)
	FMAROW2((R8)(R9*1), Y3, Y6, Y7)
	FMAROW2((R8)(R9*2), Y2, Y8, Y9)
	FMAROW2((R10), Y3, Y10, Y11)
	FMAROW2((R10)(R9*1), Y2, Y12, Y13)
	FMAROW2((R10)(R9*2), Y3, Y14, Y15)
	ADDQ $64, BX
	ADDQ DX, R8
	ADDQ DX, R10
	DECQ CX
	JNZ loop6

store6:
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), SI
	VBROADCASTSS alpha+56(FP), Y0
	MOVL beta+60(FP), AX
	ANDL $0x7fffffff, AX
	JNZ withbeta6
	STORE0Y(Y4, Y5)
	STORE0Y(Y6, Y7)
	STORE0Y(Y8, Y9)
	STORE0Y(Y10, Y11)
	STORE0Y(Y12, Y13)
	STORE0Y(Y14, Y15)
	VZEROUPPER
	RET

withbeta6:
	VBROADCASTSS beta+60(FP), Y1
	STOREBY(Y4, Y5)
	STOREBY(Y6, Y7)
	STOREBY(Y8, Y9)
	STOREBY(Y10, Y11)
	STOREBY(Y12, Y13)
	STOREBY(Y14, Y15)
	VZEROUPPER
	RET
