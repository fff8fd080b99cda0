package device

import (
	"context"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// unaryKernel runs an elementwise float32 kernel: out has x's shape.
func unaryKernel(ctx context.Context, name string, x *tensor.Tensor, flopsPerElem int64,
	f func(threads int, dst, x []float32)) (*tensor.Tensor, error) {
	n := x.NumElements()
	k := begin(ctx, name, cost{flops: flopsPerElem * int64(n), bytes: bytes32(n, n)}, x)
	defer k.end()
	in, err := k.data(x)
	if err != nil {
		return nil, err
	}
	return k.output(x.Shape(), func(dst []float32) error { f(k.cpu.Threads(), dst, in[0]); return nil })
}

// Exp returns eˣ elementwise.
func Exp(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "exp", x, 1, cpu.Exp)
}

// Tanh returns tanh(x) elementwise.
func Tanh(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "tanh", x, 1, cpu.Tanh)
}

// Sigmoid returns 1/(1+e⁻ˣ) elementwise.
func Sigmoid(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "sigmoid", x, 3, cpu.Sigmoid)
}

// Neg returns -x.
func Neg(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "neg", x, 1, cpu.Neg)
}

// Sqrt returns √x elementwise.
func Sqrt(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "sqrt", x, 1, cpu.Sqrt)
}

// Rsqrt returns 1/√x elementwise.
func Rsqrt(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "rsqrt", x, 2, cpu.Rsqrt)
}

// Scale returns s·x.
func Scale(ctx context.Context, x *tensor.Tensor, s float32) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "scale", x, 1, func(th int, dst, x []float32) { cpu.Scale(th, dst, x, s) })
}

// AddScalar returns x + s.
func AddScalar(ctx context.Context, x *tensor.Tensor, s float32) (*tensor.Tensor, error) {
	return unaryKernel(ctx, "add_scalar", x, 1, func(th int, dst, x []float32) { cpu.AddScalar(th, dst, x, s) })
}

// binaryKernel runs a broadcasting float32 kernel.
func binaryKernel(ctx context.Context, name string, a, b *tensor.Tensor,
	f func(threads int, dst, a []float32, as []int, b []float32, bs []int)) (*tensor.Tensor, error) {
	shape, err := cpu.BroadcastShape(a.Shape(), b.Shape())
	if err != nil {
		return nil, shapeErr("%s: %v", name, err)
	}
	n := prod(shape)
	k := begin(ctx, name, cost{flops: int64(n), bytes: bytes32(a.NumElements(), b.NumElements(), n)}, a, b)
	defer k.end()
	in, err := k.data(a, b)
	if err != nil {
		return nil, err
	}
	return k.output(shape, func(dst []float32) error {
		f(k.cpu.Threads(), dst, in[0], a.Shape(), in[1], b.Shape())
		return nil
	})
}

// Add returns a + b with NumPy broadcasting.
func Add(ctx context.Context, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return binaryKernel(ctx, "add", a, b, cpu.Add)
}

// Sub returns a - b with NumPy broadcasting.
func Sub(ctx context.Context, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return binaryKernel(ctx, "sub", a, b, cpu.Sub)
}

// Mul returns a · b elementwise with NumPy broadcasting.
func Mul(ctx context.Context, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return binaryKernel(ctx, "mul", a, b, cpu.Mul)
}

// Div returns a / b with NumPy broadcasting.
func Div(ctx context.Context, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return binaryKernel(ctx, "div", a, b, cpu.Div)
}

// rows splits x into rows of its last axis.
func rows(name string, x *tensor.Tensor) (r, c int, err error) {
	if x.Rank() < 1 {
		return 0, 0, shapeErr("%s: want rank >= 1, got a scalar", name)
	}
	c = x.Dim(-1)
	return x.NumElements() / max(c, 1), c, nil
}

// rowsKernel runs a kernel over the rows of x's last axis; with reduce the
// axis is removed from the result.
func rowsKernel(ctx context.Context, name string, x *tensor.Tensor, reduce bool, flopsPerElem int64,
	f func(threads int, dst, x []float32, rows, cols int)) (*tensor.Tensor, error) {
	r, c, err := rows(name, x)
	if err != nil {
		return nil, err
	}
	shape := x.Shape()
	if reduce {
		shape = shape[:len(shape)-1]
	}
	k := begin(ctx, name, cost{flops: flopsPerElem * int64(r*c), bytes: bytes32(r*c, prod(shape))}, x)
	defer k.end()
	in, err := k.data(x)
	if err != nil {
		return nil, err
	}
	return k.output(shape, func(dst []float32) error { f(k.cpu.Threads(), dst, in[0], r, c); return nil })
}

// Softmax returns softmax over the last axis (numerically stable; fully
// masked rows of -Inf give zeros).
func Softmax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "softmax", x, false, 5, cpu.Softmax)
}

// LogSoftmax returns log-softmax over the last axis.
func LogSoftmax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "log_softmax", x, false, 5, cpu.LogSoftmax)
}

// Sum reduces the last axis by summing (the axis is removed).
func Sum(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "sum", x, true, 1, cpu.Sum)
}

// Mean reduces the last axis by averaging.
func Mean(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "mean", x, true, 1, cpu.Mean)
}

// Max reduces the last axis by its maximum.
func Max(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "max", x, true, 1, cpu.Max)
}

// ArgMax returns the int32 index of the maximum along the last axis.
func ArgMax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	r, c, err := rows("argmax", x)
	if err != nil {
		return nil, err
	}
	k := begin(ctx, "argmax", cost{flops: int64(r * c), bytes: bytes32(r*c, r)}, x)
	defer k.end()
	in, err := k.data(x)
	if err != nil {
		return nil, err
	}
	out, err := k.cpu.Alloc(k.ctx, tensor.Int32, x.Shape()[:x.Rank()-1])
	if err != nil {
		return nil, k.wrap(err)
	}
	cpu.ArgMax(k.cpu.Threads(), out.Int32s(), in[0], r, c)
	return k.finish(out, nil)
}
