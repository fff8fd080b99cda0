package diffusion

import (
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/diffusion/dit"
	"github.com/omniflow-go/omniflow/tensor"
)

// Params are one generation's settings. Start from Pipeline.DefaultParams
// (the preset's) and change what you need; every field is used as is.
type Params struct {
	Prompt         string
	NegativePrompt string
	Height, Width  int // pixels
	Frames         int // video frames (1 + 4k for Wan); ignored for images
	Steps          int // num_inference_steps
	// GuidanceScale is the classifier-free guidance scale (of the
	// high-noise expert, for Wan 2.2 A14B); GuidanceScale2 is the
	// low-noise expert's (guidance_scale_2). Z-Image guides when the scale
	// is above 0 (its formula is cond + s·(cond − uncond)).
	//
	// Wan guides a step when that step's expert's scale is above 1,
	// decided per step. diffusers' WanPipeline decides once, from
	// guidance_scale alone: with GuidanceScale ≤ 1 it never guides, even
	// with GuidanceScale2 > 1, and with GuidanceScale > 1 it runs both
	// passes on every step, even at a low-noise scale of 1 (where the
	// guided result is the conditional pass). Here GuidanceScale 1 with
	// GuidanceScale2 3 runs one pass on the high-noise steps and two on the
	// low-noise ones, and a scale of 1 never costs a second pass.
	GuidanceScale, GuidanceScale2 float64
	// Shift is the sampler's flow shift (Wan's sample_shift, Z-Image's
	// scheduler shift).
	Shift float64
	// CFGTruncation (Z-Image, in [0, 1]): guidance stops once the step's
	// normalized time (1000 − t)/1000 exceeds it; 1 keeps it throughout.
	CFGTruncation float64
	// CFGNormalization (Z-Image): when > 0, the guided prediction is
	// rescaled so its norm is at most CFGNormalization times the
	// conditional prediction's; 0 turns it off.
	CFGNormalization float64
	Seed             uint64
	// Image is the image-to-video conditioning image, [3, H, W] in [0, 1]
	// (vision.ToTensor); it is resized to Height×Width.
	Image *tensor.Tensor
}

// usesCFG reports whether any step may use guidance.
func (p Params) usesCFG(pr Preset) bool {
	if pr.Family() == dit.ZImage {
		return p.GuidanceScale > 0
	}
	return p.GuidanceScale > 1 || (pr.DiT2 != nil && p.GuidanceScale2 > 1)
}

// Validate reports the first problem with p for the preset and task, in
// words a command-line user can act on.
func (p Params) Validate(pr Preset, task Task) error {
	if !pr.Supports(task) {
		return fmt.Errorf("%w: preset %s does not do %s (it does %v)", ErrParams, pr.Name, task, pr.Tasks)
	}
	mult := pr.VAE.SpatialFactor() * pr.DiT.Patch[1]
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case p.Steps < 1:
		return fmt.Errorf("%w: %d inference steps; need at least 1", ErrParams, p.Steps)
	case p.Height <= 0 || p.Width <= 0:
		return fmt.Errorf("%w: size %dx%d; height and width must be positive", ErrParams, p.Width, p.Height)
	case p.Height%mult != 0 || p.Width%mult != 0:
		return fmt.Errorf("%w: size %dx%d; height and width must be multiples of %d (VAE factor %d × patch %d)",
			ErrParams, p.Width, p.Height, mult, pr.VAE.SpatialFactor(), pr.DiT.Patch[1])
	case !finite(p.GuidanceScale) || !finite(p.GuidanceScale2) || p.GuidanceScale < 0 || p.GuidanceScale2 < 0:
		return fmt.Errorf("%w: guidance scales %v, %v must be finite and >= 0", ErrParams, p.GuidanceScale, p.GuidanceScale2)
	case !(p.Shift > 0) || !finite(p.Shift):
		return fmt.Errorf("%w: flow shift %v must be > 0", ErrParams, p.Shift)
	case !(p.CFGTruncation >= 0 && p.CFGTruncation <= 1):
		return fmt.Errorf("%w: cfg truncation %v must be in [0, 1]", ErrParams, p.CFGTruncation)
	case !(p.CFGNormalization >= 0) || !finite(p.CFGNormalization):
		return fmt.Errorf("%w: cfg normalization %v must be >= 0", ErrParams, p.CFGNormalization)
	}
	if task.Video() {
		if p.Frames < 1 {
			return fmt.Errorf("%w: %d frames; need at least 1", ErrParams, p.Frames)
		}
		if lf, err := pr.VAE.LatentFrames(p.Frames); err != nil {
			return fmt.Errorf("%w: %w", ErrParams, err)
		} else if lf%pr.DiT.Patch[0] != 0 {
			return fmt.Errorf("%w: %d latent frames do not split into temporal patches of %d", ErrParams, lf, pr.DiT.Patch[0])
		}
	}
	if task == ImageToVideo {
		if p.Image == nil {
			return fmt.Errorf("%w: image-to-video needs an image", ErrParams)
		}
		if s := p.Image.Shape(); len(s) != 3 || s[0] != 3 || s[1] < 1 || s[2] < 1 {
			return fmt.Errorf("%w: conditioning image %v, want [3, H, W]", ErrParams, s)
		}
	}
	return nil
}

// latentShape returns the latent of a request: [1, C, F, H, W] for video,
// [1, C, H, W] for images.
func latentShape(pr Preset, task Task, p Params) []int {
	s := pr.VAE.SpatialFactor()
	c := pr.DiT.InChannels
	if !task.Video() {
		return []int{1, c, p.Height / s, p.Width / s}
	}
	f, _ := pr.VAE.LatentFrames(p.Frames)
	return []int{1, c, f, p.Height / s, p.Width / s}
}
