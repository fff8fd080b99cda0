//go:build !amd64

package cpu

// gemmKernels lists the micro-kernels this CPU can run, best first: only
// the pure-Go one off amd64.
func gemmKernels() []*gemmKernel { return []*gemmKernel{genericGemm} }

func bestGemmKernel() *gemmKernel { return genericGemm }

// packCols4 has no assembly here: packCols does all the work.
func packCols4(dst []float32, w int, src []float32, lds, kb int) int { return 0 }
