package diffusion

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/omniflow-go/omniflow/diffusion/dit"
	"github.com/omniflow-go/omniflow/diffusion/textenc"
	"github.com/omniflow-go/omniflow/diffusion/vae"
	"github.com/omniflow-go/omniflow/graph"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// ErrTooLarge is returned by New when a preset's synthetic weights would
// not fit the limit (see WithMaxSyntheticBytes).
var ErrTooLarge = errors.New("diffusion: synthetic weights too large")

// DefaultMaxSyntheticBytes bounds seeded synthetic weights (4 GiB).
const DefaultMaxSyntheticBytes int64 = 4 << 30

// Component names: the weight sources of a pipeline, and the files a
// checkpoint directory holds (<name>.safetensors).
const (
	ComponentText         = "text_encoder"
	ComponentTransformer  = "transformer"
	ComponentTransformer2 = "transformer_2"
	ComponentVAE          = "vae"
)

// Components lists the components a preset needs for a task.
func (p Preset) Components(t Task) []string {
	c := []string{ComponentText, ComponentTransformer}
	if p.DiT2 != nil {
		c = append(c, ComponentTransformer2)
	}
	return append(c, ComponentVAE)
}

type config struct {
	seed      uint64
	sources   map[string]nn.Source
	ckptDir   string
	prof      *profiler.Profiler
	progress  func(Progress)
	maxSynth  int64
	graphName string
}

// Option configures New.
type Option func(*config)

// WithWeightSeed seeds the synthetic weights (default 0). Each component
// draws from its own stream (names are prefixed with the component).
func WithWeightSeed(seed uint64) Option { return func(c *config) { c.seed = seed } }

// WithSource gives one component's weights (ComponentText, ...), for
// example nn.Checkpoint over an open safetensors file. Components without
// a source get seeded synthetic weights.
func WithSource(component string, src nn.Source) Option {
	return func(c *config) {
		if c.sources == nil {
			c.sources = map[string]nn.Source{}
		}
		c.sources[component] = src
	}
}

// WithCheckpoint loads every component from dir/<component>.safetensors
// (text_encoder, transformer, transformer_2 for two experts, vae), with the
// weight names the builders ask for (Hugging Face / Wan / diffusers names;
// see the packages textenc, dit and vae). A missing or mis-shaped weight is
// an error from New naming it.
func WithCheckpoint(dir string) Option { return func(c *config) { c.ckptDir = dir } }

// WithProfiler records the pipeline's spans with p (default
// profiler.Default()).
func WithProfiler(p *profiler.Profiler) Option { return func(c *config) { c.prof = p } }

// WithProgress calls f after every denoise step.
func WithProgress(f func(Progress)) Option { return func(c *config) { c.progress = f } }

// WithMaxSyntheticBytes sets the most bytes of synthetic (random) weights
// New will allocate before refusing with ErrTooLarge (default 4 GiB).
func WithMaxSyntheticBytes(n int64) Option { return func(c *config) { c.maxSynth = n } }

// Pipeline is a diffusion model as a graph on one stage, "diffusion":
//
//	prompt, negative_prompt ─▶ encode ─▶ denoise ─▶ decode ─▶ video / image
//	image (I2V) ─▶ encode_image ─┘
//
// Each node's activation is an operator span on the stage's track; the
// denoise loop's steps are iteration spans.
type Pipeline struct {
	Preset   Preset
	Task     Task
	Text     *textenc.Encoder
	High     dit.Model
	Low      dit.Model // nil with one transformer
	Decoder  *vae.Decoder
	Encoder  *vae.Encoder // image-to-video only
	Loop     *DenoiseLoop
	plan     *graph.Plan
	graph    *graph.Graph
	outName  string
	progress func(Progress)
}

// EstimateBytes returns the bytes of float32 weights a pipeline for the task
// holds.
func (p Preset) EstimateBytes(t Task) (int64, error) {
	n, err := p.NumParams(t)
	return 4 * n, err
}

// New builds the pipeline: its models (weights from the options, else
// seeded synthetic ones) and its graph. A preset whose synthetic weights
// would exceed the limit fails with ErrTooLarge before allocating.
func New(ctx context.Context, pr Preset, task Task, opts ...Option) (*Pipeline, error) {
	cfg := config{maxSynth: DefaultMaxSyntheticBytes}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if task == "" {
		task = pr.Tasks[0]
	}
	if !pr.Supports(task) {
		return nil, fmt.Errorf("%w: preset %s does not do %s (it does %v)", ErrParams, pr.Name, task, pr.Tasks)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	srcs, closers, err := cfg.componentSources(pr, task)
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	pl := &Pipeline{Preset: pr, Task: task, progress: cfg.progress}
	if pl.Text, err = textenc.New(srcs[ComponentText], pr.Text); err != nil {
		return nil, fmt.Errorf("%s: %w", ComponentText, err)
	}
	if pl.High, err = dit.New(srcs[ComponentTransformer], *pr.DiT); err != nil {
		return nil, fmt.Errorf("%s: %w", ComponentTransformer, err)
	}
	if pr.DiT2 != nil {
		if pl.Low, err = dit.New(srcs[ComponentTransformer2], *pr.DiT2); err != nil {
			return nil, fmt.Errorf("%s: %w", ComponentTransformer2, err)
		}
	}
	if pl.Decoder, err = vae.NewDecoder(srcs[ComponentVAE], pr.VAE); err != nil {
		return nil, fmt.Errorf("%s: %w", ComponentVAE, err)
	}
	if task == ImageToVideo {
		if pl.Encoder, err = vae.NewEncoder(srcs[ComponentVAE], pr.VAE); err != nil {
			return nil, fmt.Errorf("%s: %w", ComponentVAE, err)
		}
	}
	if err := pl.build(cfg.prof); err != nil {
		return nil, err
	}
	return pl, nil
}

type closer interface{ Close() error }

// componentSources opens the checkpoint files or makes the synthetic
// sources, refusing synthetic weights beyond the limit.
func (c config) componentSources(pr Preset, task Task) (map[string]nn.Source, []closer, error) {
	srcs := map[string]nn.Source{}
	var closers []closer
	var synth []string
	for _, comp := range pr.Components(task) {
		if s, ok := c.sources[comp]; ok {
			srcs[comp] = s
			continue
		}
		if c.ckptDir != "" {
			path := filepath.Join(c.ckptDir, comp+".safetensors")
			f, err := safetensors.Open(path)
			if err != nil {
				return nil, closers, fmt.Errorf("diffusion: checkpoint for %s: %w", comp, err)
			}
			closers = append(closers, f)
			srcs[comp] = nn.Checkpoint(f)
			continue
		}
		srcs[comp] = nn.Prefixed(nn.Random(c.seed), comp)
		synth = append(synth, comp)
	}
	if len(synth) == 0 {
		return srcs, closers, nil
	}
	var n int64
	for _, comp := range synth {
		switch comp {
		case ComponentText:
			n += pr.Text.NumParams()
		case ComponentTransformer:
			n += pr.DiT.NumParams()
		case ComponentTransformer2:
			n += pr.DiT2.NumParams()
		case ComponentVAE:
			v, err := pr.VAE.NumParams(task == ImageToVideo)
			if err != nil {
				return nil, closers, err
			}
			n += v
		}
	}
	if bytes := 4 * n; bytes > c.maxSynth {
		var files []string
		for _, comp := range pr.Components(task) {
			files = append(files, comp+".safetensors")
		}
		return nil, closers, fmt.Errorf("%w: preset %s would need about %s of float32 weights (%.3g parameters in %s) "+
			"but synthetic weights are limited to %s; load a checkpoint instead: a directory holding %s "+
			"(--checkpoint DIR, or diffusion.WithCheckpoint), or pick a tiny preset",
			ErrTooLarge, pr.Name, FormatBytes(bytes), float64(n), strings.Join(synth, ", "), FormatBytes(c.maxSynth), strings.Join(files, ", "))
	}
	return srcs, closers, nil
}

// FormatBytes writes n in binary units.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n), 0
	for f >= unit && u < 4 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, " KMGT"[u])
}

// build makes the graph: every node on stage 0, "diffusion".
func (pl *Pipeline) build(prof *profiler.Profiler) error {
	name := fmt.Sprintf("%s-%s", pl.Preset.Name, pl.Task)
	g := graph.New(name)
	stage := graph.Stage(0, "diffusion")
	prompt := g.Input("prompt", graph.Text())
	neg := g.Input("negative_prompt", graph.Text())
	params := g.Input("params", graph.Any())
	enc := g.Add("encode", &TextEncode{Preset: pl.Preset, Encoder: pl.Text}, stage)
	pl.Loop = &DenoiseLoop{Preset: pl.Preset, Task: pl.Task, High: pl.High, Low: pl.Low, Progress: pl.progress}
	loop := g.Add("denoise", pl.Loop, stage)
	dec := &Decode{Task: pl.Task, Decoder: pl.Decoder}
	decode := g.Add("decode", dec, stage)
	edges := [][2]graph.PortRef{
		{prompt, enc.In("prompt")}, {neg, enc.In("negative_prompt")}, {params, enc.In("params")},
		{enc.Out("cond"), loop.In("cond")}, {enc.Out("uncond"), loop.In("uncond")}, {params, loop.In("params")},
		{loop.Out("latents"), decode.In("latents")},
	}
	if pl.Task == ImageToVideo {
		img := g.Input("image", graph.Image("C", "H", "W"))
		ie := g.Add("encode_image", &ImageEncode{Preset: pl.Preset, Encoder: pl.Encoder}, stage)
		edges = append(edges, [2]graph.PortRef{img, ie.In("image")}, [2]graph.PortRef{params, ie.In("params")},
			[2]graph.PortRef{ie.Out("image_latent"), loop.In("image_latent")})
	}
	for _, e := range edges {
		if err := g.Connect(e[0], e[1]); err != nil {
			return err
		}
	}
	pl.outName = dec.output()
	if err := g.Output(pl.outName, decode.Out(pl.outName)); err != nil {
		return err
	}
	var bopts []graph.BuildOption
	if prof != nil {
		bopts = append(bopts, graph.WithProfiler(prof))
	}
	plan, err := g.Build(bopts...)
	if err != nil {
		return err
	}
	pl.graph, pl.plan = g, plan
	return nil
}

// Plan returns the compiled graph (for Serve, or to print it).
func (pl *Pipeline) Plan() *graph.Plan { return pl.plan }

// DefaultParams returns the preset's defaults.
func (pl *Pipeline) DefaultParams() Params { return pl.Preset.Defaults }

// Result is one generation's output, pixels in [−1, 1].
type Result struct {
	// Video [T, 3, H, W] for the video tasks, Image [3, H, W] for
	// text-to-image.
	Video, Image *tensor.Tensor
}

// Generate runs one request through the graph.
func (pl *Pipeline) Generate(ctx context.Context, p Params) (*Result, error) {
	if err := p.Validate(pl.Preset, pl.Task); err != nil {
		return nil, err
	}
	feeds := graph.Feeds{"prompt": p.Prompt, "negative_prompt": p.NegativePrompt, "params": p}
	if pl.Task == ImageToVideo {
		feeds["image"] = p.Image
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := pl.plan.Run(ctx, feeds)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// The engine may report a cancelled run as a closed session.
			return nil, fmt.Errorf("%w (%w)", cerr, err)
		}
		return nil, err
	}
	px, ok := res[pl.outName].(*tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("diffusion: output %q is %T", pl.outName, res[pl.outName])
	}
	if pl.Task.Video() {
		return &Result{Video: px}, nil
	}
	return &Result{Image: px}, nil
}

// CheckpointFiles lists the files WithCheckpoint(dir) reads.
func (p Preset) CheckpointFiles(dir string, t Task) []string {
	var out []string
	for _, c := range p.Components(t) {
		out = append(out, filepath.Join(dir, c+".safetensors"))
	}
	return out
}

// WriteCheckpoint writes the synthetic weights of a pipeline for the task
// (seeded like New's) to dir/<component>.safetensors, so a test or a demo
// can load them back with WithCheckpoint. It refuses presets beyond the
// synthetic limit, like New.
func WriteCheckpoint(ctx context.Context, dir string, pr Preset, task Task, seed uint64) error {
	cfg := config{seed: seed, maxSynth: DefaultMaxSyntheticBytes}
	if _, _, err := cfg.componentSources(pr, task); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, comp := range pr.Components(task) {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := &recorder{src: nn.Random(seed), prefix: comp, got: map[string]*tensor.Tensor{}}
		var err error
		switch comp {
		case ComponentText:
			_, err = textenc.New(rec, pr.Text)
		case ComponentTransformer:
			_, err = dit.New(rec, *pr.DiT)
		case ComponentTransformer2:
			_, err = dit.New(rec, *pr.DiT2)
		case ComponentVAE:
			if _, err = vae.NewDecoder(rec, pr.VAE); err == nil && task == ImageToVideo {
				_, err = vae.NewEncoder(rec, pr.VAE)
			}
		}
		if err != nil {
			return err
		}
		if err := safetensors.WriteFile(filepath.Join(dir, comp+".safetensors"), rec.got, map[string]string{"preset": pr.Name}); err != nil {
			return err
		}
	}
	return nil
}

// recorder draws prefixed synthetic weights and keeps them under their
// unprefixed names (the names a checkpoint file holds).
type recorder struct {
	src    nn.Source
	prefix string
	got    map[string]*tensor.Tensor
}

func (r *recorder) Tensor(name string, shape []int, init nn.Init) (*tensor.Tensor, error) {
	if t, ok := r.got[name]; ok { // the VAE's decoder and encoder share no names; be safe anyway
		return t, nil
	}
	t, err := r.src.Tensor(r.prefix+"."+name, shape, init)
	if err != nil {
		return nil, err
	}
	r.got[name] = t
	return t, nil
}
