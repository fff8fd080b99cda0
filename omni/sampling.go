package omni

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/tensor"
)

// SamplingParams control the thinker's text generation (and, through
// Audio, the talker's codec generation) for one request.
type SamplingParams struct {
	// Temperature divides the logits; 0 is greedy decoding.
	Temperature float32
	// TopK keeps the k most likely tokens (0: all).
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP (0 or 1: all).
	TopP float32
	// RepetitionPenalty (> 1 discourages repeats; 0 or 1: off) applies to
	// every token of the prompt and of the output so far, once each.
	RepetitionPenalty float32
	// Seed makes sampling deterministic: a request's tokens depend only on
	// the model, the prompt and these parameters, never on what it is
	// batched with.
	Seed uint64
	// MaxTokens bounds the text tokens generated; it must be at least 1.
	MaxTokens int
	// StopTokenIDs end the text when sampled (they are not part of the
	// output). The tokenizer's end-of-text and <|im_end|> ids are added
	// unless IgnoreEOS.
	StopTokenIDs []int32
	// Stop strings end the text where they first appear (cut before them).
	Stop []string
	// IgnoreEOS keeps generating past the end-of-text tokens (benchmarks).
	IgnoreEOS bool
	// Audio controls the talker. Audio.Disabled returns text only.
	Audio AudioParams
}

// AudioParams control the talker's codec tokens. The zero value is greedy
// decoding with the model's own limits. Qwen2.5-Omni's defaults are
// temperature 0.9, top-k 40, top-p 0.8, repetition penalty 1.05
// (DefaultAudioParams).
type AudioParams struct {
	Disabled          bool
	Temperature       float32
	TopK              int
	TopP              float32
	RepetitionPenalty float32
	// MaxCodecTokens bounds the codec tokens (0: CodesPerText per text
	// token plus the talker's tail, which is always a bound).
	MaxCodecTokens int
}

// DefaultSamplingParams returns greedy decoding of up to 64 tokens.
func DefaultSamplingParams() SamplingParams { return SamplingParams{MaxTokens: 64} }

// DefaultAudioParams returns Qwen2.5-Omni's talker sampling settings.
func DefaultAudioParams() AudioParams {
	return AudioParams{Temperature: 0.9, TopK: 40, TopP: 0.8, RepetitionPenalty: 1.05}
}

// ErrInvalid is wrapped by every error about a request's inputs or
// parameters.
var ErrInvalid = errors.New("omni: invalid request")

func (p SamplingParams) validate() error {
	switch {
	case p.MaxTokens < 1:
		return fmt.Errorf("%w: max_tokens is %d, want at least 1", ErrInvalid, p.MaxTokens)
	case p.Temperature < 0 || math.IsNaN(float64(p.Temperature)) || math.IsInf(float64(p.Temperature), 0):
		return fmt.Errorf("%w: temperature %v", ErrInvalid, p.Temperature)
	case p.TopK < 0:
		return fmt.Errorf("%w: top_k %d", ErrInvalid, p.TopK)
	case p.TopP < 0 || p.TopP > 1 || math.IsNaN(float64(p.TopP)):
		return fmt.Errorf("%w: top_p %v, want [0, 1]", ErrInvalid, p.TopP)
	case p.RepetitionPenalty < 0 || math.IsNaN(float64(p.RepetitionPenalty)):
		return fmt.Errorf("%w: repetition_penalty %v", ErrInvalid, p.RepetitionPenalty)
	}
	for _, s := range p.Stop {
		if s == "" {
			return fmt.Errorf("%w: empty stop string", ErrInvalid)
		}
	}
	a := p.Audio
	switch {
	case a.Temperature < 0 || math.IsNaN(float64(a.Temperature)) || math.IsInf(float64(a.Temperature), 0):
		return fmt.Errorf("%w: audio temperature %v", ErrInvalid, a.Temperature)
	case a.TopK < 0 || a.TopP < 0 || a.TopP > 1 || math.IsNaN(float64(a.TopP)):
		return fmt.Errorf("%w: audio top_k %d, top_p %v", ErrInvalid, a.TopK, a.TopP)
	case a.RepetitionPenalty < 0 || math.IsNaN(float64(a.RepetitionPenalty)):
		return fmt.Errorf("%w: audio repetition_penalty %v", ErrInvalid, a.RepetitionPenalty)
	case a.MaxCodecTokens < 0:
		return fmt.Errorf("%w: max codec tokens %d", ErrInvalid, a.MaxCodecTokens)
	}
	return nil
}

// tokenSampler draws one sequence's tokens: its own scratch buffers and
// its own seeded generator, so a request's draws do not depend on others.
type tokenSampler struct {
	s      device.Sampler
	rng    *rand.Rand
	params device.SampleParams
	masked []float32 // scratch for masked logits
}

func newTokenSampler(seed, stream uint64, p device.SampleParams) *tokenSampler {
	return &tokenSampler{rng: rand.New(rand.NewPCG(seed, stream)), params: p}
}

// sampleCtx draws from logits with history prev through device.Sample (a
// "sample" kernel span under ctx); the ids in mask are excluded (their
// logits set to −Inf in a copy).
func (t *tokenSampler) sampleCtx(ctx context.Context, logits []float32, prev []int32, mask ...int32) (int32, error) {
	if len(mask) > 0 {
		t.masked = append(t.masked[:0], logits...)
		for _, id := range mask {
			if id >= 0 && int(id) < len(t.masked) {
				t.masked[id] = float32(math.Inf(-1))
			}
		}
		logits = t.masked
	}
	row, err := tensor.FromFloat32(logits, len(logits))
	if err != nil {
		return 0, err
	}
	defer row.Release()
	return device.Sample(ctx, &t.s, row, prev, t.params, t.rng)
}
