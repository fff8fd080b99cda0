package diffusion

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/omniflow-go/omniflow/diffusion/dit"
	"github.com/omniflow-go/omniflow/diffusion/scheduler"
	"github.com/omniflow-go/omniflow/diffusion/textenc"
	"github.com/omniflow-go/omniflow/graph"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// Expert names in step spans and Progress.
const (
	ExpertHigh   = "high_noise" // Wan 2.2's high-noise expert
	ExpertLow    = "low_noise"  // Wan 2.2's low-noise expert
	ExpertSingle = "single"     // a model with one transformer
)

// Span names the denoise loop records.
const (
	SpanStep      = "denoise.step" // iteration: one denoise step
	SpanCond      = "cfg.cond"     // module: the conditional pass
	SpanUncond    = "cfg.uncond"   // module: the unconditional pass (Wan)
	SpanBatched   = "cfg.batched"  // module: cond and uncond as one batch (Z-Image)
	SpanSchedStep = "scheduler.step"
	GuidanceCFG   = "cfg"
	GuidanceNone  = "none"
	// StepSkipped is the "update" attribute of a zero-length step's span
	// (σ = σ_next): no model call, the latents unchanged.
	StepSkipped    = "skipped_zero_length"
	numTrainSteps  = 1000
	zImageTimeUnit = 1000.0
)

// Progress reports one finished denoise step.
type Progress struct {
	Step, Steps int // Step counts from 1
	Timestep    float64
	Expert      string
	Guided      bool
	// Skipped: the step was zero-length (σ = σ_next, Z-Image's last):
	// no model call, the latents unchanged.
	Skipped bool
	Elapsed time.Duration // since the loop started
}

// DenoiseLoop is the graph operator that runs the whole denoise loop of one
// request: seeded noise, then per scheduler timestep an iteration span
// (profiler.Step "denoise.step" with step, timestep, expert and guidance
// attributes) holding the model passes (each its own "cfg.*" span) and the
// scheduler update. The models themselves only record module spans.
type DenoiseLoop struct {
	Preset Preset
	Task   Task
	// High is the only model, or the high-noise expert; Low the low-noise
	// expert (nil for one model).
	High, Low dit.Model
	// Progress, if set, is called after every step from the loop's
	// goroutine.
	Progress func(Progress)
}

var (
	hiddenType = graph.Hidden(tensor.Float32, "B", "L", "D")
	latentType = graph.Tensor(tensor.Float32)
)

// Contract: cond, uncond (text states; uncond may be nil without
// guidance), params, and for image-to-video image_latent, to latents.
func (l *DenoiseLoop) Contract() graph.Contract {
	ins := []graph.Port{graph.In("cond", hiddenType), graph.In("uncond", hiddenType), graph.In("params", graph.Any())}
	if l.Task == ImageToVideo {
		ins = append(ins, graph.In("image_latent", latentType))
	}
	return graph.Contract{Name: "denoise_loop", Loop: true, Inputs: ins, Outputs: []graph.Port{graph.Out("latents", latentType)}}
}

// Run serves one request.
func (l *DenoiseLoop) Run(ctx context.Context, io *graph.IO) error {
	p, err := graph.Get[Params](io, "params")
	if err != nil {
		return err
	}
	cond, err := graph.Get[*textenc.Output](io, "cond")
	if err != nil {
		return err
	}
	uncond, err := graph.Get[*textenc.Output](io, "uncond")
	if err != nil {
		return err
	}
	var img *tensor.Tensor
	if l.Task == ImageToVideo {
		if img, err = graph.Get[*tensor.Tensor](io, "image_latent"); err != nil {
			return err
		}
	}
	// The loop is the only consumer of its inputs: free them when done.
	defer func() {
		cond.Release()
		uncond.Release()
		if img != nil {
			img.Release()
		}
	}()
	lat, err := l.Denoise(ctx, p, cond, uncond, img)
	if err != nil {
		return err
	}
	return io.Put("latents", lat)
}

// NewScheduler returns the preset's sampler for p, with its timesteps set.
func NewScheduler(pr Preset, p Params) (scheduler.Scheduler, error) {
	var s scheduler.Scheduler
	switch pr.Scheduler {
	case UniPC:
		u, err := scheduler.NewFlowUniPC(scheduler.WanFlowUniPCConfig(p.Shift))
		if err != nil {
			return nil, err
		}
		s = u
	case Euler:
		cfg := scheduler.DefaultFlowMatchEulerConfig()
		cfg.Shift = p.Shift
		e, err := scheduler.NewFlowMatchEuler(cfg)
		if err != nil {
			return nil, err
		}
		// Z-Image's pipeline sets scheduler.sigma_min = 0.
		if err := e.SetSigmaMin(0); err != nil {
			return nil, err
		}
		s = e
	default:
		return nil, fmt.Errorf("diffusion: unknown scheduler %q", pr.Scheduler)
	}
	if err := s.SetTimesteps(p.Steps); err != nil {
		return nil, err
	}
	return s, nil
}

// ExpertAt returns which model runs at timestep t: the high-noise expert
// while t ≥ boundary·1000 (diffusers' WanPipeline), else the low-noise one.
func (l *DenoiseLoop) ExpertAt(t float64) string {
	if l.Low == nil {
		return ExpertSingle
	}
	if t >= l.Preset.BoundaryRatio*numTrainSteps {
		return ExpertHigh
	}
	return ExpertLow
}

// Denoise runs the loop and returns the final latents. imgLatent is the
// image-to-video conditioning latent [1, C, 1, h, w] (nil otherwise).
func (l *DenoiseLoop) Denoise(ctx context.Context, p Params, cond, uncond *textenc.Output, imgLatent *tensor.Tensor) (*tensor.Tensor, error) {
	if cond == nil || cond.States == nil {
		return nil, fmt.Errorf("diffusion: denoise: no text conditioning")
	}
	sched, err := NewScheduler(l.Preset, p)
	if err != nil {
		return nil, err
	}
	shape := latentShape(l.Preset, l.Task, p)
	latent, err := tensor.New(tensor.Float32, shape)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			latent.Release()
		}
	}()
	scheduler.NewNormalNoise(p.Seed).FillNormal(latent.Float32s())
	firstFrame := l.Preset.FirstFrameConditioning && imgLatent != nil
	if firstFrame {
		if err := replaceFirstFrame(latent, imgLatent); err != nil {
			return nil, err
		}
	}
	zimage := l.Preset.Family() == dit.ZImage
	var batched *textenc.Output // Z-Image: [cond; uncond]
	if zimage && uncond != nil {
		if batched, err = textenc.Concat(cond, uncond); err != nil {
			return nil, err
		}
		defer batched.Release()
	}
	start := time.Now()
	ts := sched.Timesteps()
	sigmas := sched.Sigmas()
	_, euler := sched.(*scheduler.FlowMatchEuler)
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		model, expert, scale := l.High, l.ExpertAt(t), p.GuidanceScale
		if expert == ExpertLow {
			model, scale = l.Low, p.GuidanceScale2
		}
		if euler && sigmas[i] == sigmas[i+1] {
			// A zero-length Euler step: the last one once σ_min = 0, as in
			// Z-Image (t = 0). diffusers' ZImagePipeline still calls the
			// transformer here and multiplies its output by dt = 0, which
			// leaves the latents as they are (x + 0·v = x for any finite
			// v). We skip that call — one in nine of Z-Image-Turbo's
			// forwards — but the step keeps its iteration span, marked
			// with StepSkipped, so the trace, MAX_ITERS and the progress
			// bar count the schedule's steps one for one.
			_, span := profiler.Step(ctx, SpanStep, profiler.Int("step", i), profiler.Float64("timestep", attrTimestep(t)),
				profiler.String("expert", expert), profiler.String("guidance", GuidanceNone),
				profiler.String("update", StepSkipped))
			span.End()
			if l.Progress != nil {
				l.Progress(Progress{Step: i + 1, Steps: len(ts), Timestep: t, Expert: expert, Skipped: true, Elapsed: time.Since(start)})
			}
			continue
		}
		var guided bool
		if zimage {
			scale = zImageScale(scale, p.CFGTruncation, t)
			guided = scale > 0 && batched != nil
		} else {
			// Decided per step from the step's expert's scale; see
			// Params.GuidanceScale2 for how this differs from diffusers.
			guided = scale > 1 && uncond != nil
		}
		g := GuidanceNone
		if guided {
			g = GuidanceCFG
		}
		sctx, span := profiler.Step(ctx, SpanStep, profiler.Int("step", i), profiler.Float64("timestep", attrTimestep(t)),
			profiler.String("expert", expert), profiler.String("guidance", g))
		var v *tensor.Tensor
		if zimage {
			v, err = l.zImagePasses(sctx, model, latent, t, cond, batched, guided, scale, p.CFGNormalization)
		} else {
			v, err = l.wanPasses(sctx, model, latent, t, firstFrame, cond, uncond, guided, scale)
		}
		if err == nil {
			_, ss := profiler.Start(sctx, SpanSchedStep)
			err = sched.Step(v.Float32s(), latent.Float32s(), i)
			ss.End()
			v.Release()
		}
		if err == nil && firstFrame {
			err = replaceFirstFrame(latent, imgLatent)
		}
		span.End()
		if err != nil {
			return nil, fmt.Errorf("diffusion: denoise step %d (t=%g): %w", i, t, err)
		}
		if l.Progress != nil {
			l.Progress(Progress{Step: i + 1, Steps: len(ts), Timestep: t, Expert: expert, Guided: guided, Elapsed: time.Since(start)})
		}
	}
	ok = true
	return latent, nil
}

// wanPasses runs Wan's conditional pass and, when guided, the
// unconditional one, and returns the guided velocity.
func (l *DenoiseLoop) wanPasses(ctx context.Context, m dit.Model, latent *tensor.Tensor, t float64, firstFrame bool,
	cond, uncond *textenc.Output, guided bool, scale float64) (*tensor.Tensor, error) {
	pass := func(name string, text *textenc.Output) (*tensor.Tensor, error) {
		pctx, span := profiler.Start(ctx, name)
		defer span.End()
		return m.Forward(pctx, dit.Input{Latent: latent, Timesteps: []float64{t}, CleanFirstFrame: firstFrame, Context: text.States})
	}
	vc, err := pass(SpanCond, cond)
	if err != nil || !guided {
		return vc, err
	}
	vu, err := pass(SpanUncond, uncond)
	if err != nil {
		vc.Release()
		return nil, err
	}
	GuideTwoPass(vc.Float32s(), vu.Float32s(), scale)
	vu.Release()
	return vc, nil
}

// zImagePasses runs Z-Image's one pass — cond and uncond batched when
// guided — and returns the velocity: the model's output negated, as
// Z-Image's pipeline does, with timestep (1000 − t)/1000.
func (l *DenoiseLoop) zImagePasses(ctx context.Context, m dit.Model, latent *tensor.Tensor, t float64,
	cond, batched *textenc.Output, guided bool, scale, norm float64) (*tensor.Tensor, error) {
	tm := (zImageTimeUnit - t) / zImageTimeUnit
	if !guided {
		pctx, span := profiler.Start(ctx, SpanCond)
		out, err := m.Forward(pctx, dit.Input{Latent: latent, Timesteps: []float64{tm}, Context: cond.States, ContextMask: cond.Mask})
		span.End()
		if err != nil {
			return nil, err
		}
		negate(out.Float32s())
		return out, nil
	}
	pctx, span := profiler.Start(ctx, SpanBatched, profiler.Int("batch", 2))
	two, err := repeatBatch(latent, 2)
	if err != nil {
		span.End()
		return nil, err
	}
	out, err := m.Forward(pctx, dit.Input{Latent: two, Timesteps: []float64{tm, tm}, Context: batched.States, ContextMask: batched.Mask})
	two.Release()
	span.End()
	if err != nil {
		return nil, err
	}
	defer out.Release()
	n := latent.NumElements()
	res, err := tensor.New(tensor.Float32, latent.Shape())
	if err != nil {
		return nil, err
	}
	pos, neg := res.Float32s(), out.Float32s()[n:]
	copy(pos, out.Float32s()[:n])
	GuideZImage(pos, neg, scale, norm)
	negate(pos)
	return res, nil
}

// attrTimestep is t as a step span records it. The flow-matching
// timesteps are float32 values (σ·1000 in float32, as diffusers computes
// them); widened to float64 they print with float32 noise (857.1428833…).
// The span gets the shortest decimal that names the same float32
// (857.1429); the model still sees the exact value.
func attrTimestep(t float64) float64 {
	if float64(float32(t)) != t {
		return t
	}
	v, err := strconv.ParseFloat(strconv.FormatFloat(t, 'g', -1, 32), 64)
	if err != nil {
		return t
	}
	return v
}

func negate(x []float32) {
	for i, v := range x {
		x[i] = -v
	}
}

// repeatBatch stacks n copies of x [1, ...] into [n, ...].
func repeatBatch(x *tensor.Tensor, n int) (*tensor.Tensor, error) {
	shape := append([]int{n}, x.Shape()[1:]...)
	out, err := tensor.New(tensor.Float32, shape)
	if err != nil {
		return nil, err
	}
	src, dst := x.Float32s(), out.Float32s()
	for i := range n {
		copy(dst[i*len(src):], src)
	}
	return out, nil
}

// replaceFirstFrame writes img [1, C, 1, H, W] into frame 0 of latent
// [1, C, F, H, W]: Wan 2.2 TI2V's latent = (1 − mask)·z + mask·latent with
// the mask 0 on the first frame.
func replaceFirstFrame(latent, img *tensor.Tensor) error {
	c, f, h, w := latent.Dim(1), latent.Dim(2), latent.Dim(3), latent.Dim(4)
	if img.Rank() != 5 || img.Dim(1) != c || img.Dim(2) != 1 || img.Dim(3) != h || img.Dim(4) != w {
		return fmt.Errorf("diffusion: image latent %v does not fit latent %v", img.Shape(), latent.Shape())
	}
	src, dst := img.Float32s(), latent.Float32s()
	for ch := range c {
		copy(dst[ch*f*h*w:ch*f*h*w+h*w], src[ch*h*w:(ch+1)*h*w])
	}
	return nil
}
