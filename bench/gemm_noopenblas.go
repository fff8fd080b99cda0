//go:build !openblas || !cgo

package bench

// openblasGEMM is nil without the openblas build tag (and cgo).
var openblasGEMM *GEMM

// OpenBLASConfig describes the linked OpenBLAS: empty in this build.
func OpenBLASConfig() string { return "" }
