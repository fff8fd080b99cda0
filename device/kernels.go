package device

import (
	"context"
	"math/rand/v2"

	"github.com/omniflow-go/omniflow/tensor"
)

// Kernels a backend may provide. A Device stays small; a backend adds a
// kernel by implementing that kernel's one-method interface below, with the
// same arguments and result as the free function of this package that
// dispatches to it (already validated there). A method that answers
// ErrNotImplemented (for a dtype or a case it does not handle, say) makes
// the dispatcher run the CPU kernel instead, as for a backend that lacks
// the method; either way one kernel span is recorded, naming the device
// that ran it. The CPU device implements none of these: its kernels are
// the fallback.
//
// Families of elementwise kernels share one method with an op argument
// (UnaryOp, BinaryOp, ReduceOp), so that a backend gains an op without a
// new interface.

// MatMuler is a backend's matmul: out = op(a)·op(b) with NumPy batch
// broadcasting, as MatMul.
type MatMuler interface {
	MatMul(ctx context.Context, a, b *tensor.Tensor, transA, transB bool) (*tensor.Tensor, error)
}

// Linearer is a backend's Linear (x·wᵀ + bias; bias may be nil).
type Linearer interface {
	Linear(ctx context.Context, x, w, bias *tensor.Tensor) (*tensor.Tensor, error)
}

// UnaryOp names an elementwise kernel of one operand; its value is the
// kernel's span name.
type UnaryOp string

// The unary ops. OpScale and OpAddScalar take the scalar argument of
// Unaryer.Unary; the others ignore it.
const (
	OpExp       UnaryOp = "exp"
	OpTanh      UnaryOp = "tanh"
	OpSigmoid   UnaryOp = "sigmoid"
	OpNeg       UnaryOp = "neg"
	OpSqrt      UnaryOp = "sqrt"
	OpRsqrt     UnaryOp = "rsqrt"
	OpScale     UnaryOp = "scale"
	OpAddScalar UnaryOp = "add_scalar"
	OpGELU      UnaryOp = "gelu"
	OpGELUTanh  UnaryOp = "gelu_tanh"
	OpSiLU      UnaryOp = "silu"
)

// Unaryer is a backend's elementwise kernels of one operand (Exp, GELU,
// Scale, ...): the result has x's shape.
type Unaryer interface {
	Unary(ctx context.Context, op UnaryOp, x *tensor.Tensor, s float32) (*tensor.Tensor, error)
}

// BinaryOp names an elementwise kernel of two operands; its value is the
// kernel's span name.
type BinaryOp string

// The binary ops: the arithmetic ones broadcast as in NumPy; OpSwiGLU
// (silu(a)·b) takes operands of the same shape.
const (
	OpAdd    BinaryOp = "add"
	OpSub    BinaryOp = "sub"
	OpMul    BinaryOp = "mul"
	OpDiv    BinaryOp = "div"
	OpSwiGLU BinaryOp = "swiglu"
)

// Binaryer is a backend's elementwise kernels of two operands.
type Binaryer interface {
	Binary(ctx context.Context, op BinaryOp, a, b *tensor.Tensor) (*tensor.Tensor, error)
}

// ReduceOp names a reduction over the last axis; its value is the kernel's
// span name.
type ReduceOp string

// The reductions: the last axis is removed; OpArgMax gives int32 indices,
// the others float32.
const (
	OpSum    ReduceOp = "sum"
	OpMean   ReduceOp = "mean"
	OpMax    ReduceOp = "max"
	OpArgMax ReduceOp = "argmax"
)

// Reducer is a backend's reductions over the last axis.
type Reducer interface {
	Reduce(ctx context.Context, op ReduceOp, x *tensor.Tensor) (*tensor.Tensor, error)
}

// Softmaxer is a backend's softmax over the last axis (log-softmax when log
// is set).
type Softmaxer interface {
	Softmax(ctx context.Context, x *tensor.Tensor, log bool) (*tensor.Tensor, error)
}

// LayerNormer is a backend's LayerNorm (weight and bias may be nil).
type LayerNormer interface {
	LayerNorm(ctx context.Context, x, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error)
}

// RMSNormer is a backend's RMSNorm (weight may be nil).
type RMSNormer interface {
	RMSNorm(ctx context.Context, x, weight *tensor.Tensor, eps float32) (*tensor.Tensor, error)
}

// ChannelRMSNormer is a backend's RMSNormChannels: RMSNorm over axis 1 of
// a channel-first tensor (weight may be nil).
type ChannelRMSNormer interface {
	RMSNormChannels(ctx context.Context, x, weight *tensor.Tensor, eps float32) (*tensor.Tensor, error)
}

// GroupNormer is a backend's GroupNorm (weight and bias may be nil).
type GroupNormer interface {
	GroupNorm(ctx context.Context, x *tensor.Tensor, groups int, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error)
}

// Roper is a backend's RoPE.
type Roper interface {
	RoPE(ctx context.Context, x *tensor.Tensor, tab RopeTable, mode RopeMode, pos0 int, positions []int32) (*tensor.Tensor, error)
}

// Attender is a backend's Attention over k and v tensors. (AttentionCache
// reads a host KVCache and always runs on the CPU.)
type Attender interface {
	Attention(ctx context.Context, q, k, v *tensor.Tensor, opt AttentionOptions) (*tensor.Tensor, error)
}

// Convolver is a backend's Conv over 1 to 3 spatial dims (bias may be nil).
type Convolver interface {
	Conv(ctx context.Context, x, w, bias *tensor.Tensor, opt ConvOptions) (*tensor.Tensor, error)
}

// ConvTransposer is a backend's ConvTranspose1d (bias may be nil).
type ConvTransposer interface {
	ConvTranspose1d(ctx context.Context, x, w, bias *tensor.Tensor, opt ConvTranspose1dOptions) (*tensor.Tensor, error)
}

// Embedder is a backend's Embedding lookup.
type Embedder interface {
	Embedding(ctx context.Context, ids, table *tensor.Tensor) (*tensor.Tensor, error)
}

// TokenSampler is a backend's Sample: one token drawn from one row of
// logits. It must draw from rng exactly as the CPU kernel does (one
// Float64 per draw that is not determined), so that a seed gives the same
// tokens on every device.
type TokenSampler interface {
	Sample(ctx context.Context, logits *tensor.Tensor, prev []int32, p SampleParams, rng *rand.Rand) (int32, error)
}
