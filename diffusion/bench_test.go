package diffusion

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
	"github.com/omniflow-go/omniflow/tensor"
)

// benchSizes are the two sizes the operator benchmarks run at: the tiny
// text-to-video preset as shipped, and a "small" one four times wider in
// pixels with a twice wider, twice deeper DiT.
func benchSizes(b *testing.B) []Preset {
	tiny, err := LookupPreset("tiny-wan2.2-t2v")
	if err != nil {
		b.Fatal(err)
	}
	small := tiny
	small.Name = "small"
	txt := small.Text
	txt.Dim, txt.Layers, txt.FFN, txt.Heads = 128, 4, 256, 8
	small.Text = txt
	d := *tiny.DiT
	d.Dim, d.FFN, d.Layers, d.Heads, d.TextDim = 128, 256, 4, 8, txt.Dim
	small.DiT, small.DiT2 = ptr(d), ptr(d)
	v := tiny.VAE
	v.BaseDim = 16
	small.VAE = v
	small.Defaults.Height, small.Defaults.Width, small.Defaults.Frames = 64, 64, 9
	return []Preset{tiny, small}
}

// kernelFLOPs runs f once under a profiler and sums the kernels' FLOPs.
func kernelFLOPs(b *testing.B, f func(ctx context.Context)) float64 {
	mem := memory.New()
	p, err := profiler.New(profiler.WithSink(mem))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		b.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{StageName: "diffusion"}, "bench")
	f(actx)
	act.End(nil)
	if _, err := p.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	var flops float64
	for _, r := range mem.Records() {
		if r.Kind == profiler.KindKernel {
			if a, ok := r.Attr("flops"); ok {
				flops += float64(a.AsInt())
			}
		}
	}
	return flops
}

func report(b *testing.B, flops float64, start time.Time, unit string, perOp float64) {
	sec := time.Since(start).Seconds()
	b.ReportMetric(flops*float64(b.N)/sec/1e9, "GFLOP/s")
	if unit != "" {
		b.ReportMetric(perOp*float64(b.N)/sec, unit)
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, pr := range benchSizes(b) {
		b.Run(pr.Name, func(b *testing.B) {
			pl, err := New(context.Background(), pr, TextToVideo)
			if err != nil {
				b.Fatal(err)
			}
			enc := &TextEncode{Preset: pr, Encoder: pl.Text}
			run := func(ctx context.Context) {
				c, u, err := enc.Encode(ctx, "a red fox running through fresh snow at dawn", "blurry, low quality", true)
				if err != nil {
					b.Fatal(err)
				}
				c.Release()
				u.Release()
			}
			flops := kernelFLOPs(b, run)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				run(context.Background())
			}
			report(b, flops, start, "prompts/s", 2)
		})
	}
}

// BenchmarkDenoiseStep is one guided step (two DiT passes, the guidance
// combination and the UniPC update) at the preset's default size.
func BenchmarkDenoiseStep(b *testing.B) {
	for _, pr := range benchSizes(b) {
		p := pr.Defaults
		p.Steps = 1
		b.Run(fmt.Sprintf("%s/%dx%dx%d", pr.Name, p.Frames, p.Height, p.Width), func(b *testing.B) {
			pl, err := New(context.Background(), pr, TextToVideo)
			if err != nil {
				b.Fatal(err)
			}
			enc := &TextEncode{Preset: pr, Encoder: pl.Text}
			cond, uncond, err := enc.Encode(context.Background(), "a fox", "", true)
			if err != nil {
				b.Fatal(err)
			}
			run := func(ctx context.Context) {
				lat, err := pl.Loop.Denoise(ctx, p, cond, uncond, nil)
				if err != nil {
					b.Fatal(err)
				}
				lat.Release()
			}
			flops := kernelFLOPs(b, run)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				run(context.Background())
			}
			report(b, flops, start, "steps/s", 1)
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, pr := range benchSizes(b) {
		p := pr.Defaults
		b.Run(fmt.Sprintf("%s/%dx%dx%d", pr.Name, p.Frames, p.Height, p.Width), func(b *testing.B) {
			pl, err := New(context.Background(), pr, TextToVideo)
			if err != nil {
				b.Fatal(err)
			}
			z := tensor.Zeros(tensor.Float32, latentShape(pr, TextToVideo, p)...)
			for i := range z.Float32s() {
				z.Float32s()[i] = float32(i%13)/6 - 1
			}
			dec := &Decode{Task: TextToVideo, Decoder: pl.Decoder}
			run := func(ctx context.Context) {
				v, err := dec.Decode(ctx, z)
				if err != nil {
					b.Fatal(err)
				}
				v.Release()
			}
			flops := kernelFLOPs(b, run)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				run(context.Background())
			}
			report(b, flops, start, "frames/s", float64(p.Frames))
		})
	}
}
