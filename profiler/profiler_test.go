package profiler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newProfiler(t testing.TB, opts ...profiler.Option) (*profiler.Profiler, *memory.Store) {
	t.Helper()
	mem := memory.New()
	p, err := profiler.New(append([]profiler.Option{profiler.WithSink(mem)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p, mem
}

func stop(t testing.TB, p *profiler.Profiler) profiler.Result {
	t.Helper()
	res, err := p.Stop(context.Background())
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	return res
}

func byName(recs []profiler.Record) map[string][]profiler.Record {
	m := map[string][]profiler.Record{}
	for _, r := range recs {
		m[r.Name] = append(m[r.Name], r)
	}
	return m
}

func TestSpansNestUnderActivation(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{Stage: 1, StageName: "talker", Lane: 2, LaneName: "loop", Request: "r7"}, "talker")
	c1, outer := profiler.Start(actx, "outer", profiler.Int("n", 3))
	c2, it := profiler.Step(c1, "step")
	_, k := profiler.StartKind(c2, profiler.KindKernel, "matmul", profiler.Int("flops", 2000))
	k.End()
	it.End()
	outer.End()
	profiler.Event(actx, "mark")
	act.End(nil)
	res := stop(t, p)

	recs := mem.Records()
	m := byName(recs)
	for _, n := range []string{"talker", "outer", "step", "matmul", "mark"} {
		if len(m[n]) != 1 {
			t.Fatalf("want one %q record, got %d (all: %v)", n, len(m[n]), recs)
		}
	}
	op, o, s, kr := m["talker"][0], m["outer"][0], m["step"][0], m["matmul"][0]
	if op.Kind != profiler.KindOperator || o.Kind != profiler.KindModule || s.Kind != profiler.KindIteration || kr.Kind != profiler.KindKernel {
		t.Errorf("kinds: %v %v %v %v", op.Kind, o.Kind, s.Kind, kr.Kind)
	}
	if op.Parent != 0 || o.Parent != op.ID || s.Parent != o.ID || kr.Parent != s.ID {
		t.Errorf("parents: op=%d outer=%d(parent %d) step=%d(parent %d) kernel parent %d", op.ID, o.ID, o.Parent, s.ID, s.Parent, kr.Parent)
	}
	if s.Iter != 0 || kr.Iter != 0 || o.Iter != -1 {
		t.Errorf("iterations: step %d kernel %d outer %d", s.Iter, kr.Iter, o.Iter)
	}
	for _, r := range []profiler.Record{op, o, s, kr, m["mark"][0]} {
		if r.Stage != 1 || r.StageName != "talker" || r.Lane != 2 || r.LaneName != "loop" || r.Request != "r7" {
			t.Errorf("%s: track %d/%q lane %d/%q request %q", r.Name, r.Stage, r.StageName, r.Lane, r.LaneName, r.Request)
		}
	}
	if !(op.Start <= o.Start && o.Start <= s.Start && s.Start <= kr.Start && kr.End <= s.End && s.End <= o.End && o.End <= op.End) {
		t.Errorf("times do not nest: %+v", recs)
	}
	if a, ok := o.Attr("n"); !ok || a.AsInt() != 3 {
		t.Errorf("attr n: %v %v", a, ok)
	}
	if res.Events != uint64(len(recs)) || res.Dropped != 0 {
		t.Errorf("result events %d dropped %d, records %d", res.Events, res.Dropped, len(recs))
	}
	if res.Summary == nil || len(res.Summary.Rows) != 4 {
		t.Errorf("summary: %+v", res.Summary)
	}
}

func TestSpanOffIsInert(t *testing.T) {
	ctx := context.Background()
	c, sp := profiler.Start(ctx, "x")
	if c != ctx || sp.Recording() {
		t.Fatal("span recorded with no profile running")
	}
	sp.End()
	allocs := testing.AllocsPerRun(1000, func() {
		_, s := profiler.Start(ctx, "x", profiler.Int("a", 1))
		s.End()
	})
	if allocs != 0 {
		t.Errorf("span with no profile allocates %.1f times", allocs)
	}
}

func TestStartStopErrors(t *testing.T) {
	ctx := context.Background()
	p, _ := newProfiler(t)
	if _, err := p.Stop(ctx); !errors.Is(err, profiler.ErrNotStarted) {
		t.Fatalf("Stop before Start: %v", err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); !errors.Is(err, profiler.ErrAlreadyStarted) {
		t.Fatalf("second Start: %v", err)
	}
	stop(t, p)
	if _, err := p.Stop(ctx); !errors.Is(err, profiler.ErrNotStarted) {
		t.Fatalf("second Stop: %v", err)
	}
	for _, id := range []int{-1, 256} {
		if err := p.Start(ctx, profiler.Stages(0, id)); !errors.Is(err, profiler.ErrStage) || !strings.Contains(err.Error(), fmt.Sprint(id)) {
			t.Fatalf("Start with stage %d: %v, want ErrStage naming it", id, err)
		}
	}
	if _, err := profiler.New(profiler.WithMaxIters(-1)); err == nil || !strings.Contains(err.Error(), "max iterations") {
		t.Fatalf("New with negative max iters: %v", err)
	}
}

// stageRun makes an activation on stage with n iterations, each holding a
// kernel span, and a module span before the loop.
func stageRun(ctx context.Context, p *profiler.Profiler, stage, n int) {
	actx, act := p.Enter(ctx, profiler.Track{Stage: stage, StageName: "s", LaneName: "l"}, "op")
	_, pre := profiler.Start(actx, "before")
	pre.End()
	for i := 0; i < n; i++ {
		ictx, it := profiler.Step(actx, "iter")
		_, k := profiler.StartKind(ictx, profiler.KindKernel, "k")
		k.End()
		it.End()
	}
	act.End(nil)
}

func TestStageSelection(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t)
	if err := p.Start(ctx, profiler.Stages(0, 2)); err != nil {
		t.Fatal(err)
	}
	for st := 0; st < 3; st++ {
		stageRun(ctx, p, st, 2)
	}
	_, free := profiler.Start(ctx, "no stage") // outside any stage: not selected
	free.End()
	res := stop(t, p)
	seen := map[int32]int{}
	for _, r := range mem.Records() {
		seen[r.Stage]++
	}
	if seen[1] != 0 || seen[0] == 0 || seen[2] == 0 || seen[-1] != 0 {
		t.Fatalf("records per stage: %v", seen)
	}
	var sel []int
	for _, s := range res.Stages {
		if s.Selected {
			sel = append(sel, s.ID)
		}
	}
	if len(sel) != 2 || sel[0] != 0 || sel[1] != 2 {
		t.Errorf("selected stages in result: %+v", res.Stages)
	}
}

func TestMaxItersAutoStopAndRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, mem := newProfiler(t, profiler.WithMaxIters(1), profiler.WithDir(dir))
	for round := 0; round < 2; round++ {
		if err := p.Start(ctx, profiler.Stages(0, 2)); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		stageRun(ctx, p, 0, 3)
		if !p.Active() {
			t.Fatal("stopped before stage 2 recorded its window")
		}
		stageRun(ctx, p, 1, 3)
		stageRun(ctx, p, 2, 3)
		res, err := p.Wait(ctx)
		if err != nil {
			t.Fatalf("round %d: Wait: %v", round, err)
		}
		if res.Reason != profiler.StopMaxIters {
			t.Errorf("reason %q", res.Reason)
		}
		iters := map[int32]int{}
		for _, r := range mem.Last().Records() {
			if r.Kind == profiler.KindIteration {
				iters[r.Stage]++
			}
		}
		if iters[0] != 1 || iters[2] != 1 || iters[1] != 0 {
			t.Errorf("round %d: iterations per stage %v, want one on 0 and 2", round, iters)
		}
		for _, st := range res.Stages {
			if want := uint64(iters[int32(st.ID)]); st.Recorded != want || (st.ID != 1 && st.Iterations < 1) {
				t.Errorf("round %d: stage %d: %d iterations counted, %d recorded, want %d recorded", round, st.ID, st.Iterations, st.Recorded, want)
			}
		}
		if !mem.Last().Complete() {
			t.Error("sink not shut down after the automatic stop")
		}
		if _, err := p.Stop(ctx); !errors.Is(err, profiler.ErrNotStarted) {
			t.Errorf("Stop after the result was collected: %v", err)
		}
	}
	if n := len(mem.Sessions()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d session folders, want 2", len(entries))
	}
}

// With all stages selected, a stage that has not stepped yet but whose loop
// an engine declared is waited for; without the declaration the session
// stops once the stages that stepped are done.
func TestMaxItersAllStagesWaitsForDeclaredLoops(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t, profiler.WithMaxIters(1))
	release := p.ExpectIterations(0, 1, 2)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for st := 0; st < 3; st++ {
		stageRun(ctx, p, st, 2)
		if active := p.Active(); active != (st < 2) {
			t.Fatalf("after stage %d: active %v", st, active)
		}
	}
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	iters := map[int32]int{}
	for _, r := range mem.Last().Records() {
		if r.Kind == profiler.KindIteration {
			iters[r.Stage]++
		}
	}
	if iters[0] != 1 || iters[1] != 1 || iters[2] != 1 {
		t.Errorf("iterations per stage %v, want one on each of 0, 1, 2", iters)
	}

	// Released: stage 0 alone completes the window.
	release()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stageRun(ctx, p, 0, 2)
	if p.Active() {
		t.Error("still recording after the only stage that stepped recorded its window")
	}
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// A declared stage that never steps: releasing it lets the session
	// stop by itself.
	release = p.ExpectIterations(0, 1)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stageRun(ctx, p, 0, 2)
	if !p.Active() {
		t.Fatal("stopped while stage 1 was still declared")
	}
	release()
	res, err := p.Wait(ctx)
	if err != nil || res.Reason != profiler.StopMaxIters {
		t.Fatalf("after release: %v, reason %q", err, res.Reason)
	}
}

func TestStopReturnsAutoStoppedResultOnce(t *testing.T) {
	ctx := context.Background()
	p, _ := newProfiler(t, profiler.WithMaxIters(2))
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stageRun(ctx, p, 0, 5)
	deadline := time.Now().Add(10 * time.Second)
	for p.Active() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	res, err := p.Stop(ctx)
	if err != nil || res.Reason != profiler.StopMaxIters {
		t.Fatalf("Stop after auto-stop: %v %v", res.Reason, err)
	}
	if _, err := p.Stop(ctx); !errors.Is(err, profiler.ErrNotStarted) {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestDelayIters(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t, profiler.WithDelayIters(2), profiler.WithMaxIters(2))
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stageRun(ctx, p, 0, 6)
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var iters []int32
	for _, r := range mem.Records() {
		if r.Name == "before" {
			t.Error("span before the delay window was recorded")
		}
		if r.Kind == profiler.KindIteration {
			iters = append(iters, r.Iter)
		}
	}
	if len(iters) != 2 || iters[0]+iters[1] != 5 {
		t.Errorf("recorded iterations %v, want 2 and 3", iters)
	}
}

// With a delay, a stage without a loop records once the first iteration
// window opens (a renderer fed by a looping stage), not before; a stage
// with a declared loop waits for its own window.
func TestDelayItersStagesWithoutLoops(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t, profiler.WithDelayIters(1))
	release := p.ExpectIterations(2)
	defer release()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	span := func(stage int, name string) {
		actx, act := p.Enter(ctx, profiler.Track{Stage: stage, StageName: "s"}, "op")
		_, s := profiler.Start(actx, name)
		s.End()
		act.End(nil)
	}
	span(1, "tokenize early") // no window open yet
	span(2, "loop stage early")
	stageRun(ctx, p, 0, 3) // opens stage 0's window at its second step
	span(1, "render")
	span(2, "loop stage before its window")
	if _, err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range mem.Records() {
		got[r.Name] = true
	}
	if !got["render"] || got["tokenize early"] || got["loop stage early"] || got["loop stage before its window"] {
		t.Errorf("recorded %v: want render only among the stage 1 and 2 spans", got)
	}
}

func TestSilentContextRecordsNothing(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t)
	actx, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "s"}, "op")
	quiet := profiler.Silent(actx) // made before the session, as a loop does
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if profiler.Recording(quiet) {
		t.Error("Recording(Silent(ctx)) is true")
	}
	_, s := profiler.Start(quiet, "hidden")
	s.End()
	_, it := profiler.Step(quiet, "hidden.step")
	it.End()
	profiler.Event(quiet, "hidden.event")
	profiler.Counter(quiet, "hidden.counter", 1)
	_, v := profiler.Start(actx, "visible")
	v.End()
	act.End(nil)
	stop(t, p)
	for _, r := range mem.Records() {
		if strings.HasPrefix(r.Name, "hidden") {
			t.Errorf("recorded %q under a silent context", r.Name)
		}
	}
	if n := len(mem.Records()); n != 1 {
		t.Errorf("%d records, want the visible span only", n)
	}
}

// A stop while an iteration runs writes the iteration cut at the stop,
// so the spans of it already recorded keep their parent.
func TestStopCutsOpenIteration(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "s"}, "op")
	act.Pause() // the iteration is a root on the lane, as in a stage loop
	ictx, it := profiler.Step(actx, "step")
	it.SetAttributes(profiler.Int("batch", 3))
	_, k := profiler.StartKind(ictx, profiler.KindKernel, "k")
	k.End()
	stop(t, p)
	_, late := profiler.StartKind(ictx, profiler.KindKernel, "late")
	late.End()
	it.SetAttributes(profiler.Int("after", 1)) // the session is gone: nothing to do
	it.End()
	act.End(nil)
	var step, kern *profiler.Record
	recs := mem.Records()
	for i := range recs {
		switch recs[i].Name {
		case "step":
			step = &recs[i]
		case "k":
			kern = &recs[i]
		case "late":
			t.Error("a span started after the stop was recorded")
		}
	}
	if step == nil || kern == nil {
		t.Fatalf("records %+v: want the cut iteration and its kernel", recs)
	}
	if tr, ok := step.Attr("truncated"); !ok || !tr.AsBool() {
		t.Errorf("iteration not marked truncated: %v", step.AttrList())
	}
	if b, ok := step.Attr("batch"); !ok || b.AsInt() != 3 {
		t.Errorf("iteration lost its attribute: %v", step.AttrList())
	}
	if kern.Parent != step.ID || kern.Start < step.Start || kern.End > step.End {
		t.Errorf("kernel [%d,%d] parent %d not inside iteration %d [%d,%d]", kern.Start, kern.End, kern.Parent, step.ID, step.Start, step.End)
	}
}

func TestTruncatedActivationAtAutoStop(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t, profiler.WithMaxIters(1))
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "diffusion", LaneName: "denoise"}, "denoise")
	for i := 0; i < 3; i++ {
		_, it := profiler.Step(actx, "step")
		it.End()
	}
	res, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	act.End(nil) // after the stop: must not be recorded twice
	m := byName(mem.Records())
	if len(m["denoise"]) != 1 || len(m["step"]) != 1 {
		t.Fatalf("records: %v", m)
	}
	d := m["denoise"][0]
	if a, ok := d.Attr("truncated"); !ok || !a.AsBool() {
		t.Errorf("open activation not marked truncated: %+v", d)
	}
	if d.End < m["step"][0].End {
		t.Errorf("truncated activation ends before its step")
	}
	if res.Events != 2 {
		t.Errorf("events %d", res.Events)
	}
}

func TestPauseResumeSplitsActivation(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{Stage: 2, StageName: "vocoder", LaneName: "code2wav", Request: "a"}, "vocoder")
	for i := 0; i < 3; i++ {
		_, s := profiler.Start(actx, "chunk")
		s.End()
		act.Pause()
		act.Resume()
	}
	act.End(errors.New("boom"))
	stop(t, p)
	m := byName(mem.Records())
	slices := m["vocoder"]
	if len(slices) != 4 {
		t.Fatalf("%d operator slices, want 4", len(slices))
	}
	ids := map[uint64]bool{}
	for _, s := range slices {
		ids[s.ID] = true
	}
	for _, c := range m["chunk"] {
		if !ids[c.Parent] {
			t.Errorf("chunk parent %d is not one of the slices", c.Parent)
		}
	}
	last := slices[len(slices)-1]
	for _, s := range slices {
		if s.Start > last.Start {
			last = s
		}
	}
	if a, ok := last.Attr("error"); !ok || a.AsString() != "boom" {
		t.Errorf("last slice has no error attr: %+v", last)
	}
}

func TestSessionFolder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, _ := newProfiler(t, profiler.WithDir(dir))
	if err := p.Start(ctx, profiler.Name("wan t2v/run"), profiler.Meta("model", "wan-2.2")); err != nil {
		t.Fatal(err)
	}
	stageRun(ctx, p, 0, 2)
	res := stop(t, p)
	if !regexp.MustCompile(`^\d{8}-\d{6}_wan_t2v_run$`).MatchString(filepath.Base(res.Dir)) {
		t.Errorf("session folder %q", res.Dir)
	}
	b, err := os.ReadFile(filepath.Join(res.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m profiler.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Version != profiler.Version || m.Meta["model"] != "wan-2.2" || m.Events != res.Events || len(m.Stages) != 1 || m.Stages[0].Iterations != 2 {
		t.Errorf("manifest: %s", b)
	}
	if len(m.Files) != 2 || m.Files[0] != "manifest.json" || m.Files[1] != "summary.txt" {
		t.Errorf("manifest files %v", m.Files)
	}
	sum, err := os.ReadFile(filepath.Join(res.Dir, "summary.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"calls", "self ms", "iteration", "kernel", "share"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	// A second session in the same second gets its own folder.
	if err := p.Start(ctx, profiler.Name("wan t2v/run")); err != nil {
		t.Fatal(err)
	}
	res2 := stop(t, p)
	if res2.Dir == res.Dir {
		t.Error("two sessions share a folder")
	}
	entries, _ := os.ReadDir(res.Dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestEventCapDropsAndCounts(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t, profiler.WithMaxEvents(100))
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{}, "op")
	for i := 0; i < 999; i++ {
		_, s := profiler.Start(actx, "s")
		s.End()
	}
	act.End(nil)
	res := stop(t, p)
	if res.Events != 100 || res.Dropped != 900 || len(mem.Records()) != 100 {
		t.Fatalf("events %d dropped %d records %d", res.Events, res.Dropped, len(mem.Records()))
	}
}

func TestConcurrentSpansAndStop(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t)
	for round := 0; round < 3; round++ {
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		stopAt := make(chan struct{})
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				actx, act := p.Enter(ctx, profiler.Track{Stage: g % 3, Lane: g}, "op")
				defer act.End(nil)
				for i := 0; ; i++ {
					c, s := profiler.Start(actx, "outer")
					_, k := profiler.StartKind(c, profiler.KindKernel, "k")
					k.End()
					s.End()
					if i == 200 {
						select {
						case stopAt <- struct{}{}:
						default:
						}
					}
					if i > 200 && !p.Active() {
						return
					}
				}
			}()
		}
		<-stopAt
		res := stop(t, p)
		wg.Wait()
		got := uint64(len(mem.Last().Records()))
		if got != res.Events {
			t.Errorf("round %d: sink got %d records, result says %d", round, got, res.Events)
		}
		// Every exported child's parent was exported too, unless the parent
		// was still open at the stop.
		ids := map[uint64]bool{}
		for _, r := range mem.Last().Records() {
			ids[r.ID] = true
		}
		missing := 0
		for _, r := range mem.Last().Records() {
			if r.Parent != 0 && !ids[r.Parent] {
				missing++
			}
		}
		// A dropped batch (full queue) can take parents with it.
		if uint64(missing) > 8*2+res.Dropped {
			t.Errorf("round %d: %d records lost their parent (%d dropped)", round, missing, res.Dropped)
		}
	}
}

func TestSinkOpenFailure(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	p, err := profiler.New(profiler.WithDir(t.TempDir()), profiler.WithSink(profiler.SinkFunc(
		func(context.Context, profiler.SessionInfo) (profiler.Sink, error) { return nil, boom })))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); !errors.Is(err, boom) {
		t.Fatalf("Start: %v", err)
	}
	if p.Active() {
		t.Fatal("active after a failed Start")
	}
}

type failingSink struct{ n int }

func (f *failingSink) Export(context.Context, []profiler.Record) error {
	f.n++
	return errors.New("disk full")
}
func (f *failingSink) Shutdown(context.Context) error { return nil }

func TestSinkExportErrorIsReported(t *testing.T) {
	ctx := context.Background()
	fs := &failingSink{}
	p, mem := newProfiler(t, profiler.WithSink(profiler.SinkFunc(
		func(context.Context, profiler.SessionInfo) (profiler.Sink, error) { return fs, nil })))
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, act := p.Enter(ctx, profiler.Track{}, "x")
	act.End(nil)
	res, err := p.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Stop error: %v", err)
	}
	if res.Events != 1 || len(mem.Records()) != 1 {
		t.Errorf("the other sink lost data: %d", len(mem.Records()))
	}
}

func TestDefaultProfilerRecordsUnscopedSpans(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t)
	old := profiler.Default()
	profiler.SetDefault(p)
	defer profiler.SetDefault(old)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c, s := profiler.Start(ctx, "plain")
	_, k := profiler.StartKind(c, profiler.KindKernel, "k")
	k.End()
	s.End()
	stop(t, p)
	m := byName(mem.Records())
	if len(m["plain"]) != 1 || m["plain"][0].Stage != profiler.NoStage || m["k"][0].Parent != m["plain"][0].ID {
		t.Fatalf("records %+v", mem.Records())
	}
}

func TestPauseInsideOpenSpanDoesNotSplit(t *testing.T) {
	ctx := context.Background()
	p, mem := newProfiler(t)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, profiler.Track{Stage: 0, LaneName: "count"}, "count")
	_, round := profiler.Step(actx, "round")
	act.Pause() // the round waits for input: it contains the wait
	act.Resume()
	round.End()
	act.Pause() // nothing open: splits
	act.Resume()
	act.End(nil)
	stop(t, p)
	m := byName(mem.Records())
	if len(m["count"]) != 2 {
		t.Fatalf("%d operator slices, want 2", len(m["count"]))
	}
	r := m["round"][0]
	var first profiler.Record
	for _, s := range m["count"] {
		if s.ID == r.Parent {
			first = s
		}
	}
	if first.ID == 0 || first.Start > r.Start || first.End < r.End {
		t.Errorf("round [%d,%d] not inside its slice [%d,%d]", r.Start, r.End, first.Start, first.End)
	}
}
