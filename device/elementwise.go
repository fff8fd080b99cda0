package device

import (
	"context"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// unaryKernels are the CPU kernels of the unary ops, with their FLOPs per
// element.
var unaryKernels = map[UnaryOp]struct {
	flops int64
	f     func(threads int, dst, x []float32, s float32)
}{
	OpExp:       {1, func(th int, d, x []float32, _ float32) { cpu.Exp(th, d, x) }},
	OpTanh:      {1, func(th int, d, x []float32, _ float32) { cpu.Tanh(th, d, x) }},
	OpSigmoid:   {3, func(th int, d, x []float32, _ float32) { cpu.Sigmoid(th, d, x) }},
	OpNeg:       {1, func(th int, d, x []float32, _ float32) { cpu.Neg(th, d, x) }},
	OpSqrt:      {1, func(th int, d, x []float32, _ float32) { cpu.Sqrt(th, d, x) }},
	OpRsqrt:     {2, func(th int, d, x []float32, _ float32) { cpu.Rsqrt(th, d, x) }},
	OpScale:     {1, func(th int, d, x []float32, s float32) { cpu.Scale(th, d, x, s) }},
	OpAddScalar: {1, func(th int, d, x []float32, s float32) { cpu.AddScalar(th, d, x, s) }},
	OpGELU:      {8, func(th int, d, x []float32, _ float32) { cpu.GELU(th, d, x) }},
	OpGELUTanh:  {8, func(th int, d, x []float32, _ float32) { cpu.GELUTanh(th, d, x) }},
	OpSiLU:      {4, func(th int, d, x []float32, _ float32) { cpu.SiLU(th, d, x) }},
}

// Unary runs the elementwise op on x (s is the scalar of OpScale and
// OpAddScalar): the function behind Exp, GELU, Scale and the others, for
// code that picks the op at run time. The result has x's shape.
func Unary(ctx context.Context, op UnaryOp, x *tensor.Tensor, s float32) (*tensor.Tensor, error) {
	kern, ok := unaryKernels[op]
	if !ok {
		return nil, paramErr("unary: unknown op %q", op)
	}
	name := string(op)
	if err := present(name, operand{"x", x}); err != nil {
		return nil, err
	}
	if err := floatOperands(name, operand{"x", x}); err != nil {
		return nil, err
	}
	n := x.NumElements()
	return dispatch(ctx, name, cost{flops: kern.flops * int64(n), bytes: traffic(n, x)}, []*tensor.Tensor{x},
		func(ctx context.Context, d Unaryer) (*tensor.Tensor, error) { return d.Unary(ctx, op, x, s) },
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x)
			if err != nil {
				return nil, err
			}
			return k.output(x.Shape(), func(dst []float32) error { kern.f(k.cpu.Threads(), dst, in[0], s); return nil })
		})
}

// Exp returns eˣ elementwise.
func Exp(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpExp, x, 0)
}

// Tanh returns tanh(x) elementwise.
func Tanh(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpTanh, x, 0)
}

// Sigmoid returns 1/(1+e⁻ˣ) elementwise.
func Sigmoid(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpSigmoid, x, 0)
}

// Neg returns -x.
func Neg(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpNeg, x, 0)
}

// Sqrt returns √x elementwise.
func Sqrt(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpSqrt, x, 0)
}

// Rsqrt returns 1/√x elementwise.
func Rsqrt(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Unary(ctx, OpRsqrt, x, 0)
}

// Scale returns s·x.
func Scale(ctx context.Context, x *tensor.Tensor, s float32) (*tensor.Tensor, error) {
	return Unary(ctx, OpScale, x, s)
}

// AddScalar returns x + s.
func AddScalar(ctx context.Context, x *tensor.Tensor, s float32) (*tensor.Tensor, error) {
	return Unary(ctx, OpAddScalar, x, s)
}

// binaryKernels are the CPU kernels of the broadcasting binary ops.
var binaryKernels = map[BinaryOp]func(threads int, dst, a []float32, as []int, b []float32, bs []int){
	OpAdd: cpu.Add,
	OpSub: cpu.Sub,
	OpMul: cpu.Mul,
	OpDiv: cpu.Div,
}

// Binary runs the elementwise op on a and b: the function behind Add, Sub,
// Mul, Div (NumPy broadcasting) and SwiGLU (equal shapes), for code that
// picks the op at run time.
func Binary(ctx context.Context, op BinaryOp, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	name := string(op)
	f, ok := binaryKernels[op]
	if !ok && op != OpSwiGLU {
		return nil, paramErr("binary: unknown op %q", op)
	}
	argA, argB := "a", "b"
	if op == OpSwiGLU {
		argA, argB = "gate", "up"
	}
	if err := present(name, operand{argA, a}, operand{argB, b}); err != nil {
		return nil, err
	}
	if err := floatOperands(name, operand{argA, a}, operand{argB, b}); err != nil {
		return nil, err
	}
	var shape []int
	flops := int64(1)
	if op == OpSwiGLU {
		if !tensor.SameShape(a.Shape(), b.Shape()) {
			return nil, shapeErr("swiglu: gate %v and up %v differ", a.Shape(), b.Shape())
		}
		shape, flops = a.Shape(), 5
	} else {
		var err error
		if shape, err = cpu.BroadcastShape(a.Shape(), b.Shape()); err != nil {
			return nil, shapeErr("%s: a %v and b %v: %v", name, a.Shape(), b.Shape(), err)
		}
		if _, err := tensor.NumElements(shape); err != nil {
			return nil, shapeErr("%s: result of a %v and b %v: %v", name, a.Shape(), b.Shape(), err)
		}
	}
	n := prod(shape)
	return dispatch(ctx, name, cost{flops: flops * int64(n), bytes: traffic(n, a, b)}, []*tensor.Tensor{a, b},
		func(ctx context.Context, d Binaryer) (*tensor.Tensor, error) { return d.Binary(ctx, op, a, b) },
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(a, b)
			if err != nil {
				return nil, err
			}
			return k.output(shape, func(dst []float32) error {
				if op == OpSwiGLU {
					cpu.SwiGLU(k.cpu.Threads(), dst, in[0], in[1])
				} else {
					f(k.cpu.Threads(), dst, in[0], a.Shape(), in[1], b.Shape())
				}
				return nil
			})
		})
}

// Add returns a + b with NumPy broadcasting.
func Add(ctx context.Context, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return Binary(ctx, OpAdd, a, b)
}

// Sub returns a - b with NumPy broadcasting.
func Sub(ctx context.Context, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return Binary(ctx, OpSub, a, b)
}

// Mul returns a · b elementwise with NumPy broadcasting.
func Mul(ctx context.Context, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return Binary(ctx, OpMul, a, b)
}

// Div returns a / b with NumPy broadcasting.
func Div(ctx context.Context, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	return Binary(ctx, OpDiv, a, b)
}

// rows splits x into rows of its last axis: r is the product of the other
// dims (so a [3, 0] tensor is 3 empty rows).
func rows(name string, x *tensor.Tensor) (r, c int, err error) {
	if err := present(name, operand{"x", x}); err != nil {
		return 0, 0, err
	}
	if x.Rank() < 1 {
		return 0, 0, shapeErr("%s: x: want rank >= 1, got a scalar", name)
	}
	if err := floatOperands(name, operand{"x", x}); err != nil {
		return 0, 0, err
	}
	return prod(x.Shape()[:x.Rank()-1]), x.Dim(-1), nil
}

// Softmax returns softmax over the last axis (numerically stable; fully
// masked rows of -Inf give zeros).
func Softmax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return softmax(ctx, "softmax", x, false)
}

// LogSoftmax returns log-softmax over the last axis.
func LogSoftmax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return softmax(ctx, "log_softmax", x, true)
}

func softmax(ctx context.Context, name string, x *tensor.Tensor, log bool) (*tensor.Tensor, error) {
	r, c, err := rows(name, x)
	if err != nil {
		return nil, err
	}
	return dispatch(ctx, name, cost{flops: 5 * int64(r*c), bytes: traffic(r*c, x)}, []*tensor.Tensor{x},
		func(ctx context.Context, d Softmaxer) (*tensor.Tensor, error) { return d.Softmax(ctx, x, log) },
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x)
			if err != nil {
				return nil, err
			}
			f := cpu.Softmax
			if log {
				f = cpu.LogSoftmax
			}
			return k.output(x.Shape(), func(dst []float32) error { f(k.cpu.Threads(), dst, in[0], r, c); return nil })
		})
}

// Reduce reduces the last axis of x by op, removing it: the function behind
// Sum, Mean, Max and ArgMax. Summing an empty axis gives zeros; the other
// reductions of an empty axis are an error.
func Reduce(ctx context.Context, op ReduceOp, x *tensor.Tensor) (*tensor.Tensor, error) {
	name := string(op)
	var f func(threads int, dst, x []float32, rows, cols int)
	switch op {
	case OpSum:
		f = cpu.Sum
	case OpMean:
		f = cpu.Mean
	case OpMax:
		f = cpu.Max
	case OpArgMax:
	default:
		return nil, paramErr("reduce: unknown op %q", op)
	}
	r, c, err := rows(name, x)
	if err != nil {
		return nil, err
	}
	if c == 0 && r > 0 && op != OpSum {
		return nil, shapeErr("%s: x %v: the last axis is empty", name, x.Shape())
	}
	shape := x.Shape()[:x.Rank()-1]
	return dispatch(ctx, name, cost{flops: int64(r * c), bytes: traffic(r, x)}, []*tensor.Tensor{x},
		func(ctx context.Context, d Reducer) (*tensor.Tensor, error) { return d.Reduce(ctx, op, x) },
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x)
			if err != nil {
				return nil, err
			}
			if op == OpArgMax {
				return k.outputOf(tensor.Int32, shape, func(out *tensor.Tensor) error {
					cpu.ArgMax(k.cpu.Threads(), out.Int32s(), in[0], r, c)
					return nil
				})
			}
			return k.output(shape, func(dst []float32) error {
				if c > 0 {
					f(k.cpu.Threads(), dst, in[0], r, c)
				}
				return nil
			})
		})
}

// Sum reduces the last axis by summing (the axis is removed).
func Sum(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Reduce(ctx, OpSum, x)
}

// Mean reduces the last axis by averaging.
func Mean(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Reduce(ctx, OpMean, x)
}

// Max reduces the last axis by its maximum.
func Max(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Reduce(ctx, OpMax, x)
}

// ArgMax returns the int32 index of the maximum along the last axis.
func ArgMax(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	return Reduce(ctx, OpArgMax, x)
}
