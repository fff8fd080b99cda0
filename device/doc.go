// Package device dispatches kernels over *tensor.Tensor to the device the
// operands live on, and is the one place kernel spans are recorded.
//
// A Device is small (name, alloc, copy, sync, close). Kernels are free
// functions here (MatMul, Linear, Softmax, Attention, Conv1d, ...): each
// validates shapes, records a kernel span (op, device, dtype, FLOPs and
// bytes moved, and the input shapes when the profile records shapes), lets
// the operands' backend run it if the backend implements that kernel's
// one-method interface, and otherwise runs the CPU kernel from package
// device/cpu (copying device operands to the host and the result back; a
// backend answering ErrNotImplemented gets the same fallback). Float16 and
// bfloat16 inputs are converted to float32; results are float32.
//
// Host tensors run on the context's CPU device (WithDevice), else on
// DefaultCPU; a CPU device's thread count and allocator are its own, and
// the bytes its allocator has handed out feed a memory counter track in
// the trace.
//
//	y, err := device.Linear(ctx, x, w, b)        // x·wᵀ + b
//	s, err := device.MatMul(ctx, q, k, false, true)
package device
