package omni

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/omniflow-go/omniflow/operators/tokenize"
	"github.com/omniflow-go/omniflow/profiler"
)

// DecoderConfig is the shape of a Qwen2-architecture decoder: the thinker,
// or the talker's backbone. The field names follow config.json's (see
// ReadQwen2Config).
type DecoderConfig struct {
	Vocab          int     // vocab_size
	Hidden         int     // hidden_size
	Intermediate   int     // intermediate_size
	Layers         int     // num_hidden_layers
	Heads          int     // num_attention_heads
	KVHeads        int     // num_key_value_heads (0: Heads)
	HeadDim        int     // 0: Hidden/Heads
	RMSEps         float64 // rms_norm_eps
	RopeTheta      float64 // rope_theta
	MaxPositions   int     // max_position_embeddings
	TiedEmbeddings bool    // tie_word_embeddings: lm_head is embed_tokens
}

func (c *DecoderConfig) defaults() {
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.RMSEps == 0 {
		c.RMSEps = 1e-6
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 1e6
	}
	if c.MaxPositions == 0 {
		c.MaxPositions = 4096
	}
}

// maxPositions bounds max_position_embeddings.
const maxPositions = 1 << 20

func (c DecoderConfig) validate(what string) error {
	switch {
	case c.Vocab <= 0, c.Hidden <= 0, c.Intermediate <= 0, c.Layers <= 0, c.Heads <= 0, c.MaxPositions <= 0:
		return fmt.Errorf("omni: %s: vocab %d, hidden %d, intermediate %d, layers %d, heads %d, max positions %d must all be positive",
			what, c.Vocab, c.Hidden, c.Intermediate, c.Layers, c.Heads, c.MaxPositions)
	case c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
		return fmt.Errorf("omni: %s: %d attention heads do not group over %d kv heads", what, c.Heads, c.KVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("omni: %s: head dim %d must be positive and even (rotary pairs)", what, c.HeadDim)
	case c.MaxPositions > maxPositions:
		return fmt.Errorf("omni: %s: max position embeddings %d above %d (the rotary table is built for all of them)", what, c.MaxPositions, maxPositions)
	case !(c.RMSEps > 0) || !(c.RopeTheta > 1):
		return fmt.Errorf("omni: %s: rms_norm_eps %g and rope_theta %g", what, c.RMSEps, c.RopeTheta)
	}
	return nil
}

// params counts the decoder's weights (Qwen2: q/k/v biases, no o bias).
func (c DecoderConfig) params() int64 {
	h, hd := int64(c.Hidden), int64(c.HeadDim)
	q, kv := int64(c.Heads)*hd, int64(c.KVHeads)*hd
	attn := h*q + q + 2*(h*kv+kv) + q*h
	mlp := 3 * h * int64(c.Intermediate)
	layer := attn + mlp + 2*h
	n := int64(c.Vocab)*h + int64(c.Layers)*layer + h
	if !c.TiedEmbeddings {
		n += int64(c.Vocab) * h
	}
	return n
}

// TalkerConfig is stage 1: a Qwen2-style decoder over codec tokens,
// conditioned on the thinker's hidden states.
type TalkerConfig struct {
	DecoderConfig // Vocab is Codes+3 (the codes, then BOS, EOS, PAD)
	// Codes is the codec's codebook size.
	Codes int
	// CodesPerText is how many codec tokens each text token's hidden state
	// conditions (the talker's step j reads text hidden state j/CodesPerText).
	CodesPerText int
	// TailCodes is how many codec tokens the talker may add after the text
	// is covered before it is stopped.
	TailCodes int
}

// BOS, EOS and PAD are the talker's special codec ids.
func (c TalkerConfig) BOS() int32 { return int32(c.Codes) }
func (c TalkerConfig) EOS() int32 { return int32(c.Codes + 1) }
func (c TalkerConfig) PAD() int32 { return int32(c.Codes + 2) }

// VocoderConfig is stage 2, code2wav: codec tokens → embedding → Conv1d →
// for each rate u in Upsample: LeakyReLU(0.1) → ConvTranspose1d (kernel 2u,
// stride u) → multi-receptive-field ResBlocks → LeakyReLU → Conv1d → tanh.
// Every convolution is causal, so decoding in chunks with ContextFrames of
// left context gives the same samples as decoding the whole sequence.
type VocoderConfig struct {
	Codes      int   // codebook size (the talker's Codes)
	EmbedDim   int   // codec embedding width
	Channels   int   // channels after conv_pre; halved by every upsampling
	Upsample   []int // rates; their product is SampleRate / frame rate
	ResKernels []int // the multi-receptive-field ResBlocks' kernels
	Dilations  []int // each ResBlock's dilations
	SampleRate int   // 24000
}

// HopLength is the samples per codec frame: the product of the rates.
func (c VocoderConfig) HopLength() int {
	n := 1
	for _, u := range c.Upsample {
		n *= u
	}
	return n
}

// FrameRate is the codec's frame rate in Hz.
func (c VocoderConfig) FrameRate() float64 { return float64(c.SampleRate) / float64(c.HopLength()) }

func (c VocoderConfig) validate() error {
	if c.Codes <= 0 || c.EmbedDim <= 0 || c.Channels <= 0 || len(c.Upsample) == 0 || len(c.ResKernels) == 0 || len(c.Dilations) == 0 || c.SampleRate <= 0 {
		return fmt.Errorf("omni: vocoder: codes %d, embed %d, channels %d, %d upsamplings, %d resblock kernels, %d dilations, rate %d",
			c.Codes, c.EmbedDim, c.Channels, len(c.Upsample), len(c.ResKernels), len(c.Dilations), c.SampleRate)
	}
	if c.Channels>>len(c.Upsample) < 1 {
		return fmt.Errorf("omni: vocoder: %d channels cannot be halved %d times", c.Channels, len(c.Upsample))
	}
	for _, u := range c.Upsample {
		if u < 1 {
			return fmt.Errorf("omni: vocoder: upsampling rate %d", u)
		}
	}
	for _, k := range c.ResKernels {
		if k < 1 {
			return fmt.Errorf("omni: vocoder: resblock kernel %d", k)
		}
	}
	for _, d := range c.Dilations {
		if d < 1 {
			return fmt.Errorf("omni: vocoder: dilation %d", d)
		}
	}
	return nil
}

func (c VocoderConfig) params() int64 {
	n := int64(c.Codes)*int64(c.EmbedDim) + int64(c.EmbedDim)*int64(c.Channels)*7 + int64(c.Channels)
	ch := int64(c.Channels)
	for _, u := range c.Upsample {
		out := ch / 2
		n += ch*out*int64(2*u) + out
		for _, k := range c.ResKernels {
			n += int64(len(c.Dilations)) * 2 * (out*out*int64(k) + out)
		}
		ch = out
	}
	return n + ch*7 + 1
}

// AudioEncoderConfig is the audio tower (Qwen2-Audio / Whisper style):
// log-mel [Mels, frames] → Conv1d(k3) + GELU → Conv1d(k3, stride 2) + GELU
// → + sinusoidal positions → Layers × (LayerNorm, bidirectional attention,
// LayerNorm, GELU MLP) → average pool ×2 → LayerNorm → Linear to the
// thinker's width.
type AudioEncoderConfig struct {
	Mels, Dim, Layers, Heads, FFN int
	// MaxFrames bounds the log-mel frames of one clip (3000: 30 s).
	MaxFrames int
}

func (c AudioEncoderConfig) validate() error {
	if c.Mels <= 0 || c.Dim <= 0 || c.Layers < 0 || c.Heads <= 0 || c.Dim%c.Heads != 0 || c.FFN <= 0 || c.MaxFrames < 4 {
		return fmt.Errorf("omni: audio encoder: mels %d, dim %d, layers %d, heads %d, ffn %d, max frames %d", c.Mels, c.Dim, c.Layers, c.Heads, c.FFN, c.MaxFrames)
	}
	return nil
}

func (c AudioEncoderConfig) params(out int) int64 {
	d := int64(c.Dim)
	layer := 4*(d*d+d) + 2*d*int64(c.FFN) + int64(c.FFN) + d + 4*d
	return int64(c.Mels)*d*3 + d + d*d*3 + d + int64(c.Layers)*layer + 2*d + d*int64(out) + int64(out)
}

// VisionEncoderConfig is the vision tower (Qwen2-VL style): Qwen2-VL
// patches [n, 3·Temporal·Patch²] → Linear patch embedding → Layers ×
// (LayerNorm, bidirectional attention, LayerNorm, GELU MLP) → the 2×2
// patch merger (LayerNorm, then an MLP over each Merge² group) to the
// thinker's width.
type VisionEncoderConfig struct {
	Dim, Layers, Heads, FFN int
	Patch, Temporal, Merge  int
	// MaxPixels bounds an image's area after Qwen2-VL's smart resize.
	MaxPixels int
}

// PatchDim is the width of one flattened patch.
func (c VisionEncoderConfig) PatchDim() int { return 3 * c.Temporal * c.Patch * c.Patch }

func (c VisionEncoderConfig) validate() error {
	if c.Dim <= 0 || c.Layers < 0 || c.Heads <= 0 || c.Dim%c.Heads != 0 || c.FFN <= 0 || c.Patch <= 0 || c.Temporal <= 0 || c.Merge <= 0 {
		return fmt.Errorf("omni: vision encoder: dim %d, layers %d, heads %d, ffn %d, patch %d, temporal %d, merge %d",
			c.Dim, c.Layers, c.Heads, c.FFN, c.Patch, c.Temporal, c.Merge)
	}
	f := c.Patch * c.Merge
	if c.MaxPixels < f*f {
		return fmt.Errorf("omni: vision encoder: max pixels %d below one %d×%d merged patch", c.MaxPixels, f, f)
	}
	return nil
}

func (c VisionEncoderConfig) params(out int) int64 {
	d := int64(c.Dim)
	layer := 4*(d*d+d) + 2*d*int64(c.FFN) + int64(c.FFN) + d + 4*d
	m := int64(c.Merge * c.Merge)
	return int64(c.PatchDim())*d + d + int64(c.Layers)*layer + 2*d + m*d*m*d + m*d + m*d*int64(out) + int64(out)
}

// ModelConfig is the shape of every stage.
type ModelConfig struct {
	Thinker DecoderConfig
	Audio   AudioEncoderConfig
	Vision  VisionEncoderConfig
	Talker  TalkerConfig
	Vocoder VocoderConfig
}

func (m *ModelConfig) defaults() {
	m.Thinker.defaults()
	m.Talker.defaults()
	if m.Talker.Vocab == 0 {
		m.Talker.Vocab = m.Talker.Codes + 3
	}
	if m.Talker.CodesPerText == 0 {
		m.Talker.CodesPerText = 2
	}
	if m.Vocoder.Codes == 0 {
		m.Vocoder.Codes = m.Talker.Codes
	}
	if m.Vocoder.SampleRate == 0 {
		m.Vocoder.SampleRate = 24000
	}
	if m.Audio.Mels == 0 {
		m.Audio.Mels = 128
	}
	if m.Audio.MaxFrames == 0 {
		m.Audio.MaxFrames = 3000
	}
	if m.Vision.Patch == 0 {
		m.Vision.Patch, m.Vision.Temporal, m.Vision.Merge = 14, 2, 2
	}
	if m.Vision.MaxPixels == 0 {
		m.Vision.MaxPixels = 28 * 28 * 64
	}
}

func (m ModelConfig) validate() error {
	var errs []error
	errs = append(errs, m.Thinker.validate("thinker"), m.Talker.DecoderConfig.validate("talker"),
		m.Vocoder.validate(), m.Audio.validate(), m.Vision.validate())
	if m.Talker.Codes <= 0 || m.Talker.Vocab != m.Talker.Codes+3 {
		errs = append(errs, fmt.Errorf("omni: talker: %d codes need a vocabulary of codes+3 = %d (BOS, EOS, PAD), got %d", m.Talker.Codes, m.Talker.Codes+3, m.Talker.Vocab))
	}
	if m.Talker.CodesPerText < 1 || m.Talker.TailCodes < 0 {
		errs = append(errs, fmt.Errorf("omni: talker: %d codes per text token, %d tail codes", m.Talker.CodesPerText, m.Talker.TailCodes))
	}
	if m.Vocoder.Codes != m.Talker.Codes {
		errs = append(errs, fmt.Errorf("omni: the vocoder reads %d codes, the talker writes %d", m.Vocoder.Codes, m.Talker.Codes))
	}
	return errors.Join(errs...)
}

// Params counts the weights of each stage (thinker, audio encoder, vision
// encoder, talker, vocoder).
func (m ModelConfig) Params() (thinker, audio, vision, talker, vocoder int64) {
	m.defaults()
	t := m.Talker.DecoderConfig.params() + int64(m.Thinker.Hidden)*int64(m.Talker.Hidden) + int64(m.Talker.Hidden) + int64(m.Thinker.Hidden)
	return m.Thinker.params(), m.Audio.params(m.Thinker.Hidden), m.Vision.params(m.Thinker.Hidden), t, m.Vocoder.params()
}

// Presets by name. "tiny" is the default: every stage small enough to run
// the whole pipeline on a laptop core in well under a second per request.
// "small" is a few times larger for benchmarks. The Qwen2.5-Omni presets
// have the published shapes (thinker from the checkpoints' config.json:
// text_config; the encoders' and talker's sizes as published, the
// vocoder a HiFi-GAN stack with BigVGAN's width); they are far too big to
// initialize at random (New refuses, with an estimate) and are meant to be
// loaded from a checkpoint.
var presets = map[string]func() ModelConfig{
	"tiny": func() ModelConfig {
		return ModelConfig{
			Thinker: DecoderConfig{Vocab: 288, Hidden: 64, Intermediate: 176, Layers: 2, Heads: 4, KVHeads: 2,
				RMSEps: 1e-6, RopeTheta: 1e6, MaxPositions: 4096},
			Audio:  AudioEncoderConfig{Mels: 128, Dim: 64, Layers: 1, Heads: 4, FFN: 128, MaxFrames: 3000},
			Vision: VisionEncoderConfig{Dim: 64, Layers: 1, Heads: 4, FFN: 128, Patch: 14, Temporal: 2, Merge: 2, MaxPixels: 28 * 28 * 64},
			Talker: TalkerConfig{DecoderConfig: DecoderConfig{Vocab: 67, Hidden: 48, Intermediate: 128, Layers: 2, Heads: 4, KVHeads: 2,
				RMSEps: 1e-6, RopeTheta: 1e4, MaxPositions: 8192}, Codes: 64, CodesPerText: 2, TailCodes: 4},
			Vocoder: VocoderConfig{Codes: 64, EmbedDim: 32, Channels: 64, Upsample: []int{8, 5, 4, 3},
				ResKernels: []int{3, 7}, Dilations: []int{1, 3, 5}, SampleRate: 24000},
		}
	},
	"small": func() ModelConfig {
		return ModelConfig{
			Thinker: DecoderConfig{Vocab: 288, Hidden: 256, Intermediate: 704, Layers: 4, Heads: 8, KVHeads: 2,
				RMSEps: 1e-6, RopeTheta: 1e6, MaxPositions: 8192},
			Audio:  AudioEncoderConfig{Mels: 128, Dim: 128, Layers: 2, Heads: 4, FFN: 512, MaxFrames: 3000},
			Vision: VisionEncoderConfig{Dim: 128, Layers: 2, Heads: 4, FFN: 512, Patch: 14, Temporal: 2, Merge: 2, MaxPixels: 28 * 28 * 256},
			Talker: TalkerConfig{DecoderConfig: DecoderConfig{Vocab: 259, Hidden: 128, Intermediate: 352, Layers: 2, Heads: 4, KVHeads: 2,
				RMSEps: 1e-6, RopeTheta: 1e4, MaxPositions: 16384}, Codes: 256, CodesPerText: 2, TailCodes: 8},
			Vocoder: VocoderConfig{Codes: 256, EmbedDim: 64, Channels: 128, Upsample: []int{8, 5, 4, 3},
				ResKernels: []int{3, 7, 11}, Dilations: []int{1, 3, 5}, SampleRate: 24000},
		}
	},
	"qwen2.5-omni-7b": func() ModelConfig {
		return ModelConfig{
			Thinker: DecoderConfig{Vocab: 152064, Hidden: 3584, Intermediate: 18944, Layers: 28, Heads: 28, KVHeads: 4,
				RMSEps: 1e-6, RopeTheta: 1e6, MaxPositions: 32768},
			Audio:  AudioEncoderConfig{Mels: 128, Dim: 1280, Layers: 32, Heads: 20, FFN: 5120, MaxFrames: 3000},
			Vision: VisionEncoderConfig{Dim: 1280, Layers: 32, Heads: 16, FFN: 3420, Patch: 14, Temporal: 2, Merge: 2, MaxPixels: 28 * 28 * 16384},
			Talker: TalkerConfig{DecoderConfig: DecoderConfig{Vocab: 8195, Hidden: 896, Intermediate: 18944, Layers: 24, Heads: 12, KVHeads: 4, HeadDim: 64,
				RMSEps: 1e-6, RopeTheta: 1e6, MaxPositions: 32768}, Codes: 8192, CodesPerText: 2, TailCodes: 25},
			Vocoder: VocoderConfig{Codes: 8192, EmbedDim: 512, Channels: 1536, Upsample: []int{8, 5, 4, 3},
				ResKernels: []int{3, 7, 11}, Dilations: []int{1, 3, 5}, SampleRate: 24000},
		}
	},
	"qwen2.5-omni-3b": func() ModelConfig {
		return ModelConfig{
			Thinker: DecoderConfig{Vocab: 151936, Hidden: 2048, Intermediate: 11008, Layers: 36, Heads: 16, KVHeads: 2,
				RMSEps: 1e-6, RopeTheta: 1e6, MaxPositions: 32768},
			Audio:  AudioEncoderConfig{Mels: 128, Dim: 1280, Layers: 32, Heads: 20, FFN: 5120, MaxFrames: 3000},
			Vision: VisionEncoderConfig{Dim: 1280, Layers: 32, Heads: 16, FFN: 3420, Patch: 14, Temporal: 2, Merge: 2, MaxPixels: 28 * 28 * 16384},
			Talker: TalkerConfig{DecoderConfig: DecoderConfig{Vocab: 8195, Hidden: 896, Intermediate: 4864, Layers: 24, Heads: 14, KVHeads: 2, HeadDim: 64,
				RMSEps: 1e-6, RopeTheta: 1e6, MaxPositions: 32768}, Codes: 8192, CodesPerText: 2, TailCodes: 25},
			Vocoder: VocoderConfig{Codes: 8192, EmbedDim: 512, Channels: 1536, Upsample: []int{8, 5, 4, 3},
				ResKernels: []int{3, 7, 11}, Dilations: []int{1, 3, 5}, SampleRate: 24000},
		}
	},
}

// Presets returns the preset names.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns the model shapes of a preset ("" means "tiny").
func Preset(name string) (ModelConfig, error) {
	if name == "" {
		name = "tiny"
	}
	f, ok := presets[strings.ToLower(name)]
	if !ok {
		return ModelConfig{}, fmt.Errorf("omni: unknown preset %q (have %s)", name, strings.Join(Presets(), ", "))
	}
	m := f()
	m.defaults()
	return m, nil
}

// Config configures an Engine. The zero value is valid: the tiny preset
// with seeded synthetic weights, whole-request hand-off, the byte
// tokenizer, and a profiler configured from the environment.
type Config struct {
	// Preset names the model shapes ("tiny" when empty; see Presets).
	Preset string
	// Model, when non-nil, replaces the preset's shapes.
	Model *ModelConfig
	// Seed seeds the synthetic weights (each weight depends only on the
	// seed and its name).
	Seed uint64
	// CheckpointDir is a Hugging Face Qwen2 checkpoint (config.json and
	// model.safetensors, or shards with model.safetensors.index.json; an
	// optional tokenizer.json). The thinker is then that model; the other
	// stages stay synthetic, sized by Model or the tiny preset, with the
	// thinker's width.
	CheckpointDir string
	// Tokenizer replaces the default (the checkpoint's tokenizer.json if
	// any, else the byte tokenizer).
	Tokenizer tokenize.Tokenizer
	// Streaming hands each thinker step to the talker at once and each
	// ChunkFrames codec tokens to the vocoder; otherwise every stage waits
	// for the previous one to finish the request.
	Streaming bool
	// ChunkFrames is the vocoder's chunk in codec frames (default 25).
	ChunkFrames int
	// MaxBatch bounds the requests each decoder loop serves per iteration
	// (default 8).
	MaxBatch int
	// MaxPrefillTokens bounds the prompt tokens the thinker prefills in one
	// iteration (default 2048); a longer prompt is prefilled alone.
	MaxPrefillTokens int
	// QueueSize bounds each queue between stages, in messages (default 64).
	QueueSize int
	// MaxRandomInitBytes refuses synthetic weights above this many bytes
	// (default 4 GiB).
	MaxRandomInitBytes int64
	// Profiler records the engine; nil means profiler.FromEnv with a
	// Chrome sink.
	Profiler *profiler.Profiler
	// Logger receives warnings (default: discarded).
	Logger *slog.Logger
}

// DefaultChunkFrames is the vocoder's default chunk: 25 codec frames
// (0.5 s at 50 Hz).
const DefaultChunkFrames = 25

func (c *Config) defaults() {
	if c.ChunkFrames == 0 {
		c.ChunkFrames = DefaultChunkFrames
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 8
	}
	if c.MaxPrefillTokens == 0 {
		c.MaxPrefillTokens = 2048
	}
	if c.QueueSize == 0 {
		c.QueueSize = 64
	}
	if c.MaxRandomInitBytes == 0 {
		c.MaxRandomInitBytes = 4 << 30
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c Config) validate() error {
	if c.ChunkFrames < 1 || c.MaxBatch < 1 || c.MaxPrefillTokens < 1 || c.QueueSize < 1 || c.MaxRandomInitBytes < 0 {
		return fmt.Errorf("omni: chunk frames %d, max batch %d, max prefill tokens %d, queue size %d must be positive",
			c.ChunkFrames, c.MaxBatch, c.MaxPrefillTokens, c.QueueSize)
	}
	return nil
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }
