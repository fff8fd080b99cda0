package diffusion

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/omniflow-go/omniflow/diffusion/dit"
	"github.com/omniflow-go/omniflow/diffusion/textenc"
	"github.com/omniflow-go/omniflow/diffusion/vae"
)

// Task is what a pipeline generates from what.
type Task string

const (
	TextToVideo  Task = "t2v"
	ImageToVideo Task = "i2v"
	TextToImage  Task = "t2i"
)

// Video reports whether the task makes a video.
func (t Task) Video() bool { return t == TextToVideo || t == ImageToVideo }

// SchedulerKind names the sampler a preset uses.
type SchedulerKind string

const (
	// UniPC is flow UniPC multistep (Wan).
	UniPC SchedulerKind = "flow_unipc"
	// Euler is flow-matching Euler (Z-Image).
	Euler SchedulerKind = "flow_euler"
)

// ErrParams reports an invalid generation parameter.
var ErrParams = errors.New("diffusion: invalid parameters")

// Preset is a model family's architecture, sampler and defaults.
type Preset struct {
	Name        string
	Description string
	Tasks       []Task // the first is the default
	Text        textenc.Config
	// DiT is the only transformer, or Wan 2.2's high-noise expert; DiT2 is
	// the low-noise expert (nil for one model).
	DiT, DiT2 *dit.Config
	// BoundaryRatio: the high-noise expert runs while the timestep is at
	// least BoundaryRatio·1000 (Wan 2.2 A14B: 0.875 for T2V).
	BoundaryRatio float64
	VAE           vae.Config
	Scheduler     SchedulerKind
	// FirstFrameConditioning is Wan 2.2 TI2V's image conditioning (the
	// image latent replaces the first latent frame, whose tokens get
	// timestep 0).
	FirstFrameConditioning bool
	Defaults               Params
}

// Family is the denoiser's family.
func (p Preset) Family() dit.Family { return p.DiT.Family }

// Supports reports whether the preset can do task.
func (p Preset) Supports(t Task) bool { return slices.Contains(p.Tasks, t) }

// NumParams returns the weights a pipeline for task holds.
func (p Preset) NumParams(t Task) (int64, error) {
	n := p.Text.NumParams() + p.DiT.NumParams()
	if p.DiT2 != nil {
		n += p.DiT2.NumParams()
	}
	v, err := p.VAE.NumParams(t == ImageToVideo)
	return n + v, err
}

func ptr[T any](v T) *T { return &v }

func tinyText() textenc.Config { return textenc.Tiny() }

// Presets returns every preset: tiny ones with seeded synthetic weights
// that run in about a second on a laptop CPU (the defaults), and the real
// architectures' shapes, which need checkpoints (see New).
func Presets() []Preset {
	tt := tinyText()
	return []Preset{
		{
			Name:        "tiny-wan2.2-t2v",
			Description: "Wan 2.2 T2V-A14B's structure at toy size: two experts, UniPC with shift 12, boundary 0.875",
			Tasks:       []Task{TextToVideo},
			Text:        tt,
			DiT:         ptr(dit.TinyWan(4, tt.Dim)), DiT2: ptr(dit.TinyWan(4, tt.Dim)), BoundaryRatio: 0.875,
			VAE: vae.TinyWan(), Scheduler: UniPC,
			Defaults: Params{Height: 32, Width: 32, Frames: 5, Steps: 4, GuidanceScale: 4, GuidanceScale2: 3, Shift: 12},
		},
		{
			Name:        "tiny-wan2.2-ti2v",
			Description: "Wan 2.2 TI2V-5B's structure at toy size: one model, first-frame image conditioning, UniPC with shift 5",
			Tasks:       []Task{ImageToVideo, TextToVideo},
			Text:        tt,
			DiT:         ptr(dit.TinyWan(4, tt.Dim)),
			VAE:         vae.TinyWan(), Scheduler: UniPC, FirstFrameConditioning: true,
			Defaults: Params{Height: 32, Width: 32, Frames: 5, Steps: 4, GuidanceScale: 5, GuidanceScale2: 5, Shift: 5},
		},
		{
			Name:        "tiny-z-image",
			Description: "Z-Image's structure at toy size: single-stream DiT, batched CFG, flow-matching Euler with shift 3",
			Tasks:       []Task{TextToImage},
			Text:        tt,
			DiT:         ptr(dit.TinyZImage(4, tt.Dim)),
			VAE:         vae.TinyKL(), Scheduler: Euler,
			Defaults: Params{Height: 32, Width: 32, Frames: 1, Steps: 4, GuidanceScale: 4, Shift: 3, CFGTruncation: 1},
		},
		{
			Name:        "Wan2.2-T2V-A14B",
			Description: "Wan2.2-T2V-A14B: umt5-xxl, two 14B experts (dim 5120, 40 layers), Wan 2.1 VAE; needs a checkpoint",
			Tasks:       []Task{TextToVideo},
			Text:        textenc.UMT5XXL(),
			DiT:         ptr(dit.Wan22A14B()), DiT2: ptr(dit.Wan22A14B()), BoundaryRatio: 0.875,
			VAE: vae.Wan21(), Scheduler: UniPC,
			Defaults: Params{Height: 720, Width: 1280, Frames: 81, Steps: 40, GuidanceScale: 4, GuidanceScale2: 3, Shift: 12},
		},
		{
			Name:        "Wan2.2-TI2V-5B",
			Description: "Wan2.2-TI2V-5B: umt5-xxl, a 5B DiT (dim 3072, 30 layers), the 16× Wan 2.2 VAE; needs a checkpoint",
			Tasks:       []Task{ImageToVideo, TextToVideo},
			Text:        textenc.UMT5XXL(),
			DiT:         ptr(dit.Wan22TI2V5B()),
			VAE:         vae.Wan22(), Scheduler: UniPC, FirstFrameConditioning: true,
			Defaults: Params{Height: 704, Width: 1280, Frames: 121, Steps: 50, GuidanceScale: 5, GuidanceScale2: 5, Shift: 5},
		},
		{
			Name:        "Z-Image-Turbo",
			Description: "Z-Image-Turbo: a 6B single-stream DiT (dim 3840, 30 layers), a Qwen3-4B-sized text encoder, the Flux VAE; needs a checkpoint",
			Tasks:       []Task{TextToImage},
			// Z-Image encodes with Qwen3-4B (a decoder LLM); the T5-style
			// encoder here has its width, depth and vocabulary.
			Text: textenc.Config{Vocab: 151936, Dim: 2560, Layers: 36, Heads: 32, HeadDim: 128, FFN: 9728,
				PerLayerBias: true, TextLen: 512},
			DiT: ptr(dit.ZImageTurbo()),
			VAE: vae.FluxKL(), Scheduler: Euler,
			Defaults: Params{Height: 1024, Width: 1024, Frames: 1, Steps: 9, GuidanceScale: 0, Shift: 3, CFGTruncation: 1},
		},
	}
}

// PresetNames lists the presets' names.
func PresetNames() []string {
	var names []string
	for _, p := range Presets() {
		names = append(names, p.Name)
	}
	return names
}

// LookupPreset finds a preset by name (case-insensitive).
func LookupPreset(name string) (Preset, error) {
	for _, p := range Presets() {
		if strings.EqualFold(p.Name, name) {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("diffusion: unknown preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
}
