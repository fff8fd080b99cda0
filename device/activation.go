package device

import (
	"context"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// GELU returns x·Φ(x) (the exact erf form).
func GELU(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "gelu", x, 8, cpu.GELU)
}

// GELUTanh returns the tanh approximation of GELU (Hendrycks & Gimpel 2016),
// "gelu_pytorch_tanh" / "gelu_new".
func GELUTanh(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "gelu_tanh", x, 8, cpu.GELUTanh)
}

// SiLU returns x·σ(x).
func SiLU(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "silu", x, 4, cpu.SiLU)
}

// SwiGLU returns silu(gate)·up (same shapes).
func SwiGLU(ctx context.Context, gate, up *tensor.Tensor) (*tensor.Tensor, error) {
	if !tensor.SameShape(gate.Shape(), up.Shape()) {
		return nil, shapeErr("swiglu: gate %v and up %v differ", gate.Shape(), up.Shape())
	}
	n := gate.NumElements()
	k := begin(ctx, "swiglu", cost{flops: 5 * int64(n), bytes: bytes32(n, n, n)}, gate, up)
	defer k.end()
	in, err := k.data(gate, up)
	if err != nil {
		return nil, err
	}
	return k.output(gate.Shape(), func(dst []float32) error { cpu.SwiGLU(k.cpu.Threads(), dst, in[0], in[1]); return nil })
}
