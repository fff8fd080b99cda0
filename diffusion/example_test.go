package diffusion_test

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/diffusion"
)

// A text-to-video run of the tiny Wan 2.2-style preset with seeded
// synthetic weights; pass diffusion.WithProfiler to record it.
func Example() {
	ctx := context.Background()
	pr, err := diffusion.LookupPreset("tiny-wan2.2-t2v")
	if err != nil {
		panic(err)
	}
	pl, err := diffusion.New(ctx, pr, diffusion.TextToVideo)
	if err != nil {
		panic(err)
	}
	p := pl.DefaultParams()
	p.Prompt, p.Frames, p.Steps = "a fox running through snow", 9, 2
	res, err := pl.Generate(ctx, p)
	if err != nil {
		panic(err)
	}
	fmt.Println("video", res.Video.Shape(), "from latent frames", (p.Frames-1)/pr.VAE.TemporalFactor()+1)
	// Output: video [9 3 32 32] from latent frames 3
}

// Real-size presets are refused with synthetic weights: they would need
// tens of GB. Load them with WithCheckpoint.
func ExampleNew_tooLarge() {
	pr, _ := diffusion.LookupPreset("Wan2.2-TI2V-5B")
	n, _ := pr.EstimateBytes(diffusion.ImageToVideo)
	_, err := diffusion.New(context.Background(), pr, diffusion.ImageToVideo)
	fmt.Println(diffusion.FormatBytes(n), err != nil)
	// Output: 41.1 GiB true
}
