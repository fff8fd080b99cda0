package device

import (
	"context"
	"math"
	"math/rand/v2"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// SampleParams select the sampling method: repetition penalty, then
// temperature, top-k and top-p (nucleus), in the order of the Hugging Face
// logits processors. See cpu.SampleParams for each field.
type SampleParams = cpu.SampleParams

// Sampler is a sequence's sampling scratch: it keeps buffers between calls
// to Sample, so a decode loop allocates no vocabulary-sized rows per token.
// The zero value is ready to use; a Sampler is for one goroutine at a time.
type Sampler struct {
	s cpu.Sampler
}

// Sample draws one token from logits, one row of the vocabulary ([V], or
// [1, V] and the like), with prev the tokens so far (for the repetition
// penalty; nil for none) and rng the sequence's seeded generator (needed
// when p.Temperature > 0; exactly one Float64 is drawn unless the result is
// determined, so a seed gives a sequence of tokens). logits is not
// modified. s may be nil (scratch is then allocated per call).
func Sample(ctx context.Context, s *Sampler, logits *tensor.Tensor, prev []int32, p SampleParams, rng *rand.Rand) (int32, error) {
	const name = "sample"
	if err := present(name, operand{"logits", logits}); err != nil {
		return 0, err
	}
	if logits.Rank() < 1 || logits.Dim(-1) == 0 || logits.NumElements() != logits.Dim(-1) {
		return 0, shapeErr("sample: logits %v: want one non-empty row [V]", logits.Shape())
	}
	if err := floatOperands(name, operand{"logits", logits}); err != nil {
		return 0, err
	}
	v := logits.Dim(-1)
	if err := checkSampleParams(p, prev, v, rng); err != nil {
		return 0, err
	}
	if s == nil {
		s = new(Sampler)
	}
	k := begin(ctx, name, cost{flops: 4 * int64(v), bytes: traffic(1, logits)}, logits)
	defer k.end()
	tok, ok, err := backend(k, func(d TokenSampler) (int32, error) { return d.Sample(k.ctx, logits, prev, p, rng) })
	if ok {
		if err == nil && (tok < 0 || int(tok) >= v) {
			err = shapeErr("device %s sampled token %d outside [0, %d)", k.dev.Name(), tok, v)
		}
		return tok, k.wrap(err)
	}
	in, err := k.data(logits)
	if err != nil {
		return 0, err
	}
	return s.s.Sample(in[0], prev, p, rng), nil
}

// checkSampleParams reports parameters the sampler cannot use with a
// vocabulary of v tokens.
func checkSampleParams(p SampleParams, prev []int32, v int, rng *rand.Rand) error {
	t, topP, rp := float64(p.Temperature), float64(p.TopP), float64(p.RepetitionPenalty)
	switch {
	case math.IsNaN(t) || math.IsInf(t, 0):
		return paramErr("sample: temperature is %v, want a finite value (<= 0: greedy)", p.Temperature)
	case math.IsNaN(topP):
		return paramErr("sample: top_p is NaN")
	case math.IsNaN(rp) || math.IsInf(rp, 0) || rp < 0:
		return paramErr("sample: repetition_penalty is %v, want >= 0 (0 or 1: off)", p.RepetitionPenalty)
	case t > 0 && rng == nil:
		return paramErr("sample: rng is nil with temperature %v > 0", p.Temperature)
	}
	if rp != 0 && rp != 1 {
		for i, id := range prev {
			if id < 0 || int(id) >= v {
				return shapeErr("sample: prev[%d] = %d outside the vocabulary [0, %d)", i, id, v)
			}
		}
	}
	return nil
}
