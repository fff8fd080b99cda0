package textenc

import (
	"errors"
	"fmt"
)

// ErrConfig reports an invalid encoder configuration.
var ErrConfig = errors.New("textenc: invalid configuration")

// Config describes a T5/UMT5 encoder. Field names follow Hugging Face's
// T5Config where one exists.
type Config struct {
	Vocab   int // vocab_size; at least the tokenizer's vocabulary
	Dim     int // d_model
	Layers  int // num_layers
	Heads   int // num_heads
	HeadDim int // d_kv (0: Dim/Heads)
	FFN     int // d_ff
	// Buckets and MaxDistance are relative_attention_num_buckets (32) and
	// relative_attention_max_distance (128).
	Buckets, MaxDistance int
	// PerLayerBias gives every layer its own relative position bias (UMT5);
	// without it the first layer's table is shared (T5).
	PerLayerBias bool
	Eps          float32 // layer_norm_epsilon (1e-6)
	// TextLen is the padded prompt length (Wan: 512).
	TextLen int
}

// Tiny is a small encoder for tests and the default presets: 2 layers of
// width 64, a 32-token context.
func Tiny() Config {
	return Config{Vocab: 259, Dim: 64, Layers: 2, Heads: 4, FFN: 128, Buckets: 32, MaxDistance: 128,
		PerLayerBias: true, Eps: 1e-6, TextLen: 32}
}

// UMT5XXL is the umt5-xxl encoder Wan 2.x uses (google/umt5-xxl: d_model
// 4096, 24 layers, 64 heads of 64, d_ff 10240, vocabulary 256384), with
// Wan's 512-token context.
func UMT5XXL() Config {
	return Config{Vocab: 256384, Dim: 4096, Layers: 24, Heads: 64, HeadDim: 64, FFN: 10240, Buckets: 32,
		MaxDistance: 128, PerLayerBias: true, Eps: 1e-6, TextLen: 512}
}

func (c Config) withDefaults() Config {
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Dim / c.Heads
	}
	if c.Buckets == 0 {
		c.Buckets = 32
	}
	if c.MaxDistance == 0 {
		c.MaxDistance = 128
	}
	if c.Eps == 0 {
		c.Eps = 1e-6
	}
	return c
}

// Validate reports what is wrong with c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Vocab <= 0 || c.Dim <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.HeadDim <= 0 || c.FFN <= 0:
		return fmt.Errorf("%w: vocab %d, dim %d, %d layers, %d heads of %d, ffn %d must all be positive",
			ErrConfig, c.Vocab, c.Dim, c.Layers, c.Heads, c.HeadDim, c.FFN)
	case c.Buckets < 4 || c.Buckets%2 != 0 || c.MaxDistance <= c.Buckets/4:
		return fmt.Errorf("%w: %d buckets (even, >= 4) with max distance %d (> buckets/4)", ErrConfig, c.Buckets, c.MaxDistance)
	case c.TextLen < 1:
		return fmt.Errorf("%w: text length %d", ErrConfig, c.TextLen)
	}
	return nil
}

// NumParams returns the number of weights the encoder holds.
func (c Config) NumParams() int64 {
	c = c.withDefaults()
	inner := int64(c.Heads * c.HeadDim)
	d := int64(c.Dim)
	perLayer := 4*d*inner + 3*d*int64(c.FFN) + 2*d
	bias := int64(c.Buckets * c.Heads)
	biases := bias
	if c.PerLayerBias {
		biases = bias * int64(c.Layers)
	}
	return int64(c.Vocab)*d + int64(c.Layers)*perLayer + biases + d
}
