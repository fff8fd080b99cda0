package vae

import (
	"errors"
	"fmt"
	"math"
	"slices"

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
	// the encoder returns (μ − mean)/std and the decoder first maps its
	// input back to z·std + mean, as diffusers' Wan pipelines do around
	// the VAE (latents / (1/std) + mean before decode; (μ − mean)·(1/std)
	// for the image-to-video condition). Every std must be > 0.
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
// last two levels (4× in time, 8× in space), with its per-channel latent
// statistics.
func Wan21() Config {
	return Config{Kind: KindWan, ZDim: 16, BaseDim: 96, Mult: []int{1, 2, 4, 4}, ResBlocks: 2,
		TemporalDown: []bool{false, true, true},
		LatentsMean:  slices.Clone(wan21LatentsMean[:]), LatentsStd: slices.Clone(wan21LatentsStd[:])}
}

// Wan22 approximates the Wan 2.2 VAE of Wan2.2-TI2V-5B: 48 latent channels,
// 4× in time and 16× in space (8× from the levels, 2× from pixel patches),
// with its per-channel latent statistics.
func Wan22() Config {
	return Config{Kind: KindWan, ZDim: 48, BaseDim: 160, Mult: []int{1, 2, 4, 4}, ResBlocks: 2,
		TemporalDown: []bool{false, true, true}, PixelPatch: 2,
		LatentsMean: slices.Clone(wan22LatentsMean[:]), LatentsStd: slices.Clone(wan22LatentsStd[:])}
}

// The Wan VAEs' per-channel latent statistics. Wan 2.1's are the defaults
// of diffusers' AutoencoderKLWan (latents_mean, latents_std in
// autoencoder_kl_wan.py; the same values as Wan 2.1's WanVAE mean/std).
// Wan 2.2's are latents_mean/latents_std of
// Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json (Wan 2.2's Wan2_2_VAE
// mean/std in wan/modules/vae2_2.py).
var (
	wan21LatentsMean = [16]float64{
		-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
		0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
	}
	wan21LatentsStd = [16]float64{
		2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
		3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
	}
	wan22LatentsMean = [48]float64{
		-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
		-0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
		-0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
		-0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
		-0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
		0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
	}
	wan22LatentsStd = [48]float64{
		0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
		0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
		0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
		0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
		0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
		0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
	}
)

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
	for i, sd := range c.LatentsStd {
		if !(sd > 0) || math.IsInf(sd, 0) {
			return fmt.Errorf("%w: latent std %v of channel %d must be finite and > 0", ErrConfig, sd, i)
		}
	}
	for i, m := range c.LatentsMean {
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return fmt.Errorf("%w: latent mean %v of channel %d must be finite", ErrConfig, m, i)
		}
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
