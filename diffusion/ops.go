package diffusion

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/diffusion/textenc"
	"github.com/omniflow-go/omniflow/diffusion/vae"
	"github.com/omniflow-go/omniflow/graph"
	"github.com/omniflow-go/omniflow/operators/vision"
	"github.com/omniflow-go/omniflow/tensor"
)

// TextEncode is the graph operator that encodes the prompt and, when any
// step will use guidance, the negative prompt, in one batch.
type TextEncode struct {
	Preset  Preset
	Encoder *textenc.Encoder
}

// Contract: prompt, negative_prompt (text) and params to cond and uncond.
func (e *TextEncode) Contract() graph.Contract {
	return graph.Contract{Name: "text_encode",
		Inputs:  []graph.Port{graph.In("prompt", graph.Text()), graph.In("negative_prompt", graph.Text()), graph.In("params", graph.Any())},
		Outputs: []graph.Port{graph.Out("cond", hiddenType), graph.Out("uncond", hiddenType)}}
}

// Run serves one request.
func (e *TextEncode) Run(ctx context.Context, io *graph.IO) error {
	prompt, err := graph.Get[string](io, "prompt")
	if err != nil {
		return err
	}
	neg, err := graph.Get[string](io, "negative_prompt")
	if err != nil {
		return err
	}
	p, err := graph.Get[Params](io, "params")
	if err != nil {
		return err
	}
	cond, uncond, err := e.Encode(ctx, prompt, neg, p.usesCFG(e.Preset))
	if err != nil {
		return err
	}
	if err := io.Put("cond", cond); err != nil {
		return err
	}
	return io.Put("uncond", uncond)
}

// Encode returns the prompt's states and, with negative, the negative
// prompt's (else nil).
func (e *TextEncode) Encode(ctx context.Context, prompt, neg string, negative bool) (cond, uncond *textenc.Output, err error) {
	texts := []string{prompt}
	if negative {
		texts = append(texts, neg)
	}
	out, err := e.Encoder.Encode(ctx, texts)
	if err != nil {
		return nil, nil, err
	}
	if !negative {
		return out, nil, nil
	}
	defer out.Release()
	if cond, err = out.Slice(0, 1); err != nil {
		return nil, nil, err
	}
	if uncond, err = out.Slice(1, 2); err != nil {
		cond.Release()
		return nil, nil, err
	}
	return cond, uncond, nil
}

// ImageEncode is the graph operator that encodes the image-to-video
// conditioning image with the VAE encoder.
type ImageEncode struct {
	Preset  Preset
	Encoder *vae.Encoder
}

// Contract: image and params to image_latent.
func (e *ImageEncode) Contract() graph.Contract {
	return graph.Contract{Name: "vae_encode",
		Inputs:  []graph.Port{graph.In("image", graph.Image("C", "H", "W")), graph.In("params", graph.Any())},
		Outputs: []graph.Port{graph.Out("image_latent", latentType)}}
}

// Run serves one request.
func (e *ImageEncode) Run(ctx context.Context, io *graph.IO) error {
	img, err := graph.Get[*tensor.Tensor](io, "image")
	if err != nil {
		return err
	}
	p, err := graph.Get[Params](io, "params")
	if err != nil {
		return err
	}
	z, err := e.Encode(ctx, img, p.Height, p.Width)
	if err != nil {
		return err
	}
	return io.Put("image_latent", z)
}

// Encode resizes img [3, h, w] in [0, 1] to height×width (bicubic), maps it
// to [−1, 1] and encodes it as one frame: [1, C, 1, H/s, W/s].
func (e *ImageEncode) Encode(ctx context.Context, img *tensor.Tensor, height, width int) (*tensor.Tensor, error) {
	if img.Rank() != 3 || img.Dim(0) != 3 {
		return nil, fmt.Errorf("diffusion: image %v, want [3, H, W]", img.Shape())
	}
	src, err := img.ConvertTo(tensor.Float32)
	if err != nil {
		return nil, err
	}
	defer func() { src.Release() }()
	if img.Dim(1) != height || img.Dim(2) != width {
		r, err := vision.Resize(src, height, width, vision.Bicubic)
		if err != nil {
			return nil, err
		}
		src.Release()
		src = r
	}
	px, err := tensor.New(tensor.Float32, []int{1, 3, 1, height, width})
	if err != nil {
		return nil, err
	}
	defer px.Release()
	for i, v := range src.Float32s() {
		px.Float32s()[i] = min(max(2*v-1, -1), 1)
	}
	return e.Encoder.Encode(ctx, px)
}

// Decode is the graph operator that decodes the final latents to pixels:
// a video [T, 3, H, W] or an image [3, H, W], in [−1, 1].
type Decode struct {
	Task    Task
	Decoder *vae.Decoder
}

// Contract: latents to video or image.
func (d *Decode) Contract() graph.Contract {
	out := graph.Out("image", graph.Image("C", "H", "W"))
	if d.Task.Video() {
		out = graph.Out("video", graph.Video("T", "C", "H", "W"))
	}
	return graph.Contract{Name: "vae_decode", Inputs: []graph.Port{graph.In("latents", latentType)}, Outputs: []graph.Port{out}}
}

func (d *Decode) output() string {
	if d.Task.Video() {
		return "video"
	}
	return "image"
}

// Run serves one request.
func (d *Decode) Run(ctx context.Context, io *graph.IO) error {
	z, err := graph.Get[*tensor.Tensor](io, "latents")
	if err != nil {
		return err
	}
	px, err := d.Decode(ctx, z)
	z.Release() // the decoder is the latents' only consumer
	if err != nil {
		return err
	}
	return io.Put(d.output(), px)
}

// Decode decodes latents [1, C, F, h, w] to [T, 3, H, W] or [1, C, h, w] to
// [3, H, W].
func (d *Decode) Decode(ctx context.Context, z *tensor.Tensor) (*tensor.Tensor, error) {
	y, err := d.Decoder.Decode(ctx, z)
	if err != nil {
		return nil, err
	}
	defer y.Release()
	if !d.Task.Video() {
		img, err := y.Reshape(y.Shape()[1:]...)
		if err != nil {
			return nil, err
		}
		defer img.Release()
		return img.Clone()
	}
	v, err := y.Index(0, 0) // [3, T, H, W]
	if err != nil {
		return nil, err
	}
	defer v.Release()
	p, err := v.Permute(1, 0, 2, 3)
	if err != nil {
		return nil, err
	}
	defer p.Release()
	return p.Clone()
}
