package bench

import (
	"runtime"

	"github.com/omniflow-go/omniflow/device/cpu"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// GEMM is one implementation of the square fp32 product C = A·B.
type GEMM struct {
	Name string
	// Start readies the implementation to run on threads threads and
	// returns the product of n×n row-major matrices and a function that
	// undoes the set-up (call it before starting another GEMM).
	Start func(threads int) (mul func(n int, a, b, c []float32), stop func())
}

// GEMMs returns the implementations available in this build: omniflow,
// gonum, and OpenBLAS with the openblas build tag.
func GEMMs() []GEMM {
	gs := []GEMM{omniflowGEMM, gonumGEMM}
	if openblasGEMM != nil {
		gs = append(gs, *openblasGEMM)
	}
	return gs
}

var omniflowGEMM = GEMM{
	Name: "omniflow",
	Start: func(threads int) (func(int, []float32, []float32, []float32), func()) {
		return func(n int, a, b, c []float32) {
			cpu.Sgemm(threads, false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		}, func() {}
	},
}

// gonum's Sgemm splits work over GOMAXPROCS goroutines, so its thread
// count is set through GOMAXPROCS.
var gonumGEMM = GEMM{
	Name: "gonum",
	Start: func(threads int) (func(int, []float32, []float32, []float32), func()) {
		prev := runtime.GOMAXPROCS(threads)
		var impl gonum.Implementation
		return func(n int, a, b, c []float32) {
				impl.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, a, n, b, n, 0, c, n)
			}, func() {
				runtime.GOMAXPROCS(prev)
			}
	},
}
