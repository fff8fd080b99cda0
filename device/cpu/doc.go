// Package cpu holds omniflow's CPU kernels: pure Go, goroutine-parallel,
// with Go assembly micro-kernels where they pay (matmul on AVX-512/AVX2,
// chosen at run time, with a pure-Go fallback). Kernels here work on raw
// float32 slices with explicit shapes; package device wraps them as
// dispatched, instrumented kernels over *tensor.Tensor.
package cpu
