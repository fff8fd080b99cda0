package dit

import (
	"errors"
	"fmt"
)

// ErrConfig reports an invalid model configuration.
var ErrConfig = errors.New("dit: invalid configuration")

// Family is the architecture.
type Family string

const (
	// Wan is the Wan 2.x video DiT (3D patches, cross-attention).
	Wan Family = "wan"
	// ZImage is the Z-Image single-stream image DiT (2D patches).
	ZImage Family = "zimage"
)

// Config describes a DiT. Wan's fields follow its config.json (dim, ffn_dim,
// freq_dim, text_dim, num_heads, num_layers, patch_size, in_dim, out_dim,
// cross_attn_norm, eps); Z-Image's its transformer config.
type Config struct {
	Family      Family
	InChannels  int // in_dim / in_channels: latent channels
	OutChannels int // out_dim (0: InChannels)
	Dim         int
	FFN         int // ffn_dim (Z-Image: int(dim/3·8))
	Heads       int
	Layers      int
	// Patch is (t, h, w); Z-Image uses (1, p, p) on a 2D latent.
	Patch   [3]int
	FreqDim int // sinusoidal timestep embedding size (256)
	TextDim int // text feature size (Wan text_dim, Z-Image cap_feat_dim)
	Eps     float32
	// RopeTheta is the rotary base (Wan 10000, Z-Image 256).
	RopeTheta float64
	// CrossAttnNorm gives Wan's cross-attention an affine LayerNorm (norm3).
	CrossAttnNorm bool

	// Z-Image only.
	RefinerLayers int     // n_refiner_layers (noise and context refiners)
	AdaLNDim      int     // min(dim, 256)
	TimeMid       int     // t_embedder's hidden size (1024)
	AxesDims      [3]int  // RoPE dims per axis (32, 48, 48); sum = head dim
	TScale        float64 // t_scale (1000)
}

func (c Config) withDefaults() Config {
	if c.OutChannels == 0 {
		c.OutChannels = c.InChannels
	}
	if c.FreqDim == 0 {
		c.FreqDim = 256
	}
	if c.Eps == 0 {
		c.Eps = 1e-6
	}
	if c.Patch == [3]int{} {
		c.Patch = [3]int{1, 2, 2}
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
		if c.Family == ZImage {
			c.RopeTheta = 256
		}
	}
	if c.Family == ZImage {
		if c.AdaLNDim == 0 {
			c.AdaLNDim = min(c.Dim, 256)
		}
		if c.TimeMid == 0 {
			c.TimeMid = 1024
		}
		if c.TScale == 0 {
			c.TScale = 1000
		}
		if c.AxesDims == [3]int{} && c.Heads > 0 {
			// Z-Image's proportions (32, 48, 48) of 128, rounded to even.
			hd := c.Dim / c.Heads
			a := hd / 4 / 2 * 2
			b := (hd - a) / 2 / 2 * 2
			c.AxesDims = [3]int{hd - 2*b, b, b}
		}
	}
	return c
}

// HeadDim is the size of one attention head.
func (c Config) HeadDim() int { return c.Dim / max(c.Heads, 1) }

// PatchDim is the number of latent values one token covers.
func (c Config) PatchDim() int { c = c.withDefaults(); return c.Patch[0] * c.Patch[1] * c.Patch[2] }

// Validate reports what is wrong with c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Family != Wan && c.Family != ZImage {
		return fmt.Errorf("%w: unknown family %q", ErrConfig, c.Family)
	}
	if c.InChannels <= 0 || c.Dim <= 0 || c.FFN <= 0 || c.Heads <= 0 || c.Layers <= 0 || c.TextDim <= 0 {
		return fmt.Errorf("%w: channels %d, dim %d, ffn %d, %d heads, %d layers, text dim %d must be positive",
			ErrConfig, c.InChannels, c.Dim, c.FFN, c.Heads, c.Layers, c.TextDim)
	}
	if c.Dim%c.Heads != 0 || c.HeadDim()%2 != 0 {
		return fmt.Errorf("%w: dim %d over %d heads must give an even head size", ErrConfig, c.Dim, c.Heads)
	}
	if c.FreqDim%2 != 0 {
		return fmt.Errorf("%w: freq dim %d must be even", ErrConfig, c.FreqDim)
	}
	for _, p := range c.Patch {
		if p <= 0 {
			return fmt.Errorf("%w: patch %v", ErrConfig, c.Patch)
		}
	}
	switch c.Family {
	case Wan:
		if c.HeadDim()/2 < 3 {
			return fmt.Errorf("%w: head size %d is too small to split over three RoPE axes", ErrConfig, c.HeadDim())
		}
	case ZImage:
		if c.Patch[0] != 1 {
			return fmt.Errorf("%w: Z-Image patches are 2D, got %v", ErrConfig, c.Patch)
		}
		if c.AxesDims[0]+c.AxesDims[1]+c.AxesDims[2] != c.HeadDim() || c.AxesDims[0]%2+c.AxesDims[1]%2+c.AxesDims[2]%2 != 0 {
			return fmt.Errorf("%w: RoPE axes %v must be even and sum to the head size %d", ErrConfig, c.AxesDims, c.HeadDim())
		}
		if c.AdaLNDim <= 0 || c.TimeMid <= 0 {
			return fmt.Errorf("%w: adaLN dim %d, time mid %d", ErrConfig, c.AdaLNDim, c.TimeMid)
		}
	}
	return nil
}

// NumParams returns the number of weights the model holds.
func (c Config) NumParams() int64 {
	c = c.withDefaults()
	d, f := int64(c.Dim), int64(c.FFN)
	lin := func(in, out int64, bias bool) int64 {
		if bias {
			return in*out + out
		}
		return in * out
	}
	p := int64(c.PatchDim())
	switch c.Family {
	case ZImage:
		hd := int64(c.HeadDim())
		attn := 4*d*d + 2*hd
		ffn := 3 * d * f
		norms := 4 * d
		unmod := attn + ffn + norms
		mod := unmod + lin(int64(c.AdaLNDim), 4*d, true)
		n := lin(p*int64(c.InChannels), d, true) // all_x_embedder
		n += lin(int64(c.FreqDim), int64(c.TimeMid), true) + lin(int64(c.TimeMid), int64(c.AdaLNDim), true)
		n += int64(c.TextDim) + lin(int64(c.TextDim), d, true)
		n += int64(c.RefinerLayers) * (mod + unmod)
		n += int64(c.Layers) * mod
		n += lin(int64(c.AdaLNDim), d, true) + lin(d, p*int64(c.OutChannels), true)
		return n
	default:
		attn := 4*lin(d, d, true) + 2*d
		block := 2*attn + lin(d, f, true) + lin(f, d, true) + 6*d
		if c.CrossAttnNorm {
			block += 2 * d
		}
		n := p*int64(c.InChannels)*d + d // patch_embedding
		n += lin(int64(c.TextDim), d, true) + lin(d, d, true)
		n += lin(int64(c.FreqDim), d, true) + lin(d, d, true) + lin(d, 6*d, true)
		n += int64(c.Layers) * block
		n += lin(d, p*int64(c.OutChannels), true) + 2*d
		return n
	}
}

// TinyWan is a small Wan-style DiT for tests and the default presets.
func TinyWan(latentChannels, textDim int) Config {
	return Config{Family: Wan, InChannels: latentChannels, Dim: 64, FFN: 128, Heads: 4, Layers: 2,
		Patch: [3]int{1, 2, 2}, FreqDim: 64, TextDim: textDim, Eps: 1e-6, CrossAttnNorm: true}
}

// TinyZImage is a small Z-Image-style DiT for tests and the default preset.
func TinyZImage(latentChannels, textDim int) Config {
	return Config{Family: ZImage, InChannels: latentChannels, Dim: 64, FFN: 160, Heads: 2, Layers: 2,
		RefinerLayers: 1, Patch: [3]int{1, 2, 2}, FreqDim: 64, TextDim: textDim, Eps: 1e-5,
		AdaLNDim: 64, TimeMid: 64, TScale: 1000}
}

// Wan22A14B is one expert of Wan2.2-T2V-A14B (both experts have this
// shape): dim 5120, 40 layers of 40 heads, ffn 13824, umt5 text (4096),
// 16 latent channels, patch (1, 2, 2).
func Wan22A14B() Config {
	return Config{Family: Wan, InChannels: 16, Dim: 5120, FFN: 13824, Heads: 40, Layers: 40,
		Patch: [3]int{1, 2, 2}, FreqDim: 256, TextDim: 4096, Eps: 1e-6, CrossAttnNorm: true}
}

// Wan22TI2V5B is Wan2.2-TI2V-5B: dim 3072, 30 layers of 24 heads, ffn
// 14336, 48 latent channels (the Wan 2.2 VAE), patch (1, 2, 2).
func Wan22TI2V5B() Config {
	return Config{Family: Wan, InChannels: 48, Dim: 3072, FFN: 14336, Heads: 24, Layers: 30,
		Patch: [3]int{1, 2, 2}, FreqDim: 256, TextDim: 4096, Eps: 1e-6, CrossAttnNorm: true}
}

// ZImageTurbo is Z-Image-Turbo's transformer (about 6B): dim 3840, 30
// layers and 2 refiner layers of 30 heads, ffn 10240, 16 latent channels,
// patch 2, caption features 2560 (Qwen3-4B), RoPE axes (32, 48, 48).
func ZImageTurbo() Config {
	return Config{Family: ZImage, InChannels: 16, Dim: 3840, FFN: 10240, Heads: 30, Layers: 30,
		RefinerLayers: 2, Patch: [3]int{1, 2, 2}, FreqDim: 256, TextDim: 2560, Eps: 1e-5,
		AdaLNDim: 256, TimeMid: 1024, AxesDims: [3]int{32, 48, 48}, TScale: 1000, RopeTheta: 256}
}
