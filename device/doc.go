// Package device dispatches kernels over *tensor.Tensor to the device the
// operands live on, and is the one place kernel spans are recorded.
//
// A Device is small (name, alloc, copy, sync, close). Kernels are free
// functions here (MatMul, Linear, Softmax, Attention, Conv, Sample, ...):
// each validates its operands (a nil tensor, a shape that does not fit, a
// negative position or a NaN parameter is an error wrapping ErrShape,
// ErrNilTensor, ErrDType or ErrParam that names the kernel and argument,
// never a panic), records a kernel span, lets the operands' backend run it
// if the backend implements that kernel's one-method interface (MatMuler,
// Softmaxer, Attender, Convolver, Unaryer, ...; see kernels.go), and
// otherwise runs the CPU kernel from package device/cpu, copying device
// operands to the host and the result back. A backend answering
// ErrNotImplemented gets the same fallback. Float16 and bfloat16 inputs
// are converted to float32; results are float32.
//
// A kernel span carries the op name, the device that ran it (the backend,
// or "cpu" after a fallback), the dtype, FLOPs and bytes moved (each
// operand at its own element size) and, when the profile records shapes,
// the first two input shapes, so the summary can show achieved GFLOP/s and
// GB/s per kernel. Devices that account for their memory (MemoryStats)
// feed a memory counter track per device, sampled after the kernels that
// allocated on it.
//
// Host tensors run on the context's CPU device (WithDevice), else on
// DefaultCPU; a CPU device's thread count and allocator are its own (the
// operand copies and conversions a kernel makes come from it too).
//
//	y, err := device.Linear(ctx, x, w, b)        // x·wᵀ + b
//	s, err := device.MatMul(ctx, q, k, false, true)
package device
