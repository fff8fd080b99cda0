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

// zImageBenchSizes are the Z-Image sizes: the tiny text-to-image preset as
// shipped (32×32), and a "small" one with four times the pixels, a twice
// wider, twice deeper DiT and a twice wider VAE.
func zImageBenchSizes(b *testing.B) []Preset {
	tiny, err := LookupPreset("tiny-z-image")
	if err != nil {
		b.Fatal(err)
	}
	small := tiny
	small.Name = "small"
	txt := small.Text
	txt.Dim, txt.Layers, txt.FFN, txt.Heads = 128, 4, 256, 8
	small.Text = txt
	d := *tiny.DiT
	d.Dim, d.FFN, d.Layers, d.Heads, d.TextDim, d.AdaLNDim, d.TimeMid = 128, 320, 4, 4, txt.Dim, 128, 128
	small.DiT = ptr(d)
	v := tiny.VAE
	v.BaseDim = 32
	small.VAE = v
	small.Defaults.Height, small.Defaults.Width = 64, 64
	return []Preset{tiny, small}
}

// i2vBenchSizes are the image-to-video sizes: the tiny TI2V preset as
// shipped (a 32×32 image), and a "small" one with four times the pixels
// and a twice wider VAE.
func i2vBenchSizes(b *testing.B) []Preset {
	tiny, err := LookupPreset("tiny-wan2.2-ti2v")
	if err != nil {
		b.Fatal(err)
	}
	small := tiny
	small.Name = "small"
	v := tiny.VAE
	v.BaseDim = 16
	small.VAE = v
	small.Defaults.Height, small.Defaults.Width = 64, 64
	return []Preset{tiny, small}
}

// BenchmarkDenoiseStep is one guided step at the preset's default size:
// for Wan two DiT passes, the guidance combination and the UniPC update;
// for Z-Image one batched pass of cond and uncond, the guidance
// combination and the Euler update.
func BenchmarkDenoiseStep(b *testing.B) {
	type size struct {
		family string
		task   Task
		pr     Preset
	}
	var sizes []size
	for _, pr := range benchSizes(b) {
		sizes = append(sizes, size{"wan", TextToVideo, pr})
	}
	for _, pr := range zImageBenchSizes(b) {
		sizes = append(sizes, size{"zimage", TextToImage, pr})
	}
	for _, sz := range sizes {
		pr := sz.pr
		p := pr.Defaults
		p.Steps = 1
		name := fmt.Sprintf("%s/%s/%dx%dx%d", sz.family, pr.Name, p.Frames, p.Height, p.Width)
		if !sz.task.Video() {
			name = fmt.Sprintf("%s/%s/%dx%d", sz.family, pr.Name, p.Height, p.Width)
		}
		b.Run(name, func(b *testing.B) {
			pl, err := New(context.Background(), pr, sz.task)
			if err != nil {
				b.Fatal(err)
			}
			if !p.usesCFG(pr) {
				b.Fatalf("%s: the benchmark is of a guided step", pr.Name)
			}
			enc := &TextEncode{Preset: pr, Encoder: pl.Text}
			cond, uncond, err := enc.Encode(context.Background(), "a fox", "", true)
			if err != nil {
				b.Fatal(err)
			}
			defer cond.Release()
			defer uncond.Release()
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

// BenchmarkDecode is the VAE decoder: Wan's causal 3D one over a clip, and
// AutoencoderKL's 2D one (Z-Image) over an image.
func BenchmarkDecode(b *testing.B) {
	type size struct {
		name string
		task Task
		pr   Preset
	}
	var sizes []size
	for _, pr := range benchSizes(b) {
		p := pr.Defaults
		sizes = append(sizes, size{fmt.Sprintf("wan3d/%s/%dx%dx%d", pr.Name, p.Frames, p.Height, p.Width), TextToVideo, pr})
	}
	for _, pr := range zImageBenchSizes(b) {
		p := pr.Defaults
		sizes = append(sizes, size{fmt.Sprintf("kl2d/%s/%dx%d", pr.Name, p.Height, p.Width), TextToImage, pr})
	}
	for _, sz := range sizes {
		pr, p := sz.pr, sz.pr.Defaults
		b.Run(sz.name, func(b *testing.B) {
			pl, err := New(context.Background(), pr, sz.task)
			if err != nil {
				b.Fatal(err)
			}
			z := tensor.Zeros(tensor.Float32, latentShape(pr, sz.task, p)...)
			defer z.Release()
			for i := range z.Float32s() {
				z.Float32s()[i] = float32(i%13)/6 - 1
			}
			dec := &Decode{Task: sz.task, Decoder: pl.Decoder}
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
			frames := 1
			if sz.task.Video() {
				frames = p.Frames
				b.ReportMetric(float64(frames*b.N)/time.Since(start).Seconds(), "frames/s")
			}
			report(b, flops, start, "Mpixels/s", float64(frames*p.Height*p.Width)/1e6)
		})
	}
}

// BenchmarkEncodeImage is image-to-video's conditioning encode: the image
// (already at the output size) mapped to [−1, 1] and through the Wan VAE
// encoder as one frame.
func BenchmarkEncodeImage(b *testing.B) {
	for _, pr := range i2vBenchSizes(b) {
		p := pr.Defaults
		b.Run(fmt.Sprintf("%s/%dx%d", pr.Name, p.Height, p.Width), func(b *testing.B) {
			pl, err := New(context.Background(), pr, ImageToVideo)
			if err != nil {
				b.Fatal(err)
			}
			img := testImage(p.Height, p.Width)
			defer img.Release()
			enc := &ImageEncode{Preset: pr, Encoder: pl.Encoder}
			run := func(ctx context.Context) {
				z, err := enc.Encode(ctx, img, p.Height, p.Width)
				if err != nil {
					b.Fatal(err)
				}
				z.Release()
			}
			flops := kernelFLOPs(b, run)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				run(context.Background())
			}
			report(b, flops, start, "Mpixels/s", float64(p.Height*p.Width)/1e6)
		})
	}
}
