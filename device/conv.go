package device

import (
	"context"

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

// Conv computes conv(x, w) + bias for x [N, InC, spatial...] (1 to 3
// spatial dims), w [OutC, InC/Groups, kernel...] and bias [OutC] or nil —
// PyTorch's layout. The result is [N, OutC, out...].
func Conv(ctx context.Context, x, w, bias *tensor.Tensor, opt ConvOptions) (*tensor.Tensor, error) {
	sd := x.Rank() - 2
	if sd < 1 || sd > 3 || w.Rank() != x.Rank() {
		return nil, shapeErr("conv: input %v and weight %v: want [N, C, 1–3 spatial dims] and a weight of the same rank", x.Shape(), w.Shape())
	}
	for _, s := range [][]int{opt.Stride, opt.Dilation, opt.Padding, opt.PadBegin, opt.PadEnd} {
		if len(s) > 1 && len(s) != sd {
			return nil, shapeErr("conv: option of %d entries for %d spatial dims", len(s), sd)
		}
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
	if p.InC%groups != 0 || p.OutC%groups != 0 || w.Dim(1) != p.InC/groups {
		return nil, shapeErr("conv: input %v, weight %v, %d groups do not fit", x.Shape(), w.Shape(), groups)
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != p.OutC) {
		return nil, shapeErr("conv: bias %v for %d output channels", bias.Shape(), p.OutC)
	}
	outSpatial := make([]int, sd)
	for i := range outSpatial {
		eff := p.Dilation[i]*(p.Kernel[i]-1) + 1
		n := p.In[i] + p.PadBegin[i] + p.PadEnd[i] - eff
		if n < 0 || p.Stride[i] <= 0 || p.Dilation[i] <= 0 || p.Kernel[i] <= 0 || p.PadBegin[i] < 0 || p.PadEnd[i] < 0 {
			return nil, shapeErr("conv: dim %d: input %d, kernel %d, stride %d, dilation %d, padding %d+%d give no output",
				i, p.In[i], p.Kernel[i], p.Stride[i], p.Dilation[i], p.PadBegin[i], p.PadEnd[i])
		}
		outSpatial[i] = n/p.Stride[i] + 1
	}
	shape := append([]int{p.N, p.OutC}, outSpatial...)
	outN := prod(shape)
	macs := int64(outN) * int64(p.InC/groups) * int64(prod(p.Kernel))
	k := begin(ctx, convName[sd], cost{flops: 2 * macs, bytes: bytes32(x.NumElements(), w.NumElements(), outN)}, x, w)
	defer k.end()
	in, err := k.data(x, w, bias)
	if err != nil {
		return nil, err
	}
	return k.output(shape, func(dst []float32) error {
		cpu.Conv(k.cpu.Threads(), dst, in[0], in[1], in[2], p)
		return nil
	})
}

var convName = [...]string{"", "conv1d", "conv2d", "conv3d"}

// ConvTranspose1dOptions configure a transposed 1-d convolution.
type ConvTranspose1dOptions struct {
	Stride, Dilation, Padding, OutputPadding, Groups int
}

// ConvTranspose1d is the transposed convolution of x [N, InC, L] with w
// [InC, OutC/Groups, K] (PyTorch's layout) plus bias [OutC]: the upsampling
// layer of HiFi-GAN vocoders. The output length is
// (L−1)·stride − 2·padding + dilation·(K−1) + output_padding + 1.
func ConvTranspose1d(ctx context.Context, x, w, bias *tensor.Tensor, opt ConvTranspose1dOptions) (*tensor.Tensor, error) {
	if x.Rank() != 3 || w.Rank() != 3 {
		return nil, shapeErr("conv_transpose1d: input %v, weight %v: want rank 3", x.Shape(), w.Shape())
	}
	groups := max(opt.Groups, 1)
	p := cpu.ConvTranspose1DParams{N: x.Dim(0), InC: x.Dim(1), OutC: w.Dim(1) * groups, Groups: groups,
		In: x.Dim(2), Kernel: w.Dim(2), Stride: max(opt.Stride, 1), Dilation: max(opt.Dilation, 1),
		Pad: opt.Padding, OutputPad: opt.OutputPadding}
	if w.Dim(0) != p.InC || p.InC%groups != 0 {
		return nil, shapeErr("conv_transpose1d: input %v, weight %v, %d groups do not fit", x.Shape(), w.Shape(), groups)
	}
	if p.Pad < 0 || p.OutputPad < 0 || p.OutputPad >= max(p.Stride, p.Dilation) || p.Kernel <= 0 {
		return nil, shapeErr("conv_transpose1d: padding %d, output padding %d, stride %d, dilation %d", p.Pad, p.OutputPad, p.Stride, p.Dilation)
	}
	l := p.OutLen()
	if l <= 0 {
		return nil, shapeErr("conv_transpose1d: output length %d", l)
	}
	if bias != nil && (bias.Rank() != 1 || bias.Dim(0) != p.OutC) {
		return nil, shapeErr("conv_transpose1d: bias %v for %d output channels", bias.Shape(), p.OutC)
	}
	shape := []int{p.N, p.OutC, l}
	macs := int64(p.N) * int64(p.In) * int64(p.InC) * int64(p.OutC/groups) * int64(p.Kernel)
	k := begin(ctx, "conv_transpose1d", cost{flops: 2 * macs, bytes: bytes32(x.NumElements(), w.NumElements(), prod(shape))}, x, w)
	defer k.end()
	in, err := k.data(x, w, bias)
	if err != nil {
		return nil, err
	}
	return k.output(shape, func(dst []float32) error {
		cpu.ConvTranspose1D(k.cpu.Threads(), dst, in[0], in[1], in[2], p)
		return nil
	})
}

// ErrTokenID reports an embedding id outside the table.
var ErrTokenID = cpu.ErrTokenID

// Embedding gathers rows of table [V, D] for int32 ids of any shape; the
// result is [ids..., D]. An id outside [0, V) is an error naming it.
func Embedding(ctx context.Context, ids, table *tensor.Tensor) (*tensor.Tensor, error) {
	if ids.DType() != tensor.Int32 {
		return nil, shapeErrDType("embedding: ids are %v, want int32", ids.DType())
	}
	if table.Rank() != 2 {
		return nil, shapeErr("embedding: table %v, want [vocab, dim]", table.Shape())
	}
	v, d := table.Dim(0), table.Dim(1)
	n := ids.NumElements()
	k := begin(ctx, "embedding", cost{bytes: bytes32(n, 2*n*d)}, ids, table)
	defer k.end()
	idc, ri, err := hostContiguous(k.ctx, ids)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer ri()
	in, err := k.data(table)
	if err != nil {
		return nil, err
	}
	return k.output(append(append([]int(nil), ids.Shape()...), d), func(dst []float32) error {
		return cpu.Embedding(k.cpu.Threads(), dst, in[0], v, d, idc.Int32s())
	})
}
