package vae

import (
	"errors"
	"fmt"

	"github.com/omniflow-go/omniflow/diffusion/internal/paramcount"
	"github.com/omniflow-go/omniflow/operators/nn"
)

// ErrConfig reports an invalid VAE configuration or input size.
var ErrConfig = errors.New("vae: invalid configuration")

// Kind is the VAE layout.
type Kind string

const (
	// KindWan is Wan's causal 3D video VAE.
	KindWan Kind = "wan"
	// KindKL is diffusers' 2D AutoencoderKL (Flux, Z-Image).
	KindKL Kind = "kl"
)

// Config describes a VAE.
type Config struct {
	Kind Kind
	ZDim int // latent channels
	// BaseDim and Mult give the channels per level, BaseDim·Mult[i]: Wan's
	// dim and dim_mult, AutoencoderKL's block_out_channels.
	BaseDim int
	Mult    []int
	// ResBlocks is Wan's num_res_blocks (the decoder has one more per level)
	// or AutoencoderKL's layers_per_block.
	ResBlocks int
	// TemporalDown (Wan) says which of the len(Mult)−1 downsampling levels
	// also halve time (Wan 2.1: false, true, true); the decoder upsamples
	// time in the mirrored levels.
	TemporalDown []bool
	Groups       int // GroupNorm groups (KL)
	// PixelPatch packs p×p pixels into channels around the autoencoder
	// (Wan 2.2's VAE uses 2); 0 or 1 is none.
	PixelPatch int
	// ScalingFactor and ShiftFactor (KL): the decoder sees
	// latents/ScalingFactor + ShiftFactor.
	ScalingFactor, ShiftFactor float64
	// LatentsMean and LatentsStd (Wan, length ZDim or nil for 0 and 1):
	// the encoder returns (μ − mean)/std and the decoder inverts it.
	LatentsMean, LatentsStd []float64
}

// TinyWan is a small causal 3D VAE (8× in space, 4× in time, 4 latent
// channels) for tests and the default presets.
func TinyWan() Config {
	return Config{Kind: KindWan, ZDim: 4, BaseDim: 8, Mult: []int{1, 2, 2, 2}, ResBlocks: 1,
		TemporalDown: []bool{false, true, true}}
}

// TinyKL is a small 2D AutoencoderKL (8× in space, 4 latent channels).
func TinyKL() Config {
	return Config{Kind: KindKL, ZDim: 4, BaseDim: 16, Mult: []int{1, 2, 2, 2}, ResBlocks: 1, Groups: 8,
		ScalingFactor: 1, ShiftFactor: 0}
}

// Wan21 is the Wan 2.1 VAE Wan2.2-T2V-A14B uses: z_dim 16, dim 96,
// dim_mult (1, 2, 4, 4), 2 residual blocks, temporal downsampling on the
// last two levels (4× in time, 8× in space).
func Wan21() Config {
	return Config{Kind: KindWan, ZDim: 16, BaseDim: 96, Mult: []int{1, 2, 4, 4}, ResBlocks: 2,
		TemporalDown: []bool{false, true, true}}
}

// Wan22 approximates the Wan 2.2 VAE of Wan2.2-TI2V-5B: 48 latent channels,
// 4× in time and 16× in space (8× from the levels, 2× from pixel patches).
func Wan22() Config {
	return Config{Kind: KindWan, ZDim: 48, BaseDim: 160, Mult: []int{1, 2, 4, 4}, ResBlocks: 2,
		TemporalDown: []bool{false, true, true}, PixelPatch: 2}
}

// FluxKL is the Flux AutoencoderKL Z-Image uses: 16 latent channels,
// block_out_channels (128, 256, 512, 512), 2 layers per block, 32 groups,
// scaling 0.3611 and shift 0.1159.
func FluxKL() Config {
	return Config{Kind: KindKL, ZDim: 16, BaseDim: 128, Mult: []int{1, 2, 4, 4}, ResBlocks: 2, Groups: 32,
		ScalingFactor: 0.3611, ShiftFactor: 0.1159}
}

func (c Config) pixelPatch() int { return max(c.PixelPatch, 1) }

// SpatialFactor is the pixels per latent along height and width.
func (c Config) SpatialFactor() int { return (1 << max(len(c.Mult)-1, 0)) * c.pixelPatch() }

// TemporalFactor is the frames per latent frame after the first (1 for a
// 2D VAE).
func (c Config) TemporalFactor() int {
	if c.Kind != KindWan {
		return 1
	}
	f := 1
	for _, t := range c.TemporalDown {
		if t {
			f *= 2
		}
	}
	return f
}

// LatentFrames returns the latent frames for a clip of n frames, which
// must be 1 + k·TemporalFactor.
func (c Config) LatentFrames(n int) (int, error) {
	tf := c.TemporalFactor()
	if n < 1 || (n-1)%tf != 0 {
		return 0, fmt.Errorf("%w: %d frames: the VAE needs 1 + %d·k frames (1, %d, %d, ...)", ErrConfig, n, tf, 1+tf, 1+2*tf)
	}
	return (n-1)/tf + 1, nil
}

// Frames returns the frames a clip of f latent frames decodes to.
func (c Config) Frames(f int) int { return 1 + c.TemporalFactor()*(f-1) }

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	switch {
	case c.Kind != KindWan && c.Kind != KindKL:
		return fmt.Errorf("%w: unknown kind %q", ErrConfig, c.Kind)
	case c.ZDim <= 0 || c.BaseDim <= 0 || len(c.Mult) == 0 || c.ResBlocks <= 0:
		return fmt.Errorf("%w: z_dim %d, dim %d, mult %v, %d residual blocks", ErrConfig, c.ZDim, c.BaseDim, c.Mult, c.ResBlocks)
	case c.Kind == KindWan && len(c.TemporalDown) != len(c.Mult)-1:
		return fmt.Errorf("%w: %d temporal flags for %d levels", ErrConfig, len(c.TemporalDown), len(c.Mult))
	case c.Kind == KindKL && (c.Groups <= 0 || c.ScalingFactor == 0):
		return fmt.Errorf("%w: %d groups, scaling factor %v", ErrConfig, c.Groups, c.ScalingFactor)
	case c.LatentsMean != nil && len(c.LatentsMean) != c.ZDim, c.LatentsStd != nil && len(c.LatentsStd) != c.ZDim:
		return fmt.Errorf("%w: latent mean/std of %d/%d for %d channels", ErrConfig, len(c.LatentsMean), len(c.LatentsStd), c.ZDim)
	}
	for _, m := range c.Mult {
		if m <= 0 {
			return fmt.Errorf("%w: mult %v", ErrConfig, c.Mult)
		}
		if c.Kind == KindKL && (c.BaseDim*m)%c.Groups != 0 {
			return fmt.Errorf("%w: %d channels do not split into %d groups", ErrConfig, c.BaseDim*m, c.Groups)
		}
	}
	if c.Kind == KindWan {
		for i := 1; i < len(c.Mult); i++ {
			if c.BaseDim*c.Mult[i]%2 != 0 {
				return fmt.Errorf("%w: Wan's upsampling halves %d channels", ErrConfig, c.BaseDim*c.Mult[i])
			}
		}
	}
	return nil
}

// NumParams returns the weights of the decoder and, with encoder, of the
// encoder too (counted without allocating them).
func (c Config) NumParams(encoder bool) (int64, error) {
	return paramcount.Count(func(src nn.Source) error {
		if _, err := NewDecoder(src, c); err != nil {
			return err
		}
		if encoder {
			_, err := NewEncoder(src, c)
			return err
		}
		return nil
	})
}
