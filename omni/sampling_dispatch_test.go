package omni

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
)

// TestTokenSamplerMatchesCPU checks that sampling through the device
// kernel draws exactly the tokens cpu.Sampler draws from the same seed
// (masking and repetition penalty included), so the switch to the device
// entry point changed no request's output.
func TestTokenSamplerMatchesCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const vocab = 300
	for _, p := range []cpu.SampleParams{
		{},
		{Temperature: 0.9, TopK: 40, TopP: 0.8, RepetitionPenalty: 1.05},
		{Temperature: 1.2},
		{Temperature: 0.7, TopP: 0.5},
		{Temperature: 1, TopK: 5, RepetitionPenalty: 1.5},
	} {
		ts := newTokenSampler(42, 7, p)
		var ref cpu.Sampler
		refRng := rand.New(rand.NewPCG(42, 7))
		var prev []int32
		mask := []int32{0, 1, vocab - 1}
		for step := 0; step < 40; step++ {
			logits := make([]float32, vocab)
			for i := range logits {
				logits[i] = float32(rng.NormFloat64() * 3)
			}
			masked := append([]float32(nil), logits...)
			for _, id := range mask {
				masked[id] = float32(math.Inf(-1))
			}
			want := ref.Sample(masked, prev, p, refRng)
			got, err := ts.sampleCtx(context.Background(), logits, prev, mask...)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("%+v step %d: token %d, want %d", p, step, got, want)
			}
			prev = append(prev, got)
		}
	}
}

// TestTokenSamplerSpan checks that sampling under a recording context
// records one "sample" kernel span per token.
func TestTokenSamplerSpan(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	p, err := profiler.New(profiler.WithSink(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "thinker", LaneName: "loop"}, "step")
	ts := newTokenSampler(1, 2, cpu.SampleParams{Temperature: 0.8, TopK: 3})
	logits := []float32{0.1, 2, -1, 3, 0.5}
	for range 3 {
		tok, err := ts.sampleCtx(actx, logits, nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		if tok == 3 {
			t.Fatal("sampled a masked token")
		}
	}
	act.End(nil)
	if _, err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range mem.Records() {
		if r.Kind == profiler.KindKernel && r.Name == "sample" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d sample kernel spans, want 3", n)
	}
}
