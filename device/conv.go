package device

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// ConvOptions configure a convolution over the spatial dims of x. Slices
// have one entry per spatial dim (outermost first) or a single entry for
// all of them; nil means the default (stride 1, dilation 1, no padding).
type ConvOptions struct {
	Stride, Dilation []int
	// Padding pads both ends of each dim; PadBegin/PadEnd, when set, pad
	// the two ends separately instead.
	Padding          []int
	PadBegin, PadEnd []int
	Groups           int
	// Causal puts all of the first spatial dim's padding in front (causal
	// conv1d of vocoders, CausalConv3d of video VAEs).
	Causal bool
}

func spread(v []int, n, def int) []int {
	out := make([]int, n)
	for i := range out {
		switch len(v) {
		case 0:
			out[i] = def
		case 1:
			out[i] = v[0]
		default:
			out[i] = v[i]
		}
	}
	return out
}

// maxConvParam bounds strides, dilations, paddings and kernel sizes, so
// that the output size arithmetic cannot overflow.
const maxConvParam = 1<<31 - 1

// Conv computes conv(x, w) + bias for x [N, InC, spatial...] (1 to 3
// spatial dims), w [OutC, InC/Groups, kernel...] and bias [OutC] or nil —
// PyTorch's layout. The result is [N, OutC, out...].
func Conv(ctx context.Context, x, w, bias *tensor.Tensor, opt ConvOptions) (*tensor.Tensor, error) {
	if err := present("conv", operand{"x", x}, operand{"weight", w}); err != nil {
		return nil, err
	}
	sd := x.Rank() - 2
	if sd < 1 || sd > 3 || w.Rank() != x.Rank() {
		return nil, shapeErr("conv: input %v and weight %v: want [N, C, 1–3 spatial dims] and a weight of the same rank", x.Shape(), w.Shape())
	}
	name := convName[sd]
	for _, o := range []struct {
		name string
		v    []int
	}{{"stride", opt.Stride}, {"dilation", opt.Dilation}, {"padding", opt.Padding}, {"pad begin", opt.PadBegin}, {"pad end", opt.PadEnd}} {
		if len(o.v) > 1 && len(o.v) != sd {
			return nil, shapeErr("%s: %s has %d entries for %d spatial dims", name, o.name, len(o.v), sd)
		}
		for _, v := range o.v {
			if v < 0 || v > maxConvParam {
				return nil, shapeErr("%s: %s %v: want entries in [0, %d]", name, o.name, o.v, maxConvParam)
			}
		}
	}
	if opt.Groups < 0 {
		return nil, shapeErr("%s: groups is %d, want >= 0 (0 means 1)", name, opt.Groups)
	}
	groups := max(opt.Groups, 1)
	p := cpu.ConvParams{N: x.Dim(0), InC: x.Dim(1), OutC: w.Dim(0), Groups: groups,
		In: append([]int(nil), x.Shape()[2:]...), Kernel: append([]int(nil), w.Shape()[2:]...),
		Stride: spread(opt.Stride, sd, 1), Dilation: spread(opt.Dilation, sd, 1), Causal: opt.Causal}
	if opt.PadBegin != nil || opt.PadEnd != nil {
		p.PadBegin, p.PadEnd = spread(opt.PadBegin, sd, 0), spread(opt.PadEnd, sd, 0)
	} else {
		p.PadBegin, p.PadEnd = spread(opt.Padding, sd, 0), spread(opt.Padding, sd, 0)
	}
	if p.InC <= 0 || p.OutC <= 0 || p.InC%groups != 0 || p.OutC%groups != 0 || w.Dim(1) != p.InC/groups {
		return nil, shapeErr("%s: input %v, weight %v, %d groups do not fit (channels > 0, multiples of groups)", name, x.Shape(), w.Shape(), groups)
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != p.OutC) {
		return nil, shapeErr("%s: bias %v for %d output channels", name, bias.Shape(), p.OutC)
	}
	if err := floatOperands(name, operand{"x", x}, operand{"weight", w}, operand{"bias", bias}); err != nil {
		return nil, err
	}
	outSpatial := make([]int, sd)
	for i := range outSpatial {
		if p.Stride[i] <= 0 || p.Dilation[i] <= 0 || p.Kernel[i] <= 0 || p.Kernel[i] > maxConvParam {
			return nil, shapeErr("%s: dim %d: kernel %d, stride %d, dilation %d: want each in [1, %d]", name, i, p.Kernel[i], p.Stride[i], p.Dilation[i], maxConvParam)
		}
		eff := p.Dilation[i]*(p.Kernel[i]-1) + 1
		n := p.In[i] + p.PadBegin[i] + p.PadEnd[i] - eff
		if n < 0 {
			return nil, shapeErr("%s: dim %d: input %d, kernel %d, stride %d, dilation %d, padding %d+%d give no output",
				name, i, p.In[i], p.Kernel[i], p.Stride[i], p.Dilation[i], p.PadBegin[i], p.PadEnd[i])
		}
		outSpatial[i] = n/p.Stride[i] + 1
	}
	shape := append([]int{p.N, p.OutC}, outSpatial...)
	outN, err := tensor.NumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("%s: output: %w", name, err)
	}
	macs := int64(outN) * int64(p.InC/groups) * int64(prod(p.Kernel))
	return dispatch(ctx, name, cost{flops: 2 * macs, bytes: traffic(outN, x, w, bias)}, []*tensor.Tensor{x, w},
		func(ctx context.Context, d Convolver) (*tensor.Tensor, error) { return d.Conv(ctx, x, w, bias, opt) },
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x, w, bias)
			if err != nil {
				return nil, err
			}
			return k.output(shape, func(dst []float32) error {
				cpu.Conv(k.cpu.Threads(), dst, in[0], in[1], in[2], p)
				return nil
			})
		})
}

var convName = [...]string{"", "conv1d", "conv2d", "conv3d"}

// ConvTranspose1dOptions configure a transposed 1-d convolution. Zero
// Stride, Dilation and Groups mean 1.
type ConvTranspose1dOptions struct {
	Stride, Dilation, Padding, OutputPadding, Groups int
}

// ConvTranspose1d is the transposed convolution of x [N, InC, L] with w
// [InC, OutC/Groups, K] (PyTorch's layout) plus bias [OutC]: the upsampling
// layer of HiFi-GAN vocoders. The output length is
// (L−1)·stride − 2·padding + dilation·(K−1) + output_padding + 1.
func ConvTranspose1d(ctx context.Context, x, w, bias *tensor.Tensor, opt ConvTranspose1dOptions) (*tensor.Tensor, error) {
	const name = "conv_transpose1d"
	if err := present(name, operand{"x", x}, operand{"weight", w}); err != nil {
		return nil, err
	}
	if x.Rank() != 3 || w.Rank() != 3 {
		return nil, shapeErr("conv_transpose1d: input %v, weight %v: want rank 3", x.Shape(), w.Shape())
	}
	for _, o := range []struct {
		name string
		v    int
	}{{"stride", opt.Stride}, {"dilation", opt.Dilation}, {"padding", opt.Padding}, {"output padding", opt.OutputPadding}, {"groups", opt.Groups}} {
		if o.v < 0 || o.v > maxConvParam {
			return nil, shapeErr("conv_transpose1d: %s is %d, want [0, %d]", o.name, o.v, maxConvParam)
		}
	}
	groups := max(opt.Groups, 1)
	if w.Dim(1) > maxConvParam || w.Dim(2) > maxConvParam || x.Dim(2) > maxConvParam {
		return nil, shapeErr("conv_transpose1d: input %v, weight %v: too large", x.Shape(), w.Shape())
	}
	p := cpu.ConvTranspose1DParams{N: x.Dim(0), InC: x.Dim(1), OutC: w.Dim(1) * groups, Groups: groups,
		In: x.Dim(2), Kernel: w.Dim(2), Stride: max(opt.Stride, 1), Dilation: max(opt.Dilation, 1),
		Pad: opt.Padding, OutputPad: opt.OutputPadding}
	if w.Dim(0) != p.InC || p.InC <= 0 || p.OutC <= 0 || p.InC%groups != 0 {
		return nil, shapeErr("conv_transpose1d: input %v, weight %v, %d groups do not fit (channels > 0, multiples of groups)", x.Shape(), w.Shape(), groups)
	}
	if p.OutputPad >= max(p.Stride, p.Dilation) || p.Kernel <= 0 {
		return nil, shapeErr("conv_transpose1d: kernel %d, padding %d, output padding %d, stride %d, dilation %d (want kernel > 0, output padding < max(stride, dilation))",
			p.Kernel, p.Pad, p.OutputPad, p.Stride, p.Dilation)
	}
	if p.In == 0 {
		return nil, shapeErr("conv_transpose1d: input %v has no positions", x.Shape())
	}
	l := p.OutLen()
	if l <= 0 {
		return nil, shapeErr("conv_transpose1d: input %v, weight %v, padding %d: output length %d", x.Shape(), w.Shape(), p.Pad, l)
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != p.OutC) {
		return nil, shapeErr("conv_transpose1d: bias %v for %d output channels", bias.Shape(), p.OutC)
	}
	if err := floatOperands(name, operand{"x", x}, operand{"weight", w}, operand{"bias", bias}); err != nil {
		return nil, err
	}
	shape := []int{p.N, p.OutC, l}
	outN, err := tensor.NumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("%s: output: %w", name, err)
	}
	macs := int64(p.N) * int64(p.In) * int64(p.InC) * int64(p.OutC/groups) * int64(p.Kernel)
	return dispatch(ctx, name, cost{flops: 2 * macs, bytes: traffic(outN, x, w, bias)}, []*tensor.Tensor{x, w},
		func(ctx context.Context, d ConvTransposer) (*tensor.Tensor, error) {
			return d.ConvTranspose1d(ctx, x, w, bias, opt)
		},
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x, w, bias)
			if err != nil {
				return nil, err
			}
			return k.output(shape, func(dst []float32) error {
				cpu.ConvTranspose1D(k.cpu.Threads(), dst, in[0], in[1], in[2], p)
				return nil
			})
		})
}

// ErrTokenID reports an embedding id outside the table.
var ErrTokenID = cpu.ErrTokenID

// Embedding gathers rows of table [V, D] for int32 ids of any shape; the
// result is [ids..., D]. An id outside [0, V) is an error naming it.
func Embedding(ctx context.Context, ids, table *tensor.Tensor) (*tensor.Tensor, error) {
	const name = "embedding"
	if err := present(name, operand{"ids", ids}, operand{"table", table}); err != nil {
		return nil, err
	}
	if ids.DType() != tensor.Int32 {
		return nil, shapeErrDType("embedding: ids are %v, want int32", ids.DType())
	}
	if table.Rank() != 2 {
		return nil, shapeErr("embedding: table %v, want [vocab, dim]", table.Shape())
	}
	if err := floatOperands(name, operand{"table", table}); err != nil {
		return nil, err
	}
	v, d := table.Dim(0), table.Dim(1)
	n := ids.NumElements()
	shape := append(append([]int(nil), ids.Shape()...), d)
	if _, err := tensor.NumElements(shape); err != nil {
		return nil, fmt.Errorf("%s: output: %w", name, err)
	}
	c := cost{bytes: int64(n)*4 + int64(n)*int64(d)*int64(table.DType().Size()+4)}
	return dispatch(ctx, name, c, []*tensor.Tensor{ids, table},
		func(ctx context.Context, dv Embedder) (*tensor.Tensor, error) { return dv.Embedding(ctx, ids, table) },
		func(k *kernelCall) (*tensor.Tensor, error) {
			idc, ri, err := hostContiguous(k.ctx, k.cpu.mem, ids)
			if err != nil {
				return nil, k.wrap(err)
			}
			defer ri()
			in, err := k.data(table)
			if err != nil {
				return nil, err
			}
			if d == 0 { // no rows to copy, but the ids must still be in range
				for i, id := range idc.Int32s() {
					if id < 0 || int(id) >= v {
						return nil, k.wrap(fmt.Errorf("ids[%d] = %d, vocabulary is [0, %d): %w", i, id, v, ErrTokenID))
					}
				}
			}
			return k.output(shape, func(dst []float32) error {
				return cpu.Embedding(k.cpu.Threads(), dst, in[0], v, d, idc.Int32s())
			})
		})
}
