package vae

import (
	"context"
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// builder makes the blocks of one layout with its weight names.
type builder struct {
	src nn.Source
	cfg Config
}

func (b builder) norm(name string, c int, images bool) (layer, error) {
	if b.cfg.Kind == KindWan {
		return newRMSNorm(b.src, name, c, images)
	}
	g, err := nn.NewGroupNorm(b.src, name, b.cfg.Groups, c, 1e-6)
	if err != nil {
		return nil, err
	}
	return groupNorm{g}, nil
}

func (b builder) conv3(name string, in, out int) (*conv, error) {
	if b.cfg.Kind == KindWan {
		return causal3(b.src, name, in, out)
	}
	return newConv(b.src, name, in, out, []int{3, 3}, device.ConvOptions{Padding: []int{1}})
}

func (b builder) conv1(name string, in, out int) (*conv, error) {
	if b.cfg.Kind == KindWan {
		return newConv(b.src, name, in, out, []int{1, 1, 1}, device.ConvOptions{})
	}
	return newConv(b.src, name, in, out, []int{1, 1}, device.ConvOptions{})
}

func (b builder) res(name string, in, out int) (*resBlock, error) {
	names := [5]string{"norm1", "conv1", "norm2", "conv2", "conv_shortcut"}
	if b.cfg.Kind == KindWan {
		names = [5]string{"residual.0", "residual.2", "residual.3", "residual.6", "shortcut"}
	}
	r := &resBlock{name: name}
	var err error
	if r.norm1, err = b.norm(nn.Join(name, names[0]), in, false); err != nil {
		return nil, err
	}
	c1, err := b.conv3(nn.Join(name, names[1]), in, out)
	if err != nil {
		return nil, err
	}
	r.conv1 = c1
	if r.norm2, err = b.norm(nn.Join(name, names[2]), out, false); err != nil {
		return nil, err
	}
	c2, err := b.conv3(nn.Join(name, names[3]), out, out)
	if err != nil {
		return nil, err
	}
	r.conv2 = c2
	if in != out {
		s, err := b.conv1(nn.Join(name, names[4]), in, out)
		if err != nil {
			return nil, err
		}
		r.short, r.hasShort = s, true
	}
	return r, nil
}

func (b builder) attn(name string, c int) (*attnBlock, error) {
	a := &attnBlock{name: name, channels: c}
	var err error
	if b.cfg.Kind == KindWan {
		if a.norm, err = b.norm(nn.Join(name, "norm"), c, true); err != nil {
			return nil, err
		}
		if a.fusedW, err = b.src.Tensor(nn.Join(name, "to_qkv.weight"), []int{3 * c, c, 1, 1}, nn.Uniform(1/sqrtf(c))); err != nil {
			return nil, err
		}
		if a.fusedB, err = b.src.Tensor(nn.Join(name, "to_qkv.bias"), []int{3 * c}, nn.Uniform(1/sqrtf(c))); err != nil {
			return nil, err
		}
		if a.proj, err = b.src.Tensor(nn.Join(name, "proj.weight"), []int{c, c, 1, 1}, nn.Uniform(1/sqrtf(c))); err != nil {
			return nil, err
		}
		if a.pb, err = b.src.Tensor(nn.Join(name, "proj.bias"), []int{c}, nn.Uniform(1/sqrtf(c))); err != nil {
			return nil, err
		}
		return a, nil
	}
	if a.norm, err = b.norm(nn.Join(name, "group_norm"), c, true); err != nil {
		return nil, err
	}
	for k, n := range []string{"to_q", "to_k", "to_v"} {
		l, err := nn.NewLinear(b.src, nn.Join(name, n), c, c, true)
		if err != nil {
			return nil, err
		}
		a.qkv[k], a.qkvBias[k] = l.W, l.B
	}
	l, err := nn.NewLinear(b.src, nn.Join(name, "to_out.0"), c, c, true)
	if err != nil {
		return nil, err
	}
	a.proj, a.pb = l.W, l.B
	return a, nil
}

func sqrtf(c int) float64 { return math.Sqrt(float64(c)) }

// Decoder maps latents to pixels.
type Decoder struct {
	Cfg    Config
	layers []layer
}

// NewDecoder builds the decoder, asking src for every weight by name.
func NewDecoder(src nn.Source, cfg Config) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := builder{src, cfg}
	d := &Decoder{Cfg: cfg}
	add := func(l layer, err error) error {
		if err != nil {
			return err
		}
		d.layers = append(d.layers, l)
		return nil
	}
	levels := len(cfg.Mult)
	top := cfg.BaseDim * cfg.Mult[levels-1]
	rgb := 3 * cfg.pixelPatch() * cfg.pixelPatch()
	if cfg.Kind == KindWan {
		if err := add(b.conv1("conv2", cfg.ZDim, cfg.ZDim)); err != nil {
			return nil, err
		}
		if err := add(b.conv3("decoder.conv1", cfg.ZDim, top)); err != nil {
			return nil, err
		}
		if err := add(b.res("decoder.middle.0", top, top)); err != nil {
			return nil, err
		}
		if err := add(b.attn("decoder.middle.1", top)); err != nil {
			return nil, err
		}
		if err := add(b.res("decoder.middle.2", top, top)); err != nil {
			return nil, err
		}
		// dims = dim·[mult[-1]] + dim·mult[::-1]; every level after the
		// first starts at half the channels (the previous Resample halved
		// them).
		idx := 0
		in := top
		for i := range levels {
			out := cfg.BaseDim * cfg.Mult[levels-1-i]
			if i > 0 {
				in /= 2
			}
			for range cfg.ResBlocks + 1 {
				if err := add(b.res(fmt.Sprintf("decoder.upsamples.%d", idx), in, out)); err != nil {
					return nil, err
				}
				idx++
				in = out
			}
			if i != levels-1 {
				name := fmt.Sprintf("decoder.upsamples.%d", idx)
				r := &resample{name: name, up: true, channels: out}
				var err error
				if r.spatial, err = newConv(src, nn.Join(name, "resample.1"), out, out/2, []int{3, 3}, device.ConvOptions{Padding: []int{1}}); err != nil {
					return nil, err
				}
				if cfg.TemporalDown[levels-2-i] {
					if r.timeConv, err = newConv(src, nn.Join(name, "time_conv"), out, 2*out, []int{3, 1, 1},
						device.ConvOptions{Padding: []int{1, 0, 0}, Causal: true}); err != nil {
						return nil, err
					}
				}
				d.layers = append(d.layers, r)
				idx++
			}
		}
		if err := add(b.norm("decoder.head.0", in, false)); err != nil {
			return nil, err
		}
		d.layers = append(d.layers, silu)
		if err := add(b.conv3("decoder.head.2", in, rgb)); err != nil {
			return nil, err
		}
		return d, nil
	}
	// AutoencoderKL.
	if err := add(b.conv3("decoder.conv_in", cfg.ZDim, top)); err != nil {
		return nil, err
	}
	if err := add(b.res("decoder.mid_block.resnets.0", top, top)); err != nil {
		return nil, err
	}
	if err := add(b.attn("decoder.mid_block.attentions.0", top)); err != nil {
		return nil, err
	}
	if err := add(b.res("decoder.mid_block.resnets.1", top, top)); err != nil {
		return nil, err
	}
	in := top
	for i := range levels {
		out := cfg.BaseDim * cfg.Mult[levels-1-i]
		for j := range cfg.ResBlocks + 1 {
			if err := add(b.res(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), in, out)); err != nil {
				return nil, err
			}
			in = out
		}
		if i != levels-1 {
			name := fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0", i)
			r := &resample{name: name, up: true, channels: out}
			var err error
			if r.spatial, err = b.conv3(nn.Join(name, "conv"), out, out); err != nil {
				return nil, err
			}
			d.layers = append(d.layers, r)
		}
	}
	if err := add(b.norm("decoder.conv_norm_out", in, false)); err != nil {
		return nil, err
	}
	d.layers = append(d.layers, silu)
	if err := add(b.conv3("decoder.conv_out", in, rgb)); err != nil {
		return nil, err
	}
	return d, nil
}

// Decode maps latents [N, Z, F, H, W] (Wan) or [N, Z, H, W] (KL) to pixels
// in [−1, 1]: [N, 3, 1+4(F−1), H·8, W·8] or [N, 3, H·8, W·8] for the usual
// factors.
func (d *Decoder) Decode(ctx context.Context, z *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "VAEDecoder")
	defer span.End()
	cfg := d.Cfg
	rank := 5
	if cfg.Kind == KindKL {
		rank = 4
	}
	if z.Rank() != rank || z.Dim(1) != cfg.ZDim {
		return nil, fmt.Errorf("vae decode: %w: latent %v, want rank %d with %d channels", device.ErrShape, z.Shape(), rank, cfg.ZDim)
	}
	x, err := d.unscale(z)
	if err != nil {
		return nil, err
	}
	defer x.Release()
	y, err := run(ctx, x, d.layers...)
	if err != nil {
		return nil, fmt.Errorf("vae decode: %w", err)
	}
	if p := cfg.pixelPatch(); p > 1 {
		s, err := pixelShuffle(y, p)
		y.Release()
		if err != nil {
			return nil, err
		}
		y = s
	}
	for i, v := range y.Float32s() {
		y.Float32s()[i] = min(max(v, -1), 1)
	}
	return y, nil
}

// unscale returns a copy of z as the decoder wants it: Wan's z·std + mean
// per channel, or AutoencoderKL's z/scaling + shift.
func (d *Decoder) unscale(z *tensor.Tensor) (*tensor.Tensor, error) {
	x, err := z.Clone()
	if err != nil {
		return nil, err
	}
	cfg := d.Cfg
	data := x.Float32s()
	plane := x.NumElements() / (x.Dim(0) * x.Dim(1))
	for i := range x.Dim(0) * x.Dim(1) {
		c := i % x.Dim(1)
		mul, add := 1.0, 0.0
		if cfg.Kind == KindKL {
			mul, add = 1/cfg.ScalingFactor, cfg.ShiftFactor
		} else {
			if cfg.LatentsStd != nil {
				mul = cfg.LatentsStd[c]
			}
			if cfg.LatentsMean != nil {
				add = cfg.LatentsMean[c]
			}
		}
		if mul == 1 && add == 0 {
			continue
		}
		for j, v := range data[i*plane : (i+1)*plane] {
			data[i*plane+j] = float32(float64(v)*mul + add)
		}
	}
	return x, nil
}

// Encoder maps pixels to latents (Wan only: the image-to-video pipeline
// encodes its conditioning image).
type Encoder struct {
	Cfg    Config
	layers []layer
}

// NewEncoder builds the encoder, asking src for every weight by name.
func NewEncoder(src nn.Source, cfg Config) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Kind != KindWan {
		return nil, fmt.Errorf("%w: only the Wan VAE has an encoder here", ErrConfig)
	}
	b := builder{src, cfg}
	e := &Encoder{Cfg: cfg}
	add := func(l layer, err error) error {
		if err != nil {
			return err
		}
		e.layers = append(e.layers, l)
		return nil
	}
	rgb := 3 * cfg.pixelPatch() * cfg.pixelPatch()
	if err := add(b.conv3("encoder.conv1", rgb, cfg.BaseDim)); err != nil {
		return nil, err
	}
	in := cfg.BaseDim
	idx := 0
	for i, m := range cfg.Mult {
		out := cfg.BaseDim * m
		for range cfg.ResBlocks {
			if err := add(b.res(fmt.Sprintf("encoder.downsamples.%d", idx), in, out)); err != nil {
				return nil, err
			}
			idx++
			in = out
		}
		if i != len(cfg.Mult)-1 {
			name := fmt.Sprintf("encoder.downsamples.%d", idx)
			r := &resample{name: name, channels: out}
			var err error
			if r.spatial, err = newConv(src, nn.Join(name, "resample.1"), out, out, []int{3, 3},
				device.ConvOptions{Stride: []int{2}, PadBegin: []int{0, 0}, PadEnd: []int{1, 1}}); err != nil {
				return nil, err
			}
			if cfg.TemporalDown[i] {
				if r.timeConv, err = newConv(src, nn.Join(name, "time_conv"), out, out, []int{3, 1, 1},
					device.ConvOptions{Stride: []int{2, 1, 1}}); err != nil {
					return nil, err
				}
			}
			e.layers = append(e.layers, r)
			idx++
		}
	}
	for _, l := range []struct {
		name string
		attn bool
	}{{"encoder.middle.0", false}, {"encoder.middle.1", true}, {"encoder.middle.2", false}} {
		var err error
		if l.attn {
			err = add(b.attn(l.name, in))
		} else {
			err = add(b.res(l.name, in, in))
		}
		if err != nil {
			return nil, err
		}
	}
	if err := add(b.norm("encoder.head.0", in, false)); err != nil {
		return nil, err
	}
	e.layers = append(e.layers, silu)
	if err := add(b.conv3("encoder.head.2", in, 2*cfg.ZDim)); err != nil {
		return nil, err
	}
	if err := add(b.conv1("conv1", 2*cfg.ZDim, 2*cfg.ZDim)); err != nil {
		return nil, err
	}
	return e, nil
}

// Encode maps pixels [N, 3, T, H, W] in [−1, 1] (T = 1 + 4k) to the
// normalized latent mean [N, Z, 1+k, H/8, W/8].
func (e *Encoder) Encode(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "VAEEncoder")
	defer span.End()
	cfg := e.Cfg
	sf := cfg.SpatialFactor()
	if x.Rank() != 5 || x.Dim(1) != 3 || x.Dim(3)%sf != 0 || x.Dim(4)%sf != 0 {
		return nil, fmt.Errorf("vae encode: %w: pixels %v, want [N, 3, T, H, W] with H and W multiples of %d", device.ErrShape, x.Shape(), sf)
	}
	if _, err := cfg.LatentFrames(x.Dim(2)); err != nil {
		return nil, fmt.Errorf("vae encode: %w", err)
	}
	in := x
	if p := cfg.pixelPatch(); p > 1 {
		var err error
		if in, err = pixelUnshuffle(x, p); err != nil {
			return nil, err
		}
		defer in.Release()
	}
	y, err := run(ctx, in, e.layers...)
	if err != nil {
		return nil, fmt.Errorf("vae encode: %w", err)
	}
	defer y.Release()
	mu, err := y.Slice(1, 0, cfg.ZDim)
	if err != nil {
		return nil, err
	}
	defer mu.Release()
	out, err := mu.Clone()
	if err != nil {
		return nil, err
	}
	data := out.Float32s()
	plane := out.NumElements() / (out.Dim(0) * cfg.ZDim)
	for i := range out.Dim(0) * cfg.ZDim {
		c := i % cfg.ZDim
		mean, std := 0.0, 1.0
		if cfg.LatentsMean != nil {
			mean = cfg.LatentsMean[c]
		}
		if cfg.LatentsStd != nil {
			std = cfg.LatentsStd[c]
		}
		if mean == 0 && std == 1 {
			continue
		}
		for j, v := range data[i*plane : (i+1)*plane] {
			data[i*plane+j] = float32((float64(v) - mean) / std)
		}
	}
	return out, nil
}
