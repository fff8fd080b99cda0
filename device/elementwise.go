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
	xf, rx, err := float32s(k.ctx, x)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rx()
	out, err := k.alloc(x.Shape()...)
	if err != nil {
		return nil, k.wrap(err)
	}
	f(k.cpu.Threads(), out.Float32s(), xf.Float32s())
	return k.finish(out, nil)
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
	af, ra, err := float32s(k.ctx, a)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer ra()
	bf, rb, err := float32s(k.ctx, b)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rb()
	out, err := k.alloc(shape...)
	if err != nil {
		return nil, k.wrap(err)
	}
	f(k.cpu.Threads(), out.Float32s(), af.Float32s(), af.Shape(), bf.Float32s(), bf.Shape())
	return k.finish(out, nil)
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

// rowsKernel runs a kernel over the rows of x's last axis; out has outCols
// columns per row (x's own when outCols < 0).
func rowsKernel(ctx context.Context, name string, x *tensor.Tensor, outCols int, flopsPerElem int64,
	f func(threads int, dst, x []float32, rows, cols int)) (*tensor.Tensor, error) {
	if x.Rank() < 1 {
		return nil, shapeErr("%s: want rank >= 1, got a scalar", name)
	}
	cols := x.Dim(-1)
	rows := x.NumElements() / max(cols, 1)
	shape := append([]int(nil), x.Shape()...)
	if outCols >= 0 {
		shape[len(shape)-1] = outCols
		if outCols == 0 {
			shape = shape[:len(shape)-1]
		}
	}
	k := begin(ctx, name, cost{flops: flopsPerElem * int64(rows*cols), bytes: bytes32(rows*cols, prod(shape))}, x)
	defer k.end()
	xf, rx, err := float32s(k.ctx, x)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rx()
	out, err := k.alloc(shape...)
	if err != nil {
		return nil, k.wrap(err)
	}
	f(k.cpu.Threads(), out.Float32s(), xf.Float32s(), rows, cols)
	return k.finish(out, nil)
}

// Softmax returns softmax over the last axis (numerically stable; fully
// masked rows of -Inf give zeros).
func Softmax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "softmax", x, -1, 5, cpu.Softmax)
}

// LogSoftmax returns log-softmax over the last axis.
func LogSoftmax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "log_softmax", x, -1, 5, cpu.LogSoftmax)
}

// Sum reduces the last axis by summing (the axis is removed).
func Sum(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "sum", x, 0, 1, cpu.Sum)
}

// Mean reduces the last axis by averaging.
func Mean(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "mean", x, 0, 1, cpu.Mean)
}

// Max reduces the last axis by its maximum.
func Max(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return rowsKernel(ctx, "max", x, 0, 1, cpu.Max)
}

// ArgMax returns the int32 index of the maximum along the last axis.
func ArgMax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	if x.Rank() < 1 {
		return nil, shapeErr("argmax: want rank >= 1, got a scalar")
	}
	cols := x.Dim(-1)
	rows := x.NumElements() / max(cols, 1)
	k := begin(ctx, "argmax", cost{flops: int64(rows * cols), bytes: bytes32(rows*cols, rows)}, x)
	defer k.end()
	xf, rx, err := float32s(k.ctx, x)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rx()
	out, err := k.cpu.Alloc(k.ctx, tensor.Int32, x.Shape()[:x.Rank()-1])
	if err != nil {
		return nil, k.wrap(err)
	}
	cpu.ArgMax(k.cpu.Threads(), out.Int32s(), xf.Float32s(), rows, cols)
	return k.finish(out, nil)
}
