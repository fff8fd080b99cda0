package offline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/omniflow-go/omniflow/diffusion"
	"github.com/omniflow-go/omniflow/operators/vision"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/tensor"
)

// Example describes one example program.
type Example struct {
	Name    string // the program's name: text_to_video, ...
	Task    diffusion.Task
	Preset  string // the default --model
	Output  string // the default --output
	Summary string // one line for --help
}

// Examples are the three programs under examples/offline_inference.
var (
	TextToVideo = Example{Name: "text_to_video", Task: diffusion.TextToVideo, Preset: "tiny-wan2.2-t2v",
		Output: "outputs/text_to_video.gif", Summary: "generate a video from a prompt (Wan 2.2 T2V-style)"}
	ImageToVideo = Example{Name: "image_to_video", Task: diffusion.ImageToVideo, Preset: "tiny-wan2.2-ti2v",
		Output: "outputs/image_to_video.gif", Summary: "animate an image, guided by a prompt (Wan 2.2 TI2V-style)"}
	TextToImage = Example{Name: "text_to_image", Task: diffusion.TextToImage, Preset: "tiny-z-image",
		Output: "outputs/text_to_image.png", Summary: "generate an image from a prompt (Z-Image-style)"}
)

// Options change how Main reports and where it writes; the zero value is
// what the examples use.
type Options struct {
	// Progress forces the progress bar on (true) or off (false) instead of
	// drawing it only when stderr is a terminal.
	Progress *bool
	// Command is the usage line's command (default
	// "go run ./examples/offline_inference/<name>").
	Command string
	// OutputDir, when set, is where the default --output goes.
	OutputDir string
	// ProfileDir is the default --profile_dir when the environment names
	// none ("" profiles only when it does).
	ProfileDir string
}

// profileDir is the default of --profile_dir: the environment's folder,
// else def.
func profileDir(ec profiler.EnvConfig, def string) string {
	if ec.Dir != "" {
		return ec.Dir
	}
	return def
}

type flags struct {
	model, prompt, negative, output, image, checkpoint string
	profileDir                                         string
	steps, frames, height, width, fps                  int
	guidance, guidance2, shift, truncation, norm       float64
	seed, weightSeed                                   uint64
}

// Main runs ex with the command-line args: it parses and checks the flags,
// builds the pipeline (profiled when OMNIFLOW_PROFILER_DIR or
// VLLM_TORCH_PROFILER_DIR is set), generates, writes the outputs, and
// prints what it wrote and where the profile went. --help returns
// flag.ErrHelp after printing the usage.
func Main(ctx context.Context, ex Example, args []string, stdout, stderr io.Writer, opts ...Options) error {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	def, err := diffusion.LookupPreset(ex.Preset)
	if err != nil {
		return err
	}
	d := def.Defaults
	ec, envErr := profiler.ReadEnv(nil) // reported after --help
	output := ex.Output
	if o.OutputDir != "" {
		output = filepath.Join(o.OutputDir, filepath.Base(ex.Output))
	}
	var f flags
	fs := flag.NewFlagSet(ex.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.model, "model", ex.Preset, "model preset (see the list below)")
	fs.StringVar(&f.prompt, "prompt", "a red fox running through fresh snow at dawn", "text prompt")
	fs.StringVar(&f.negative, "negative_prompt", "", "negative prompt (used when guidance is on)")
	fs.IntVar(&f.steps, "num_inference_steps", d.Steps, "denoising steps")
	mult := fmt.Sprintf("a multiple of the VAE×patch factor (%d for %s)", def.VAE.SpatialFactor()*def.DiT.Patch[1], def.Name)
	fs.IntVar(&f.height, "height", d.Height, "height in pixels, "+mult)
	fs.IntVar(&f.width, "width", d.Width, "width in pixels, "+mult)
	gs := "classifier-free guidance scale"
	if ex.Task.Video() {
		gs += " (Wan 2.2 A14B: of the high-noise expert)"
	}
	fs.Float64Var(&f.guidance, "guidance_scale", d.GuidanceScale, gs)
	fs.Float64Var(&f.shift, "flow_shift", d.Shift, "the sampler's flow shift")
	fs.Uint64Var(&f.seed, "seed", 42, "noise seed")
	fs.StringVar(&f.output, "output", output, "output file ("+filepath.Ext(ex.Output)+")")
	fs.StringVar(&f.profileDir, "profile_dir", profileDir(ec, o.ProfileDir), "profile into a session folder here (default: $VLLM_TORCH_PROFILER_DIR or $OMNIFLOW_PROFILER_DIR; empty: no profile)")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "directory of <component>.safetensors weights (default: seeded synthetic weights)")
	fs.Uint64Var(&f.weightSeed, "weight_seed", 0, "seed of the synthetic weights")
	if ex.Task.Video() {
		fs.IntVar(&f.frames, "num_frames", d.Frames, "frames, 1 + 4k for Wan's VAE")
		fs.Float64Var(&f.guidance2, "guidance_scale_2", d.GuidanceScale2, "guidance scale of Wan 2.2's low-noise expert; a step guides when its expert's scale is > 1\n(diffusers decides from --guidance_scale alone: 1 with 3 guides no step there, the low-noise ones here)")
		fs.IntVar(&f.fps, "fps", 16, "frames per second of the GIF")
	} else {
		fs.Float64Var(&f.truncation, "cfg_truncation", d.CFGTruncation, "Z-Image: stop guidance once (1000-t)/1000 exceeds this (1 = never)")
		fs.Float64Var(&f.norm, "cfg_normalization", d.CFGNormalization, "Z-Image: cap the guided prediction's norm at this times the conditional one's (0 = off)")
	}
	if ex.Task == diffusion.ImageToVideo {
		fs.StringVar(&f.image, "image", "", "conditioning image (PNG or JPEG; default: a built-in test pattern)")
	}
	fs.Usage = func() { usage(fs, ex, o.Command) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{err}
	}
	if fs.NArg() > 0 {
		return &UsageError{fmt.Errorf("unexpected arguments %q (flags start with --)", fs.Args())}
	}
	if envErr != nil {
		return envErr
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })

	pr, err := diffusion.LookupPreset(f.model)
	if err != nil {
		return err
	}
	if !pr.Supports(ex.Task) {
		return fmt.Errorf("--model %s does not do %s; presets that do: %s", pr.Name, ex.Task, strings.Join(presetsFor(ex.Task), ", "))
	}
	p := pr.Defaults
	p.Prompt, p.NegativePrompt, p.Seed = f.prompt, f.negative, f.seed
	for name, apply := range map[string]func(){
		"num_inference_steps": func() { p.Steps = f.steps },
		"height":              func() { p.Height = f.height },
		"width":               func() { p.Width = f.width },
		"guidance_scale":      func() { p.GuidanceScale = f.guidance },
		"guidance_scale_2":    func() { p.GuidanceScale2 = f.guidance2 },
		"flow_shift":          func() { p.Shift = f.shift },
		"num_frames":          func() { p.Frames = f.frames },
		"cfg_truncation":      func() { p.CFGTruncation = f.truncation },
		"cfg_normalization":   func() { p.CFGNormalization = f.norm },
	} {
		if set[name] {
			apply()
		}
	}
	if ex.Task.Video() && f.fps < 1 {
		return fmt.Errorf("--fps %d: need at least 1", f.fps)
	}
	if want := filepath.Ext(ex.Output); !strings.EqualFold(filepath.Ext(f.output), want) {
		return fmt.Errorf("--output %q: want a %s file", f.output, want)
	}
	if ex.Task == diffusion.ImageToVideo {
		if p.Image, err = loadImage(f.image, p.Height, p.Width); err != nil {
			return err
		}
	}
	if err := p.Validate(pr, ex.Task); err != nil {
		return fmt.Errorf("%w (flags: --num_inference_steps, --height, --width, --num_frames, --guidance_scale, ...)", err)
	}

	prof, err := profiler.New(append(ec.Options(), profiler.WithDir(f.profileDir),
		profiler.WithSink(chrome.New()), profiler.WithName(ex.Name))...)
	if err != nil {
		return err
	}
	popts := []diffusion.Option{diffusion.WithProfiler(prof), diffusion.WithWeightSeed(f.weightSeed)}
	if f.checkpoint != "" {
		popts = append(popts, diffusion.WithCheckpoint(f.checkpoint))
	}
	draw := IsTerminal(stderr)
	if o.Progress != nil {
		draw = *o.Progress
	}
	if draw {
		bar := &ProgressBar{W: stderr}
		popts = append(popts, diffusion.WithProgress(bar.Update))
	}
	pl, err := diffusion.New(ctx, pr, ex.Task, popts...)
	if err != nil {
		return err
	}
	if prof.Enabled() {
		if err := prof.Start(ctx, profiler.Meta("model", pr.Name), profiler.Meta("task", string(ex.Task)),
			profiler.Meta("prompt", p.Prompt), profiler.Meta("steps", fmt.Sprint(p.Steps))); err != nil {
			return err
		}
	}
	res, genErr := pl.Generate(ctx, p)
	var errs []error
	if genErr != nil {
		errs = append(errs, genErr)
	} else if err := writeOutputs(stdout, ex, f, res); err != nil {
		errs = append(errs, err)
	}
	if prof.Enabled() {
		// With VLLM_PROFILER_MAX_ITERS the session may have stopped by
		// itself; Stop then hands over its result once.
		r, err := prof.Stop(ctx)
		switch {
		case errors.Is(err, profiler.ErrNotStarted):
		case err != nil:
			errs = append(errs, fmt.Errorf("profile: %w", err))
		default:
			fmt.Fprintf(stdout, "profile: %s (%d events, %d dropped, stopped by %s)\n", r.Dir, r.Events, r.Dropped, r.Reason)
		}
	}
	return errors.Join(errs...)
}

func writeOutputs(stdout io.Writer, ex Example, f flags, res *diffusion.Result) error {
	if !ex.Task.Video() {
		if err := diffusion.WriteImage(f.output, res.Image); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (%dx%d)\n", f.output, res.Image.Dim(2), res.Image.Dim(1))
		return nil
	}
	framesDir := strings.TrimSuffix(f.output, filepath.Ext(f.output)) + "_frames"
	paths, err := diffusion.WriteVideo(f.output, framesDir, res.Video, f.fps)
	if err != nil {
		return err
	}
	v := res.Video
	fmt.Fprintf(stdout, "wrote %s (%d frames, %dx%d, %d fps) and %d PNG frames in %s\n",
		f.output, v.Dim(0), v.Dim(3), v.Dim(2), f.fps, len(paths)-1, framesDir)
	return nil
}

// loadImage reads the conditioning image, or draws a test pattern.
func loadImage(path string, h, w int) (*tensor.Tensor, error) {
	if path == "" {
		if h <= 0 || w <= 0 {
			return nil, fmt.Errorf("--height %d, --width %d: must be positive", h, w)
		}
		img := tensor.Zeros(tensor.Float32, 3, h, w)
		d := img.Float32s()
		for y := range h {
			for x := range w {
				d[y*w+x] = float32(x) / float32(max(w-1, 1))
				d[h*w+y*w+x] = float32(y) / float32(max(h-1, 1))
				d[2*h*w+y*w+x] = float32((x/4+y/4)%2) * 0.8
			}
		}
		return img, nil
	}
	img, err := vision.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--image: %w", err)
	}
	return vision.ToTensor(img)
}

func presetsFor(t diffusion.Task) []string {
	var out []string
	for _, p := range diffusion.Presets() {
		if p.Supports(t) {
			out = append(out, p.Name)
		}
	}
	return out
}

func usage(fs *flag.FlagSet, ex Example, command string) {
	w := fs.Output()
	if command == "" {
		command = "go run ./examples/offline_inference/" + ex.Name
	}
	fmt.Fprintf(w, "%s: %s.\n\nUsage: %s [flags]\n\nFlags:\n", ex.Name, ex.Summary, command)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nUnset size, step, frame, guidance and shift flags take the --model preset's values;\nthe defaults shown are %s's.\n", ex.Preset)
	fmt.Fprintf(w, "\nPresets for %s (--model):\n", ex.Task)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, p := range diffusion.Presets() {
		if !p.Supports(ex.Task) {
			continue
		}
		n, _ := p.EstimateBytes(ex.Task)
		fmt.Fprintf(tw, "  %s\t%s weights\t%s\n", p.Name, diffusion.FormatBytes(n), p.Description)
	}
	tw.Flush()
	fmt.Fprintf(w, `
The tiny presets run with seeded synthetic weights; the others have the real
architectures' shapes and need --checkpoint DIR with <component>.safetensors.

Profiling: set VLLM_TORCH_PROFILER_DIR (or OMNIFLOW_PROFILER_DIR, or
--profile_dir) to a folder and the run writes a session there
(trace.json.gz for Perfetto, manifest.json, summary.txt) and prints its
path. VLLM_PROFILER_MAX_ITERS=N records the text encoder and N denoise
steps, then stops by itself.
`)
}

// UsageError is a command line Main could not parse; the caller may exit
// with status 2 for it.
type UsageError struct{ Err error }

// ExitCode is the exit status for Main's error, the convention of the
// examples and of omniflow run: 0 for none or after --help, 2 for a
// command line that does not parse (UsageError), 1 for anything else.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }
