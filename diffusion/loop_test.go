package diffusion

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/omniflow-go/omniflow/diffusion/dit"
	"github.com/omniflow-go/omniflow/diffusion/textenc"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
	"github.com/omniflow-go/omniflow/tensor"
)

// fakeModel records its calls and returns a constant velocity.
type fakeModel struct {
	name string
	cfg  dit.Config
	mu   sync.Mutex
	log  []call
}

type call struct {
	model   string
	batch   int
	t       []float64
	context *tensor.Tensor
	clean   bool
}

func (f *fakeModel) Config() dit.Config { return f.cfg }

func (f *fakeModel) Forward(ctx context.Context, in dit.Input) (*tensor.Tensor, error) {
	f.mu.Lock()
	f.log = append(f.log, call{f.name, in.Latent.Dim(0), slices.Clone(in.Timesteps), in.Context, in.CleanFirstFrame})
	f.mu.Unlock()
	out := tensor.Zeros(tensor.Float32, in.Latent.Shape()...)
	for i := range out.Float32s() {
		out.Float32s()[i] = 0.01
	}
	return out, nil
}

// record runs f under a memory-sink profiler and returns the records.
func record(t *testing.T, f func(ctx context.Context)) []profiler.Record {
	t.Helper()
	mem := memory.New()
	p, err := profiler.New(profiler.WithSink(mem))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "diffusion", LaneName: "denoise"}, "denoise")
	f(actx)
	act.End(nil)
	if _, err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	return mem.Records()
}

func encodeTiny(t *testing.T, pr Preset, prompts ...string) []*textenc.Output {
	t.Helper()
	enc, err := textenc.New(nn.Random(1), pr.Text)
	if err != nil {
		t.Fatal(err)
	}
	var outs []*textenc.Output
	for _, p := range prompts {
		o, err := enc.Encode(context.Background(), []string{p})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	return outs
}

// steps groups the records by denoise step: the step record and the names
// of the spans directly under it.
func steps(recs []profiler.Record) (stepRecs []profiler.Record, children map[uint64][]string) {
	children = map[uint64][]string{}
	for _, r := range recs {
		if r.Kind == profiler.KindIteration && r.Name == SpanStep {
			stepRecs = append(stepRecs, r)
		}
	}
	byStart := func(a, b profiler.Record) int { return cmp.Compare(a.Start, b.Start) }
	slices.SortFunc(recs, byStart)
	for _, r := range recs {
		for _, s := range stepRecs {
			if r.Parent == s.ID {
				children[s.ID] = append(children[s.ID], r.Name)
			}
		}
	}
	slices.SortFunc(stepRecs, byStart)
	return stepRecs, children
}

func attr(r profiler.Record, key string) profiler.Attr {
	a, _ := r.Attr(key)
	return a
}

func TestExpertSwitchAtBoundary(t *testing.T) {
	pr, _ := LookupPreset("tiny-wan2.2-t2v")
	for _, steps_ := range []int{4, 10, 40} {
		p := pr.Defaults
		p.Steps = steps_
		p.GuidanceScale, p.GuidanceScale2 = 4, 1 // the low-noise expert runs unguided
		// The expected switch: the first step whose timestep is below
		// boundary_ratio·1000, from the scheduler's own timesteps.
		s, err := NewScheduler(pr, p)
		if err != nil {
			t.Fatal(err)
		}
		ts := s.Timesteps()
		switchAt := len(ts)
		for i, tv := range ts {
			if tv < pr.BoundaryRatio*1000 {
				switchAt = i
				break
			}
		}
		if switchAt == 0 || switchAt == len(ts) {
			t.Fatalf("%d steps: timesteps %v never cross %v; pick another schedule", steps_, ts, pr.BoundaryRatio*1000)
		}
		high := &fakeModel{name: ExpertHigh, cfg: *pr.DiT}
		low := &fakeModel{name: ExpertLow, cfg: *pr.DiT2}
		loop := &DenoiseLoop{Preset: pr, Task: TextToVideo, High: high, Low: low}
		txt := encodeTiny(t, pr, "a cat", "")
		recs := record(t, func(ctx context.Context) {
			if _, err := loop.Denoise(ctx, p, txt[0], txt[1], nil); err != nil {
				t.Fatal(err)
			}
		})
		stepRecs, children := steps(recs)
		if len(stepRecs) != len(ts) {
			t.Fatalf("%d step spans, want %d", len(stepRecs), len(ts))
		}
		for i, r := range stepRecs {
			wantExpert, wantPasses, wantG := ExpertHigh, []string{SpanCond, SpanUncond, SpanSchedStep}, GuidanceCFG
			if i >= switchAt {
				wantExpert, wantPasses, wantG = ExpertLow, []string{SpanCond, SpanSchedStep}, GuidanceNone
			}
			if attr(r, "step").AsInt() != int64(i) || attr(r, "timestep").AsFloat() != ts[i] ||
				attr(r, "expert").AsString() != wantExpert || attr(r, "guidance").AsString() != wantG {
				t.Errorf("%d steps: step %d attrs %v, want expert %s guidance %s at t=%v", steps_, i, r.AttrList(), wantExpert, wantG, ts[i])
			}
			if got := children[r.ID]; !slices.Equal(got, wantPasses) {
				t.Errorf("%d steps: step %d has %v under it, want %v", steps_, i, got, wantPasses)
			}
		}
		// The models saw exactly those calls: 2 per high step, 1 per low.
		if len(high.log) != 2*switchAt || len(low.log) != len(ts)-switchAt {
			t.Errorf("%d steps, switch at %d: high expert called %d times, low %d", steps_, switchAt, len(high.log), len(low.log))
		}
		for i, c := range high.log {
			want := txt[0].States
			if i%2 == 1 {
				want = txt[1].States
			}
			if c.context != want || c.t[0] != ts[i/2] || c.batch != 1 {
				t.Errorf("high call %d: context/timestep/batch wrong (%v, %d)", i, c.t, c.batch)
			}
		}
	}
}

func TestCFGPassCounts(t *testing.T) {
	wan, _ := LookupPreset("tiny-wan2.2-ti2v")
	zi, _ := LookupPreset("tiny-z-image")
	for _, c := range []struct {
		name   string
		pr     Preset
		edit   func(*Params)
		passes [][]string // per step, the pass spans
		batch  []int      // per model call
	}{
		{"wan guided", wan, func(p *Params) { p.Steps = 2 },
			[][]string{{SpanCond, SpanUncond}, {SpanCond, SpanUncond}}, []int{1, 1, 1, 1}},
		{"wan scale 1", wan, func(p *Params) { p.Steps = 2; p.GuidanceScale = 1 },
			[][]string{{SpanCond}, {SpanCond}}, []int{1, 1}},
		{"z-image batched", zi, func(p *Params) { p.Steps = 3; p.Shift = 1 },
			// Three Euler steps with σ_min = 0: the last is zero-length, a
			// step span with no pass and no model call.
			[][]string{{SpanBatched}, {SpanBatched}, nil}, []int{2, 2}},
		{"z-image truncated", zi, func(p *Params) { p.Steps = 5; p.Shift = 1; p.CFGTruncation = 0.3 },
			// t = 1000, 750, 500, 250, 0: t_norm 0, .25, .5, .75 → guided twice.
			[][]string{{SpanBatched}, {SpanBatched}, {SpanCond}, {SpanCond}, nil}, []int{2, 2, 1, 1}},
		{"z-image scale 0", zi, func(p *Params) { p.Steps = 2; p.GuidanceScale = 0 },
			[][]string{{SpanCond}, nil}, []int{1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.pr.Defaults
			c.edit(&p)
			m := &fakeModel{cfg: *c.pr.DiT}
			loop := &DenoiseLoop{Preset: c.pr, Task: c.pr.Tasks[len(c.pr.Tasks)-1], High: m}
			if c.pr.Supports(TextToImage) {
				loop.Task = TextToImage
			} else {
				loop.Task = TextToVideo
			}
			txt := encodeTiny(t, c.pr, "a cat", "")
			uncond := txt[1]
			if !p.usesCFG(c.pr) {
				uncond = nil
			}
			recs := record(t, func(ctx context.Context) {
				if _, err := loop.Denoise(ctx, p, txt[0], uncond, nil); err != nil {
					t.Fatal(err)
				}
			})
			stepRecs, children := steps(recs)
			if len(stepRecs) != p.Steps {
				t.Errorf("%d step spans for %d steps", len(stepRecs), p.Steps)
			}
			var got [][]string
			for i, r := range stepRecs {
				passes := slices.DeleteFunc(children[r.ID], func(s string) bool { return s == SpanSchedStep })
				got = append(got, passes)
				// A step without passes is a skipped zero-length one, and
				// says so; every other step says nothing of the kind.
				update, marked := r.Attr("update")
				if skipped := len(children[r.ID]) == 0; skipped != marked || (marked && update.AsString() != StepSkipped) ||
					(skipped && attr(r, "guidance").AsString() != GuidanceNone) {
					t.Errorf("step %d: children %v, attrs %v", i, children[r.ID], r.AttrList())
				}
			}
			if !slices.EqualFunc(got, c.passes, slices.Equal) {
				t.Errorf("passes per step %v, want %v", got, c.passes)
			}
			var batches []int
			for _, call := range m.log {
				batches = append(batches, call.batch)
			}
			if !slices.Equal(batches, c.batch) {
				t.Errorf("model batches %v, want %v", batches, c.batch)
			}
		})
	}
}

func TestImageToVideoKeepsFirstFrame(t *testing.T) {
	pr, _ := LookupPreset("tiny-wan2.2-ti2v")
	p := pr.Defaults
	m := &fakeModel{cfg: *pr.DiT}
	loop := &DenoiseLoop{Preset: pr, Task: ImageToVideo, High: m}
	shape := latentShape(pr, ImageToVideo, p)
	img := tensor.Zeros(tensor.Float32, shape[0], shape[1], 1, shape[3], shape[4])
	for i := range img.Float32s() {
		img.Float32s()[i] = float32(i%7) - 3
	}
	txt := encodeTiny(t, pr, "a cat", "")
	lat, err := loop.Denoise(context.Background(), p, txt[0], txt[1], img)
	if err != nil {
		t.Fatal(err)
	}
	f, hw := shape[2], shape[3]*shape[4]
	for c := range shape[1] {
		for i := range hw {
			if lat.Float32s()[c*f*hw+i] != img.Float32s()[c*hw+i] {
				t.Fatalf("channel %d pixel %d of frame 0 is not the image latent", c, i)
			}
		}
	}
	for _, c := range m.log {
		if !c.clean {
			t.Fatal("a pass ran without the clean first frame")
		}
	}
}

// TestStepTimestepAttr: Z-Image's timesteps are float32 values (σ·1000 in
// float32, as diffusers computes them); the step spans record the shortest
// decimal naming the same float32, not its float64 widening.
func TestStepTimestepAttr(t *testing.T) {
	pr, _ := LookupPreset("tiny-z-image")
	p := pr.Defaults
	p.Steps, p.Shift = 4, 3
	s, err := NewScheduler(pr, p)
	if err != nil {
		t.Fatal(err)
	}
	ts := s.Timesteps()
	// σ₁ = shift 3 of 2/3 = 6/7 (Z-Image's schedule, see
	// TestPresetSchedules); 6000/7 in float32 is 857.1428833…, whose
	// shortest float32 decimal is 857.1429.
	if ts[1] == 857.1429 || float32(ts[1]) != float32(857.1429) {
		t.Fatalf("timestep 1 = %v: not the float32 of 6000/7 this test expects", ts[1])
	}
	loop := &DenoiseLoop{Preset: pr, Task: TextToImage, High: &fakeModel{cfg: *pr.DiT}}
	txt := encodeTiny(t, pr, "a cat", "")
	recs := record(t, func(ctx context.Context) {
		if _, err := loop.Denoise(ctx, p, txt[0], txt[1], nil); err != nil {
			t.Fatal(err)
		}
	})
	stepRecs, _ := steps(recs)
	if len(stepRecs) != len(ts) {
		t.Fatalf("%d step spans, want %d", len(stepRecs), len(ts))
	}
	want := []float64{1000, 857.1429, 600, 0}
	for i, r := range stepRecs {
		got := attr(r, "timestep").AsFloat()
		if got != want[i] || float32(got) != float32(ts[i]) {
			t.Errorf("step %d: timestep attribute %v, want %v (the float32 %v)", i, got, want[i], float32(ts[i]))
		}
	}
}

// TestExpertAtExactBoundary: a timestep equal to boundary_ratio·1000 runs
// the high-noise expert (diffusers' WanPipeline: t >= boundary_timestep).
// At shift 12, 27 steps put t = 875 = 0.875·1000 on step 17.
func TestExpertAtExactBoundary(t *testing.T) {
	pr, _ := LookupPreset("tiny-wan2.2-t2v")
	p := pr.Defaults
	p.Steps, p.Shift = 27, 12
	s, err := NewScheduler(pr, p)
	if err != nil {
		t.Fatal(err)
	}
	ts := s.Timesteps()
	const at = 17
	boundary := pr.BoundaryRatio * 1000
	if ts[at] != boundary || ts[at+1] >= boundary {
		t.Fatalf("timesteps %v: step %d is not exactly the boundary %v", ts[at-1:at+2], at, boundary)
	}
	high := &fakeModel{name: ExpertHigh, cfg: *pr.DiT}
	low := &fakeModel{name: ExpertLow, cfg: *pr.DiT2}
	loop := &DenoiseLoop{Preset: pr, Task: TextToVideo, High: high, Low: low}
	if loop.ExpertAt(boundary) != ExpertHigh || loop.ExpertAt(math.Nextafter(boundary, 0)) != ExpertLow {
		t.Errorf("ExpertAt(%v) = %s, just below it %s", boundary, loop.ExpertAt(boundary), loop.ExpertAt(math.Nextafter(boundary, 0)))
	}
	txt := encodeTiny(t, pr, "a cat", "")
	recs := record(t, func(ctx context.Context) {
		if _, err := loop.Denoise(ctx, p, txt[0], txt[1], nil); err != nil {
			t.Fatal(err)
		}
	})
	stepRecs, _ := steps(recs)
	if len(stepRecs) != len(ts) {
		t.Fatalf("%d step spans, want %d", len(stepRecs), len(ts))
	}
	for _, i := range []int{at, at + 1} {
		want := ExpertHigh
		if i > at {
			want = ExpertLow
		}
		if got := attr(stepRecs[i], "expert").AsString(); got != want {
			t.Errorf("step %d (t=%v): expert %s, want %s", i, ts[i], got, want)
		}
	}
	// Both guided passes of step 17 went to the high-noise expert, at t = 875.
	if n := len(high.log); n != 2*(at+1) || high.log[n-1].t[0] != boundary || high.log[n-2].t[0] != boundary {
		t.Errorf("high-noise expert: %d calls, the last at %v; want %d, the last two at %v", n, high.log[n-1].t, 2*(at+1), boundary)
	}
	if low.log[0].t[0] != ts[at+1] {
		t.Errorf("the low-noise expert's first call at %v, want %v", low.log[0].t, ts[at+1])
	}
}

// TestWanGuidancePerStep pins omniflow's rule where it differs from
// diffusers' (which decides once, from guidance_scale > 1): each step
// guides when its own expert's scale is above 1. GuidanceScale 1 with
// GuidanceScale2 3 encodes the negative prompt, runs one pass on the
// high-noise steps and two on the low-noise ones; 4 with 1 the reverse.
func TestWanGuidancePerStep(t *testing.T) {
	pr, _ := LookupPreset("tiny-wan2.2-t2v")
	for _, c := range []struct {
		g1, g2     float64
		high, low  []string // passes per step of each expert
		negPrompts bool
	}{
		{1, 3, []string{SpanCond}, []string{SpanCond, SpanUncond}, true},
		{4, 1, []string{SpanCond, SpanUncond}, []string{SpanCond}, true},
		{1, 1, []string{SpanCond}, []string{SpanCond}, false},
	} {
		p := pr.Defaults
		p.Steps, p.GuidanceScale, p.GuidanceScale2 = 10, c.g1, c.g2
		if p.usesCFG(pr) != c.negPrompts {
			t.Errorf("scales %v, %v: negative prompt encoded %v, want %v", c.g1, c.g2, p.usesCFG(pr), c.negPrompts)
		}
		high := &fakeModel{name: ExpertHigh, cfg: *pr.DiT}
		low := &fakeModel{name: ExpertLow, cfg: *pr.DiT2}
		loop := &DenoiseLoop{Preset: pr, Task: TextToVideo, High: high, Low: low}
		txt := encodeTiny(t, pr, "a cat", "")
		uncond := txt[1]
		if !c.negPrompts {
			uncond = nil
		}
		recs := record(t, func(ctx context.Context) {
			if _, err := loop.Denoise(ctx, p, txt[0], uncond, nil); err != nil {
				t.Fatal(err)
			}
		})
		stepRecs, children := steps(recs)
		var nHigh, nLow int
		for i, r := range stepRecs {
			want := c.high
			if attr(r, "expert").AsString() == ExpertLow {
				want = c.low
				nLow++
			} else {
				nHigh++
			}
			g := GuidanceNone
			if len(want) == 2 {
				g = GuidanceCFG
			}
			got := slices.DeleteFunc(children[r.ID], func(s string) bool { return s == SpanSchedStep })
			if !slices.Equal(got, want) || attr(r, "guidance").AsString() != g {
				t.Errorf("scales %v, %v: step %d (%s) passes %v guidance %s, want %v %s", c.g1, c.g2, i,
					attr(r, "expert").AsString(), got, attr(r, "guidance").AsString(), want, g)
			}
		}
		if nHigh == 0 || nLow == 0 {
			t.Fatalf("10 steps: %d high-noise, %d low-noise; the test needs both", nHigh, nLow)
		}
		if len(high.log) != nHigh*len(c.high) || len(low.log) != nLow*len(c.low) {
			t.Errorf("scales %v, %v: %d high and %d low calls", c.g1, c.g2, len(high.log), len(low.log))
		}
	}
}
