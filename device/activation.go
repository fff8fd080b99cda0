package device

import (
	"context"

	"github.com/omniflow-go/omniflow/tensor"
)

// GELU returns x·Φ(x) (the exact erf form).
func GELU(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpGELU, x, 0)
}

// GELUTanh returns the tanh approximation of GELU (Hendrycks & Gimpel 2016),
// "gelu_pytorch_tanh" / "gelu_new".
func GELUTanh(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpGELUTanh, x, 0)
}

// SiLU returns x·σ(x).
func SiLU(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpSiLU, x, 0)
}

// SwiGLU returns silu(gate)·up (same shapes).
func SwiGLU(ctx context.Context, gate, up *tensor.Tensor) (*tensor.Tensor, error) {
	return Binary(ctx, OpSwiGLU, gate, up)
}
