// Package cpu holds omniflow's CPU kernels: pure Go, goroutine-parallel,
// with Go assembly micro-kernels where they pay (matmul on AVX-512/AVX2,
// chosen at run time, with a pure-Go fallback). Kernels here work on raw
// float32 slices with explicit shapes; package device wraps them as
// dispatched, instrumented kernels over *tensor.Tensor.
//
// Every kernel is a free function over row-major []float32 with its shape
// given explicitly and a threads argument (<= 0: all cores). Large work is
// split with ParallelFor over rows, heads, channels or output blocks; no
// goroutine outlives the call. A slice whose length does not match its shape
// is a programmer error and panics with the kernel's name; data errors (a
// token id outside the vocabulary, a full KV cache) are returned.
//
// The families, one file each:
//
//   - gemm.go: Sgemm, SgemmBatched (the matmul everything heavy runs on)
//   - elementwise.go: Add, Sub, Mul, Div with NumPy broadcasting, AddRows,
//     Scale, AddScalar, Exp, Tanh, Sigmoid, Neg, Sqrt, Rsqrt; Sum, Mean,
//     Max, ArgMax along the last axis
//   - softmax.go: Softmax, SoftmaxScaled, SoftmaxCausal, CausalMask,
//     LogSoftmax
//   - norm.go: LayerNorm, RMSNorm, RMSNormChannels (over the channels of
//     channel-first [N, C, spatial], no transpose), GroupNorm
//   - activation.go: GELU (erf), GELUTanh, SiLU, SwiGLU, SwiGLUFused
//   - rope.go: RopeTable, Rope, RopeAt (rotate-half and interleaved pairs)
//   - attention.go, kvcache.go: Attention (blockwise online softmax on
//     Sgemm; GQA, causal with an offset, additive and key-padding masks,
//     [B,H,T,D] or [B,T,H,D] layouts) and KVCache
//   - conv.go: Conv1D, Conv2D, Conv3D (groups, dilation, causal padding) and
//     ConvTranspose1D, via im2col/col2im + Sgemm
//   - embedding.go: Embedding
//   - sample.go: Greedy, Sampler (temperature, top-k, top-p, repetition
//     penalty) with a caller-seeded math/rand/v2 generator
//   - convert.go: float32 to and from bfloat16 and float16
//
// Each kernel's test checks it against a float64 reference with its
// tolerance and the reason for it written beside it; benchmarks report
// GFLOP/s or GB/s.
package cpu
