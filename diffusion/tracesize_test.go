package diffusion

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/sinks/memory"
)

// realDepthPreset is Wan2.2-T2V-A14B at its real depths — the 24-layer
// umt5-xxl encoder at its 512-token context, two 40-layer experts, the
// Wan 2.1 VAE's levels and blocks, 40 guided steps (two passes each) — at
// toy widths, so a whole run takes a moment. The trace's size depends on
// the depths (spans per layer, kernels per span) and not on the widths.
func realDepthPreset(t testing.TB) Preset {
	t.Helper()
	pr, err := LookupPreset("Wan2.2-T2V-A14B")
	if err != nil {
		t.Fatal(err)
	}
	pr.Name = "Wan2.2-T2V-A14B-depths"
	txt := pr.Text
	// The byte tokenizer needs 259 ids; the real 256384-row table would be
	// 256384×Dim random numbers for nothing.
	txt.Vocab, txt.Dim, txt.Heads, txt.HeadDim, txt.FFN = tinyText().Vocab, 32, 4, 8, 64
	pr.Text = txt
	d := *pr.DiT
	d.Dim, d.FFN, d.Heads, d.FreqDim, d.TextDim = 32, 64, 4, 32, txt.Dim
	pr.DiT, pr.DiT2 = ptr(d), ptr(d)
	v := pr.VAE
	v.BaseDim = 8
	pr.VAE = v
	pr.Defaults.Height, pr.Defaults.Width, pr.Defaults.Frames = 16, 16, 5
	if pr.Text.Layers != 24 || pr.Text.TextLen != 512 || pr.DiT.Layers != 40 || pr.DiT2 == nil ||
		pr.Defaults.Steps != 40 || !(pr.Defaults.GuidanceScale > 1 && pr.Defaults.GuidanceScale2 > 1) {
		t.Fatalf("the Wan2.2-T2V-A14B preset changed: %+v", pr)
	}
	return pr
}

// countSpans runs f once under its own profiler and returns how many
// records it made other than memory counter samples (which the device
// emits when its memory in use moved by 1/64 since the last sample, so
// their number depends on what else is held).
func countSpans(t *testing.T, f func(ctx context.Context)) int {
	t.Helper()
	spans, _ := splitCounters(record(t, f))
	return spans
}

// splitCounters counts the records other than counter samples, and the
// counter samples.
func splitCounters(recs []profiler.Record) (spans, counters int) {
	for _, r := range recs {
		if r.Kind == profiler.KindCounter {
			counters++
		} else {
			spans++
		}
	}
	return spans, counters
}

// TestTraceSizeAtRealDepth: with VLLM_PROFILER_MAX_ITERS=2 a Wan2.2-T2V-A14B
// run of 40 steps records the encoder and two steps, nothing dropped, and
// no more events than one text encode plus two guided steps (measured on
// their own here) and a few operator slices: the trace does not grow with
// the 40 steps.
func TestTraceSizeAtRealDepth(t *testing.T) {
	ctx := context.Background()
	pr := realDepthPreset(t)
	pl, err := New(ctx, pr, TextToVideo)
	if err != nil {
		t.Fatal(err)
	}
	p := pl.DefaultParams()
	p.Prompt, p.NegativePrompt = "a red fox running through fresh snow at dawn", "blurry, low quality"

	// The parts, each recorded alone: one encode of the prompt and the
	// negative prompt, and one guided step of the high-noise expert (the
	// expert of the first two steps at shift 12: t = 999, 997 ≥ 875).
	enc := &TextEncode{Preset: pr, Encoder: pl.Text}
	encodeEvents := countSpans(t, func(ctx context.Context) {
		c, u, err := enc.Encode(ctx, p.Prompt, p.NegativePrompt, true)
		if err != nil {
			t.Fatal(err)
		}
		c.Release()
		u.Release()
	})
	cond, uncond, err := enc.Encode(ctx, p.Prompt, p.NegativePrompt, true)
	if err != nil {
		t.Fatal(err)
	}
	defer cond.Release()
	defer uncond.Release()
	one := p
	one.Steps = 1
	stepEvents := countSpans(t, func(ctx context.Context) {
		lat, err := pl.Loop.Denoise(ctx, one, cond, uncond, nil)
		if err != nil {
			t.Fatal(err)
		}
		lat.Release()
	})

	// The whole run, profiled with a window of two iterations.
	dir := t.TempDir()
	mem := memory.New()
	prof, err := profiler.New(profiler.WithDir(dir), profiler.WithSink(chrome.New()), profiler.WithSink(mem),
		profiler.WithMaxIters(2), profiler.WithName("depths"))
	if err != nil {
		t.Fatal(err)
	}
	pl, err = New(ctx, pr, TextToVideo, WithProfiler(prof))
	if err != nil {
		t.Fatal(err)
	}
	if err := prof.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Generate(ctx, p); err != nil {
		t.Fatal(err)
	}
	res, err := prof.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != profiler.StopMaxIters || res.Dropped != 0 {
		t.Errorf("stopped by %q with %d records dropped; want %q and none", res.Reason, res.Dropped, profiler.StopMaxIters)
	}
	recs := mem.Records()
	count := func(kind profiler.Kind, name string) int {
		n := 0
		for _, r := range recs {
			if r.Kind == kind && r.Name == name {
				n++
			}
		}
		return n
	}
	// Two steps of two passes through 40 blocks; the encoder's 24 blocks.
	if n := count(profiler.KindIteration, SpanStep); n != 2 {
		t.Errorf("%d %s spans, want 2", n, SpanStep)
	}
	for _, c := range []struct {
		name string
		want int
	}{{SpanCond, 2}, {SpanUncond, 2}, {"WanDiT", 4}, {"WanBlock", 4 * pr.DiT.Layers}, {"T5Block", pr.Text.Layers}} {
		if n := count(profiler.KindModule, c.name); n != c.want {
			t.Errorf("%d %s spans, want %d", n, c.name, c.want)
		}
	}
	// The bound: the encode, the two steps, and operator slices and
	// engine records (an operator may be split into slices where it waits:
	// a few per node) — 64 is ample for a three-node graph. Memory counter
	// samples come on top, at most one per kernel.
	const slack = 64
	spans, counters := splitCounters(recs)
	bound := encodeEvents + 2*stepEvents + slack
	kernels := 0
	for _, r := range recs {
		if r.Kind == profiler.KindKernel {
			kernels++
		}
	}
	if spans > bound || counters > kernels || int(res.Events) != len(recs) {
		t.Errorf("%d records (%d exported): %d spans, want at most encode + 2 steps + %d = %d + 2·%d + %d; %d counter samples for %d kernels",
			len(recs), res.Events, spans, slack, encodeEvents, stepEvents, slack, counters, kernels)
	}
	trace := filepath.Join(res.Dir, "trace.json.gz")
	fi, err := os.Stat(trace)
	if err != nil {
		t.Fatal(err)
	}
	// About 350 KB measured; 2 MiB leaves room for richer attributes while
	// still failing if every step (40× the window) were recorded.
	if fi.Size() > 2<<20 {
		t.Errorf("trace.json.gz is %d bytes, want at most 2 MiB", fi.Size())
	}
	t.Logf("%d events (%d spans: encode %d, one step %d; all %d steps would be about %d), trace.json.gz %d bytes",
		len(recs), spans, encodeEvents, stepEvents, p.Steps, encodeEvents+p.Steps*stepEvents, fi.Size())
}
