package nn

import (
	"context"
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// Embedding maps int32 ids to rows of W [vocab, dim].
type Embedding struct {
	Name       string
	W          *tensor.Tensor
	Vocab, Dim int
}

// NewEmbedding builds name.weight [vocab, dim] (init N(0, 0.02)).
func NewEmbedding(src Source, name string, vocab, dim int) (*Embedding, error) {
	if vocab <= 0 || dim <= 0 {
		return nil, fmt.Errorf("%w: %s: embedding of %d rows of %d", ErrWeight, name, vocab, dim)
	}
	w, err := src.Tensor(Join(name, "weight"), []int{vocab, dim}, Normal(0.02))
	if err != nil {
		return nil, err
	}
	return &Embedding{Name: name, W: w, Vocab: vocab, Dim: dim}, nil
}

// Forward returns [ids..., dim].
func (e *Embedding) Forward(ctx context.Context, ids *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "Embedding", profiler.String("name", e.Name))
	defer span.End()
	y, err := device.Embedding(ctx, ids, e.W)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	return y, nil
}

// Conv is a 1-, 2- or 3-d convolution with weight [out, in/groups, k...].
type Conv struct {
	Name string
	W, B *tensor.Tensor
	Opt  device.ConvOptions
}

// ConvConfig describes a convolution layer.
type ConvConfig struct {
	In, Out int
	Kernel  []int // one entry per spatial dim
	Bias    bool
	Opt     device.ConvOptions
}

// NewConv builds name.weight and name.bias; random init is PyTorch's
// default U(±1/√fan_in).
func NewConv(src Source, name string, cfg ConvConfig) (*Conv, error) {
	g := max(cfg.Opt.Groups, 1)
	if cfg.In <= 0 || cfg.Out <= 0 || cfg.In%g != 0 || cfg.Out%g != 0 || len(cfg.Kernel) < 1 || len(cfg.Kernel) > 3 {
		return nil, fmt.Errorf("%w: %s: conv %d -> %d, kernel %v, %d groups", ErrWeight, name, cfg.In, cfg.Out, cfg.Kernel, g)
	}
	if err := checkConvOptions(name, len(cfg.Kernel), cfg.Opt); err != nil {
		return nil, err
	}
	fanIn := cfg.In / g
	for _, k := range cfg.Kernel {
		if k <= 0 {
			return nil, fmt.Errorf("%w: %s: kernel %v", ErrWeight, name, cfg.Kernel)
		}
		fanIn *= k
	}
	bound := 1 / math.Sqrt(float64(fanIn))
	w, err := src.Tensor(Join(name, "weight"), append([]int{cfg.Out, cfg.In / g}, cfg.Kernel...), Uniform(bound))
	if err != nil {
		return nil, err
	}
	c := &Conv{Name: name, W: w, Opt: cfg.Opt}
	if cfg.Bias {
		if c.B, err = src.Tensor(Join(name, "bias"), []int{cfg.Out}, Uniform(bound)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkConvOptions rejects, at load time, options the kernel would reject
// on every call: a slice of the wrong length (one entry, or one per spatial
// dim), a stride or dilation below 1, a negative padding.
func checkConvOptions(name string, dims int, o device.ConvOptions) error {
	for _, f := range []struct {
		what string
		v    []int
		min  int
	}{{"stride", o.Stride, 1}, {"dilation", o.Dilation, 1}, {"padding", o.Padding, 0},
		{"pad_begin", o.PadBegin, 0}, {"pad_end", o.PadEnd, 0}} {
		if len(f.v) > 1 && len(f.v) != dims {
			return fmt.Errorf("%w: %s: %s %v for %d spatial dims", ErrWeight, name, f.what, f.v, dims)
		}
		for _, x := range f.v {
			if x < f.min {
				return fmt.Errorf("%w: %s: %s %v, want entries >= %d", ErrWeight, name, f.what, f.v, f.min)
			}
		}
	}
	if o.Groups < 0 {
		return fmt.Errorf("%w: %s: %d groups", ErrWeight, name, o.Groups)
	}
	return nil
}

// Forward convolves x [N, in, spatial...].
func (c *Conv) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "Conv", profiler.String("name", c.Name))
	defer span.End()
	y, err := device.Conv(ctx, x, c.W, c.B, c.Opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	return y, nil
}

// ConvTranspose1d is a transposed 1-d convolution, weight [in, out/groups, k].
type ConvTranspose1d struct {
	Name string
	W, B *tensor.Tensor
	Opt  device.ConvTranspose1dOptions
}

// NewConvTranspose1d builds name.weight and (with bias) name.bias.
func NewConvTranspose1d(src Source, name string, in, out, kernel int, bias bool, opt device.ConvTranspose1dOptions) (*ConvTranspose1d, error) {
	g := max(opt.Groups, 1)
	if in <= 0 || out <= 0 || kernel <= 0 || opt.Groups < 0 || in%g != 0 || out%g != 0 {
		return nil, fmt.Errorf("%w: %s: transposed conv %d -> %d, kernel %d, %d groups", ErrWeight, name, in, out, kernel, g)
	}
	if opt.Stride < 0 || opt.Dilation < 0 || opt.Padding < 0 || opt.OutputPadding < 0 ||
		opt.OutputPadding >= max(opt.Stride, opt.Dilation, 1) {
		return nil, fmt.Errorf("%w: %s: stride %d, dilation %d, padding %d, output padding %d (want >= 0, output padding below stride or dilation)",
			ErrWeight, name, opt.Stride, opt.Dilation, opt.Padding, opt.OutputPadding)
	}
	bound := 1 / math.Sqrt(float64(out/g*kernel))
	w, err := src.Tensor(Join(name, "weight"), []int{in, out / g, kernel}, Uniform(bound))
	if err != nil {
		return nil, err
	}
	c := &ConvTranspose1d{Name: name, W: w, Opt: opt}
	if bias {
		if c.B, err = src.Tensor(Join(name, "bias"), []int{out}, Uniform(bound)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Forward upsamples x [N, in, L].
func (c *ConvTranspose1d) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "ConvTranspose1d", profiler.String("name", c.Name))
	defer span.End()
	y, err := device.ConvTranspose1d(ctx, x, c.W, c.B, c.Opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	return y, nil
}
