package diffusion

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

func newPipeline(t testing.TB, name string, task Task, opts ...Option) *Pipeline {
	t.Helper()
	pr, err := LookupPreset(name)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := New(context.Background(), pr, task, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func testImage(h, w int) *tensor.Tensor {
	img := tensor.Zeros(tensor.Float32, 3, h, w)
	for i := range img.Float32s() {
		img.Float32s()[i] = float32(i%23) / 22
	}
	return img
}

// TestTraceOfTwoStepRun is the proof: a profiled 2-step run's
// Chrome trace holds, in time order on the diffusion stage's process, the
// encode operator, exactly two denoise steps, and the decode operator.
// Wan's steps have two CFG passes each; Z-Image's first step has its one
// batched pass, and its second (t = 0, zero-length with σ_min = 0) is a
// step span marked skipped, with no pass.
func TestTraceOfTwoStepRun(t *testing.T) {
	type stepWant struct {
		expert, guidance, update string
		passes                   []string
	}
	for _, c := range []struct {
		preset, model string
		task          Task
		steps         []stepWant
		modelCalls    int
	}{
		{"tiny-wan2.2-t2v", "WanDiT", TextToVideo, []stepWant{
			{ExpertHigh, GuidanceCFG, "", []string{SpanCond, SpanUncond}},
			{ExpertHigh, GuidanceCFG, "", []string{SpanCond, SpanUncond}},
		}, 4},
		{"tiny-z-image", "ZImageDiT", TextToImage, []stepWant{
			{ExpertSingle, GuidanceCFG, "", []string{SpanBatched}},
			{ExpertSingle, GuidanceNone, StepSkipped, nil},
		}, 1},
	} {
		t.Run(string(c.task), func(t *testing.T) {
			dir := t.TempDir()
			prof, err := profiler.New(profiler.WithDir(dir), profiler.WithSink(chrome.New()), profiler.WithName(string(c.task)))
			if err != nil {
				t.Fatal(err)
			}
			pl := newPipeline(t, c.preset, c.task, WithProfiler(prof))
			p := pl.DefaultParams()
			p.Prompt, p.Steps = "a lighthouse at dusk", 2
			sched, err := NewScheduler(pl.Preset, p)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := prof.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := pl.Generate(ctx, p); err != nil {
				t.Fatal(err)
			}
			res, err := prof.Stop(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tr := chrometest.Validate(t, filepath.Join(res.Dir, "trace.json.gz"))
			if n := len(tr.Named(c.model)); n != c.modelCalls {
				t.Errorf("%d %s spans, want %d model calls", n, c.model, c.modelCalls)
			}
			checkTwoStepTrace(t, tr, sched.Timesteps(),
				func(i int, s *chrometest.Event, passes []string) {
					w := c.steps[i]
					update, _ := s.Args["update"].(string)
					if s.Args["expert"] != w.expert || s.Args["guidance"] != w.guidance || update != w.update {
						t.Errorf("step %d args %v, want expert %s, guidance %s, update %q", i, s.Args, w.expert, w.guidance, w.update)
					}
					if !slices.Equal(passes, w.passes) {
						t.Errorf("step %d has passes %v, want %v", i, passes, w.passes)
					}
				})
		})
	}
}

// checkTwoStepTrace checks the layout every 2-step trace shares and calls
// step for each step slice with the CFG passes inside it.
func checkTwoStepTrace(t *testing.T, tr *chrometest.Trace, timesteps []float64, step func(i int, s *chrometest.Event, passes []string)) {
	t.Helper()
	var pid int64 = -1
	for id, name := range tr.ProcessNames {
		if strings.Contains(name, "diffusion") {
			pid = id
		}
	}
	if pid < 0 {
		t.Fatalf("no process for the diffusion stage in %v", tr.ProcessNames)
	}
	// An operator's activation is split into slices where it waits for an
	// input (a stage records only while it executes): merge them.
	op := func(name string) *chrometest.Event {
		var m *chrometest.Event
		for _, e := range tr.Named(name) {
			if e.Ph != "X" || e.Cat != "operator" {
				continue
			}
			if m == nil {
				c := *e
				m = &c
				continue
			}
			if e.Pid != m.Pid || e.Tid != m.Tid {
				t.Errorf("%s slices on two lanes", name)
			}
			end := max(m.End(), e.End())
			m.TS = min(m.TS, e.TS)
			m.Dur = end - m.TS
		}
		if m == nil {
			t.Fatalf("no operator slice named %q", name)
		}
		return m
	}
	enc, loop, dec := op("encode"), op("denoise"), op("decode")
	var stepsEv []*chrometest.Event
	for _, e := range tr.Slices() {
		if e.Cat == "iteration" {
			stepsEv = append(stepsEv, e)
		}
	}
	if len(stepsEv) != 2 {
		t.Fatalf("%d iteration slices, want 2", len(stepsEv))
	}
	byTS := func(a, b *chrometest.Event) int { return cmp.Compare(a.TS, b.TS) }
	slices.SortFunc(stepsEv, byTS)
	within := func(in, out *chrometest.Event) bool {
		return in.Pid == out.Pid && in.Tid == out.Tid && in.TS >= out.TS && in.End() <= out.End()
	}
	all := tr.Slices()
	slices.SortFunc(all, byTS)
	for i, s := range stepsEv {
		if s.Name != SpanStep || s.Pid != pid || !within(s, loop) {
			t.Errorf("step %d: %s on pid %d, inside the denoise slice: %v", i, s.Name, s.Pid, within(s, loop))
		}
		if fmt.Sprint(s.Args["step"]) != fmt.Sprint(i) || fmt.Sprint(s.Args["timestep"]) != fmt.Sprint(attrTimestep(timesteps[i])) {
			t.Errorf("step %d args %v, want step %d at timestep %v", i, s.Args, i, attrTimestep(timesteps[i]))
		}
		var passes []string
		for _, e := range all {
			if e.Cat == "module" && strings.HasPrefix(e.Name, "cfg.") && within(e, s) {
				passes = append(passes, e.Name)
			}
		}
		step(i, s, passes)
	}
	for _, e := range []*chrometest.Event{enc, loop, dec} {
		if e.Pid != pid {
			t.Errorf("%s on pid %d, want the diffusion stage's %d", e.Name, e.Pid, pid)
		}
	}
	// In order: the encoder's work, step 0, step 1, decode. (The encode
	// operator's slice itself may end a little after step 0 starts: the
	// engine closes it once Run has returned, after the outputs were
	// handed on, and under load that can come late.)
	encWork := enc.TS
	for _, e := range tr.Named("T5Block") {
		encWork = max(encWork, e.End())
	}
	if !(enc.TS <= stepsEv[0].TS && encWork <= stepsEv[0].TS && stepsEv[0].End() <= stepsEv[1].TS && stepsEv[1].End() <= dec.TS) {
		t.Errorf("not in order: encode from %d, its blocks done at %d, steps [%d, %d] [%d, %d], decode at %d",
			enc.TS, encWork, stepsEv[0].TS, stepsEv[0].End(), stepsEv[1].TS, stepsEv[1].End(), dec.TS)
	}
	// The models' layers and kernels are in the trace too, below the passes.
	if len(tr.Named("VAEDecoder")) != 1 || len(tr.Named("T5Block")) == 0 {
		t.Errorf("module spans: %d VAEDecoder, %d T5Block", len(tr.Named("VAEDecoder")), len(tr.Named("T5Block")))
	}
}

// TestMaxIters: with a window of N iterations the session keeps the encode
// before them and N steps, and stops by itself.
func TestMaxIters(t *testing.T) {
	dir := t.TempDir()
	prof, err := profiler.New(profiler.WithDir(dir), profiler.WithSink(chrome.New()), profiler.WithMaxIters(2))
	if err != nil {
		t.Fatal(err)
	}
	pl := newPipeline(t, "tiny-wan2.2-t2v", TextToVideo, WithProfiler(prof))
	p := pl.DefaultParams()
	p.Steps = 5
	ctx := context.Background()
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
	if res.Reason != profiler.StopMaxIters {
		t.Errorf("stopped because %q, want %q", res.Reason, profiler.StopMaxIters)
	}
	tr := chrometest.Validate(t, filepath.Join(res.Dir, "trace.json.gz"))
	n := 0
	for _, e := range tr.Slices() {
		if e.Cat == "iteration" {
			n++
		}
	}
	if n != 2 || len(tr.Named("encode")) == 0 || len(tr.Named("T5Block")) == 0 {
		t.Errorf("%d iterations (want 2), %d encode slices (want some), %d T5Block", n, len(tr.Named("encode")), len(tr.Named("T5Block")))
	}
	if _, err := prof.Stop(ctx); !errors.Is(err, profiler.ErrNotStarted) {
		t.Errorf("Stop after the automatic stop: %v, want ErrNotStarted", err)
	}
}

func TestOutputsDecode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Run("image", func(t *testing.T) {
		pl := newPipeline(t, "tiny-z-image", TextToImage)
		p := pl.DefaultParams()
		p.Height, p.Width, p.Prompt = 32, 48, "a red square"
		res, err := pl.Generate(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "img.png")
		if err := WriteImage(path, res.Image); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if img.Bounds().Dx() != 48 || img.Bounds().Dy() != 32 {
			t.Errorf("image is %v, want 48x32", img.Bounds())
		}
	})
	for _, c := range []struct {
		preset string
		task   Task
	}{{"tiny-wan2.2-t2v", TextToVideo}, {"tiny-wan2.2-ti2v", ImageToVideo}} {
		t.Run(string(c.task), func(t *testing.T) {
			pl := newPipeline(t, c.preset, c.task)
			p := pl.DefaultParams()
			p.Height, p.Width, p.Frames, p.Steps = 16, 32, 9, 2
			p.Image = testImage(20, 30)
			res, err := pl.Generate(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			gifPath := filepath.Join(dir, string(c.task), "clip.gif")
			paths, err := WriteVideo(gifPath, filepath.Join(dir, string(c.task), "frames"), res.Video, 16)
			if err != nil {
				t.Fatal(err)
			}
			if len(paths) != 1+9 {
				t.Errorf("wrote %v", paths)
			}
			f, err := os.Open(gifPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			g, err := gif.DecodeAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Image) != 9 || g.Config.Width != 32 || g.Config.Height != 16 {
				t.Errorf("GIF of %d frames %dx%d, want 9 of 32x16", len(g.Image), g.Config.Width, g.Config.Height)
			}
			b, _ := os.ReadFile(paths[len(paths)-1])
			if img, err := png.Decode(bytes.NewReader(b)); err != nil || img.Bounds().Dx() != 32 || img.Bounds().Dy() != 16 {
				t.Errorf("last frame PNG: %v %v", err, img)
			}
		})
	}
}

func TestDeterministicSeed(t *testing.T) {
	ctx := context.Background()
	pl := newPipeline(t, "tiny-z-image", TextToImage)
	p := pl.DefaultParams()
	p.Prompt = "a boat"
	run := func(seed uint64) []float32 {
		q := p
		q.Seed = seed
		res, err := pl.Generate(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return res.Image.Float32s()
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different images")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same image")
	}
}

func TestParamsValidate(t *testing.T) {
	wan, _ := LookupPreset("tiny-wan2.2-t2v")
	ti2v, _ := LookupPreset("tiny-wan2.2-ti2v")
	zi, _ := LookupPreset("tiny-z-image")
	for _, c := range []struct {
		name string
		pr   Preset
		task Task
		edit func(*Params)
		want string // in the error
	}{
		{"zero steps", wan, TextToVideo, func(p *Params) { p.Steps = 0 }, "inference steps"},
		{"negative height", wan, TextToVideo, func(p *Params) { p.Height = -32 }, "positive"},
		{"width not a multiple", wan, TextToVideo, func(p *Params) { p.Width = 40 }, "multiples of 16"},
		{"frames not 1+4k", wan, TextToVideo, func(p *Params) { p.Frames = 4 }, "1 + 4·k"},
		{"negative guidance", wan, TextToVideo, func(p *Params) { p.GuidanceScale = -1 }, "guidance"},
		{"zero shift", wan, TextToVideo, func(p *Params) { p.Shift = 0 }, "shift"},
		{"truncation above 1", zi, TextToImage, func(p *Params) { p.CFGTruncation = 1.5 }, "truncation"},
		{"no image", ti2v, ImageToVideo, func(p *Params) {}, "needs an image"},
		{"wrong task", zi, TextToVideo, func(p *Params) {}, "does not do"},
	} {
		p := c.pr.Defaults
		c.edit(&p)
		err := p.Validate(c.pr, c.task)
		if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrParams mentioning %q", c.name, err, c.want)
		}
	}
	for _, pr := range Presets() {
		p := pr.Defaults
		p.Image = testImage(8, 8)
		for _, task := range pr.Tasks {
			if err := p.Validate(pr, task); err != nil {
				t.Errorf("%s defaults for %s: %v", pr.Name, task, err)
			}
		}
	}
}

func TestRealPresetsRefuseSyntheticWeights(t *testing.T) {
	for _, c := range []struct {
		name     string
		min, max float64 // parameters
	}{
		{"Wan2.2-T2V-A14B", 32e9, 36e9}, // two 14.3B experts, 5.7B encoder
		{"Wan2.2-TI2V-5B", 10e9, 12e9},
		{"Z-Image-Turbo", 9.5e9, 11e9},
	} {
		pr, err := LookupPreset(c.name)
		if err != nil {
			t.Fatal(err)
		}
		n, err := pr.NumParams(pr.Tasks[0])
		if err != nil || float64(n) < c.min || float64(n) > c.max {
			t.Errorf("%s: %.3g parameters (%v), want [%.3g, %.3g]", c.name, float64(n), err, c.min, c.max)
		}
		_, err = New(context.Background(), pr, "")
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: %v, want ErrTooLarge", c.name, err)
		}
		for _, want := range []string{c.name, FormatBytes(4 * n), "checkpoint", "transformer.safetensors"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, want)
			}
		}
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	ctx := context.Background()
	pr, _ := LookupPreset("tiny-wan2.2-ti2v")
	dir := t.TempDir()
	if err := WriteCheckpoint(ctx, dir, pr, ImageToVideo, 7); err != nil {
		t.Fatal(err)
	}
	synth := newPipeline(t, pr.Name, ImageToVideo, WithWeightSeed(7))
	loaded := newPipeline(t, pr.Name, ImageToVideo, WithCheckpoint(dir))
	p := synth.DefaultParams()
	p.Steps, p.Image = 2, testImage(32, 32)
	a, err := synth.Generate(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loaded.Generate(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Video.Float32s(), b.Video.Float32s()) {
		t.Error("the checkpoint's weights give another video than the synthetic ones they were written from")
	}
	// A missing weight is an error at load time, naming the weight.
	f, err := safetensors.Open(filepath.Join(dir, "transformer.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]*tensor.Tensor{}
	for _, name := range f.Names() {
		if name != "blocks.0.cross_attn.k.weight" {
			w[name], _ = f.TensorCopy(name)
		}
	}
	f.Close()
	if err := safetensors.WriteFile(filepath.Join(dir, "transformer.safetensors"), w, nil); err != nil {
		t.Fatal(err)
	}
	_, err = New(ctx, pr, ImageToVideo, WithCheckpoint(dir))
	if err == nil || !strings.Contains(err.Error(), "blocks.0.cross_attn.k.weight") || !strings.Contains(err.Error(), "transformer") {
		t.Errorf("loading without blocks.0.cross_attn.k.weight: %v", err)
	}
	if _, err := New(ctx, pr, ImageToVideo, WithCheckpoint(t.TempDir())); err == nil || !strings.Contains(err.Error(), "text_encoder") {
		t.Errorf("empty checkpoint directory: %v", err)
	}
}

func TestProgressAndCancel(t *testing.T) {
	var got []Progress
	pl := newPipeline(t, "tiny-wan2.2-t2v", TextToVideo, WithProgress(func(p Progress) { got = append(got, p) }))
	p := pl.DefaultParams()
	if _, err := pl.Generate(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if len(got) != p.Steps || got[len(got)-1].Step != p.Steps || got[0].Steps != p.Steps {
		t.Errorf("progress %+v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pl.Generate(ctx, p); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
	// Cancelled during the loop: it stops at the next step.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	steps := 0
	mid := newPipeline(t, "tiny-wan2.2-t2v", TextToVideo, WithProgress(func(Progress) { steps++; cancel() }))
	if _, err := mid.Generate(ctx, p); !errors.Is(err, context.Canceled) || steps != 1 {
		t.Errorf("run cancelled after step 1: %v after %d steps", err, steps)
	}
}

// TestNoTensorLeaks: a generation frees every tensor the kernels
// allocated, except the result it returns (the CPU device counts them).
func TestNoTensorLeaks(t *testing.T) {
	for _, name := range []string{"tiny-wan2.2-t2v", "tiny-wan2.2-ti2v", "tiny-z-image"} {
		pl := newPipeline(t, name, "")
		p := pl.DefaultParams()
		p.Steps, p.Image = 2, testImage(32, 32)
		before := device.DefaultCPU().InUse()
		res, err := pl.Generate(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if res.Video != nil {
			res.Video.Release()
		} else {
			res.Image.Release()
		}
		if after := device.DefaultCPU().InUse(); after != before {
			t.Errorf("%s: %d bytes of kernel outputs still held after the run", name, after-before)
		}
	}
}

// TestWanPresetsNormalizeLatents: the real Wan presets' VAEs carry one
// published mean and std per latent channel (see vae.Wan21, vae.Wan22), so
// decode and the image-to-video encode apply diffusers' normalization.
func TestWanPresetsNormalizeLatents(t *testing.T) {
	for _, name := range []string{"Wan2.2-T2V-A14B", "Wan2.2-TI2V-5B"} {
		pr, err := LookupPreset(name)
		if err != nil {
			t.Fatal(err)
		}
		c := pr.DiT.InChannels
		if len(pr.VAE.LatentsMean) != c || len(pr.VAE.LatentsStd) != c || pr.VAE.ZDim != c {
			t.Errorf("%s: %d latent channels, VAE statistics for %d/%d", name, c, len(pr.VAE.LatentsMean), len(pr.VAE.LatentsStd))
		}
	}
}
