package omni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
	"github.com/omniflow-go/omniflow/sinks/memory"
)

// chromeProfiler writes sessions under a temporary folder.
func chromeProfiler(t testing.TB, opts ...profiler.Option) *profiler.Profiler {
	t.Helper()
	p, err := profiler.New(append([]profiler.Option{profiler.WithDir(t.TempDir()), profiler.WithSink(chrome.New())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func traceOf(t *testing.T, res profiler.Result) *chrometest.Trace {
	t.Helper()
	path := filepath.Join(res.Dir, chrome.DefaultFileName)
	if !slices.Contains(res.Files, path) {
		t.Fatalf("files %v lack %s", res.Files, path)
	}
	var man profiler.Manifest
	data, err := os.ReadFile(filepath.Join(res.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &man); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{chrome.DefaultFileName, "manifest.json", "summary.txt"} {
		if !slices.Contains(man.Files, f) {
			t.Errorf("manifest lists %v, not %s", man.Files, f)
		}
		if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
			t.Error(err)
		}
	}
	return chrometest.Validate(t, path)
}

// pid is a stage's process id in our Chrome traces.
func pid(stage int) int64 { return int64(stage) + 2 }

func count(tr *chrometest.Trace, f func(e *chrometest.Event) bool) int {
	n := 0
	for _, e := range tr.Slices() {
		if f(e) {
			n++
		}
	}
	return n
}

// TestProfileTrace: one session file with a named process per stage,
// iterations, layers and kernels on each stage, hand-off spans on the
// edges, and flow arrows following each request thinker → talker →
// vocoder.
func TestProfileTrace(t *testing.T) {
	ctx := context.Background()
	for _, streaming := range []bool{true, false} {
		t.Run(fmt.Sprintf("streaming=%v", streaming), func(t *testing.T) {
			e := newTestEngine(t, Config{Streaming: streaming, ChunkFrames: 6, Profiler: chromeProfiler(t)})
			if err := e.StartProfile(ctx); err != nil {
				t.Fatal(err)
			}
			prompts := []Prompt{{ID: "alpha", Text: "first"}, {ID: "beta", Text: "second one"}}
			if _, err := e.Generate(ctx, prompts, greedy(8)); err != nil {
				t.Fatal(err)
			}
			res, err := e.StopProfile(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tr := traceOf(t, res)
			for s, name := range stageNames {
				if got := tr.ProcessNames[pid(s)]; got != fmt.Sprintf("stage %d: %s", s, name) {
					t.Errorf("process %d is named %q", pid(s), got)
				}
			}
			for s, step := range []string{"thinker.step", "talker.step", "vocoder.chunk"} {
				if count(tr, func(e *chrometest.Event) bool { return e.Pid == pid(s) && e.Cat == "iteration" && e.Name == step }) == 0 {
					t.Errorf("no %s iterations", step)
				}
				if count(tr, func(e *chrometest.Event) bool { return e.Pid == pid(s) && e.Cat == "kernel" }) == 0 {
					t.Errorf("no kernels on stage %d", s)
				}
			}
			for s, name := range []string{"request → thinker", "thinker → talker", "talker → vocoder"} {
				if count(tr, func(e *chrometest.Event) bool { return e.Pid == pid(s) && e.Cat == "handoff" && e.Name == name }) == 0 {
					t.Errorf("no %q hand-offs on stage %d", name, s)
				}
			}
			checkHandoffs(t, tr)
			for _, id := range []string{"alpha", "beta"} {
				var hops []string
				for _, f := range tr.Flows {
					if f.Name == "request "+id {
						hops = append(hops, fmt.Sprintf("%d→%d", f.From.Pid-2, f.To.Pid-2))
					}
				}
				if !slices.Equal(hops, []string{"0→1", "1→2"}) {
					t.Errorf("request %s: arrows %v, want thinker → talker → vocoder", id, hops)
				}
			}
			if len(res.Stages) != len(stageNames) {
				t.Fatalf("stages %+v", res.Stages)
			}
			for i, name := range stageNames {
				st := res.Stages[i]
				if st.ID != i || st.Name != name || !st.Selected || st.Iterations < 1 || st.Recorded != uint64(st.Iterations) || st.Events == 0 {
					t.Errorf("stage %d: %+v, want %s selected with every iteration recorded", i, st, name)
				}
			}
		})
	}
}

// checkHandoffs: every hand-off span holds, on its lane, its queue wait
// from its start and its copy to its end, back to back, for its request;
// and each edge's hand-offs are there.
func checkHandoffs(t *testing.T, tr *chrometest.Trace) {
	t.Helper()
	edges := []string{"request → thinker", "thinker → talker", "talker → vocoder"}
	parts := map[chrometest.Lane][]*chrometest.Event{}
	for _, e := range tr.Slices() {
		if e.Cat == "handoff" && (e.Name == "queue" || e.Name == "copy") {
			parts[e.Lane()] = append(parts[e.Lane()], e)
		}
	}
	n := 0
	for _, h := range tr.Slices() {
		if h.Cat != "handoff" || !slices.Contains(edges, h.Name) {
			continue
		}
		n++
		if h.Pid != pid(slices.Index(edges, h.Name)) {
			t.Errorf("%q on process %d", h.Name, h.Pid)
		}
		var q, c *chrometest.Event
		for _, e := range parts[h.Lane()] {
			switch {
			case e.Name == "queue" && e.TS == h.TS && e.End() <= h.End():
				q = e
			case e.Name == "copy" && e.End() == h.End() && e.TS >= h.TS:
				c = e
			}
		}
		if q == nil || c == nil {
			t.Errorf("%q [%d, %d] on %v: queue %v, copy %v", h.Name, h.TS, h.End(), h.Lane(), q, c)
			continue
		}
		if q.End() != c.TS || q.Args["request"] != h.Args["request"] || c.Args["request"] != h.Args["request"] || h.Args["request"] == nil {
			t.Errorf("%q of %v: queue [%d, %d] of %v, copy [%d, %d] of %v", h.Name, h.Args["request"], q.TS, q.End(), q.Args["request"], c.TS, c.End(), c.Args["request"])
		}
		if ms, err := h.Args["queue_ms"].(json.Number).Float64(); err != nil || math.Abs(ms-float64(q.Dur)/1e6) > 1e-3 {
			t.Errorf("%q: queue_ms %v, the queue span %d ns", h.Name, h.Args["queue_ms"], q.Dur)
		}
	}
	if n == 0 {
		t.Error("no hand-off spans")
	}
	if len(parts) == 0 {
		t.Error("no queue or copy spans")
	}
}

// TestProfileStageSelection: a profile of stages 0 and 2 holds no stage-1
// span.
func TestProfileStageSelection(t *testing.T) {
	ctx := context.Background()
	e := newTestEngine(t, Config{Streaming: true, ChunkFrames: 5, Profiler: chromeProfiler(t)})
	if err := e.StartProfile(ctx, 0, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Generate(ctx, []Prompt{{Text: "selected"}}, greedy(6)); err != nil {
		t.Fatal(err)
	}
	res, err := e.StopProfile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr := traceOf(t, res)
	for s, want := range []bool{true, false, true} {
		n := count(tr, func(e *chrometest.Event) bool { return e.Pid == pid(s) })
		if (n > 0) != want {
			t.Errorf("stage %d has %d spans", s, n)
		}
	}
	for _, bad := range []int{3, -1} {
		if err := e.StartProfile(ctx, 0, bad); !errors.Is(err, profiler.ErrStage) || !strings.Contains(err.Error(), fmt.Sprintf("stage %d ", bad)) {
			t.Errorf("stage %d: %v, want an error naming it that wraps profiler.ErrStage", bad, err)
		}
	}
	if e.Profiler().Active() {
		t.Error("a refused StartProfile started a profile")
	}
}

// TestProfileMaxIters: with MAX_ITERS=1 a session records exactly one
// iteration per selected stage, stops and writes by itself, and a new
// session then starts and does the same. The profiler comes from the
// environment, as vLLM users set it.
func TestProfileMaxIters(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VLLM_TORCH_PROFILER_DIR", dir)
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "1")
	t.Setenv("OMNIFLOW_PROFILER_DIR", "")
	t.Setenv("OMNIFLOW_PROFILER_MAX_ITERS", "")
	t.Setenv("OMNIFLOW_PROFILER_DELAY_ITERS", "")
	t.Setenv("VLLM_PROFILER_DELAY_ITERS", "")
	ctx := context.Background()
	e, err := New(ctx, Config{Streaming: true, ChunkFrames: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	for round, stages := range [][]int{{0, 1, 2}, {0, 2}} {
		if err := e.StartProfile(ctx, stages...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, err := e.Generate(ctx, []Prompt{{Text: "iterate"}, {Text: "twice"}}, greedy(10)); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := e.WaitProfile(wctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if res.Reason != profiler.StopMaxIters || !strings.HasPrefix(res.Dir, dir) {
			t.Errorf("round %d: reason %q, folder %s", round, res.Reason, res.Dir)
		}
		tr := traceOf(t, res)
		for s := range 3 {
			n := count(tr, func(e *chrometest.Event) bool { return e.Pid == pid(s) && e.Cat == "iteration" })
			want := 0
			if slices.Contains(stages, s) {
				want = 1
			}
			if n != want {
				t.Errorf("round %d: stage %d recorded %d iterations, want %d", round, s, n, want)
			}
			// The result says how many iterations are in the trace, beside
			// how many ran while the session did.
			if i := slices.IndexFunc(res.Stages, func(st profiler.StageInfo) bool { return st.ID == s }); want > 0 && (i < 0 || res.Stages[i].Recorded != uint64(want)) {
				t.Errorf("round %d: stage %d: %+v, want %d recorded", round, s, res.Stages, want)
			}
		}
		// Collected by Wait: Stop has nothing more to report.
		if _, err := e.StopProfile(ctx); err != profiler.ErrNotStarted {
			t.Errorf("round %d: StopProfile after the automatic stop: %v", round, err)
		}
	}
}

// TestStopProfileDuringRequests: StopProfile while 50 requests are in
// flight returns complete files and neither drops nor delays any result:
// all 50 finish with the outputs they have without profiling.
func TestStopProfileDuringRequests(t *testing.T) {
	ctx := context.Background()
	e := newTestEngine(t, Config{Streaming: true, ChunkFrames: 4, Profiler: chromeProfiler(t)})
	params := func(i int) SamplingParams {
		p := sampled(uint64(i%5), 6)
		p.Audio.MaxCodecTokens = 8
		return p
	}
	want := make([]Result, 5)
	for i := range want {
		want[i] = solo(t, e, Prompt{Text: testPrompts[i]}, params(i))
	}
	if err := e.StartProfile(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 50
	got := make([]Result, n)
	errs := make([]error, n)
	var done atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := e.Generate(ctx, []Prompt{{ID: fmt.Sprintf("r%02d", i), Text: testPrompts[i%5]}}, params(i))
			if err == nil {
				got[i] = res[0]
			}
			errs[i] = err
			done.Add(1)
		})
	}
	for done.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	finishedAtStop := done.Load()
	res, err := e.StopProfile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	t.Logf("stopped with %d of %d requests finished: %d events, %d dropped", finishedAtStop, n, res.Events, res.Dropped)
	if finishedAtStop == n {
		t.Error("every request had finished before the stop")
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		want := want[i%5]
		want.ID = got[i].ID
		sameResult(t, fmt.Sprintf("request %d", i), got[i], want)
	}
	tr := traceOf(t, res)
	if len(tr.Flows) == 0 {
		t.Error("no flow arrows")
	}
}

// TestWaitingStageRecordsNothing: while no request is in flight, no stage
// records anything — no loop slice spans the idle time.
func TestWaitingStageRecordsNothing(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	p, err := profiler.New(profiler.WithSink(mem))
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, Config{Streaming: true, Profiler: p})
	if err := e.StartProfile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Generate(ctx, []Prompt{{Text: "before"}}, greedy(4)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the loops reach their waits
	idleFrom := profiler.Now()
	time.Sleep(150 * time.Millisecond)
	idleTo := profiler.Now()
	if _, err := e.Generate(ctx, []Prompt{{Text: "after"}}, greedy(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.StopProfile(ctx); err != nil {
		t.Fatal(err)
	}
	var ops int
	for _, r := range mem.Records() {
		if !r.Kind.IsSpan() || r.Stage < 0 {
			continue
		}
		if r.Kind == profiler.KindOperator && r.Request == "" {
			ops++
		}
		if r.Start < idleTo && r.End > idleFrom {
			t.Errorf("stage %d %s %q [%d, %d] overlaps the idle time [%d, %d]", r.Stage, r.Kind, r.Name, r.Start, r.End, idleFrom, idleTo)
		}
	}
	if ops == 0 {
		t.Error("no stage loop slices")
	}
}

// TestProfileStartedMidIteration: a session that starts while iterations
// are running records none of their work without them: every layer,
// kernel and request span of a stage loop lies inside a recorded
// iteration of that stage, with its iteration number. (The session
// starts while requests are decoding, so some stage is almost always in
// the middle of an iteration; it stops once they are done, when none is.)
func TestProfileStartedMidIteration(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	p, err := profiler.New(profiler.WithSink(mem))
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, Config{Streaming: true, ChunkFrames: 4, Profiler: p})
	for round := range 4 {
		st, err := e.Stream(ctx, Prompt{Text: "the first request"}, greedy(24))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Next(ctx); err != nil { // decoding has begun
			t.Fatal(err)
		}
		done := make(chan error, 3)
		for i := range 3 {
			go func() {
				_, err := e.Generate(ctx, []Prompt{{Text: testPrompts[i]}}, greedy(10+i))
				done <- err
			}()
		}
		if err := e.StartProfile(ctx); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		for {
			if _, err := st.Next(ctx); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.StopProfile(ctx); err != nil {
			t.Fatal(err)
		}
		recs := mem.Records()
		var iters []profiler.Record
		for _, r := range recs {
			if r.Kind == profiler.KindIteration {
				iters = append(iters, r)
			}
		}
		if len(iters) == 0 {
			t.Fatalf("round %d: no iterations recorded", round)
		}
		for _, r := range recs {
			if r.Stage < 0 || r.Lane != loopLane || !r.Kind.IsSpan() || r.Kind == profiler.KindIteration ||
				r.Kind == profiler.KindOperator && r.Request == "" { // scheduling slices lie between iterations
				continue
			}
			in := slices.ContainsFunc(iters, func(it profiler.Record) bool {
				// Request anchors are emitted with their times, no iteration number.
				return it.Stage == r.Stage && it.Lane == r.Lane && it.Start <= r.Start && r.End <= it.End &&
					(it.Iter == r.Iter || r.Kind == profiler.KindOperator)
			})
			if !in {
				t.Errorf("round %d: stage %d %s %q (request %q, iteration %d) [%d, %d] lies in no recorded iteration", round, r.Stage, r.Kind, r.Name, r.Request, r.Iter, r.Start, r.End)
			}
		}
	}
}

// blockingSink is a Chrome sink whose Shutdown waits until release is
// closed, having said so on entered: a stop stuck in its sink.
type blockingSink struct {
	profiler.Sink
	entered chan<- struct{}
	release <-chan struct{}
}

func (b *blockingSink) Shutdown(ctx context.Context) error {
	b.entered <- struct{}{}
	<-b.release
	return b.Sink.Shutdown(ctx)
}

func (b *blockingSink) Files() []string { return b.Sink.(profiler.FileSink).Files() }

// TestStopProfileNeverDelaysGeneration: while StopProfile is stuck in a
// sink's Shutdown, a generation still runs to its complete result (the
// same as without profiling); once the sink is released the stop returns
// complete files, holding the requests served before the stop and none
// served during it.
func TestStopProfileNeverDelaysGeneration(t *testing.T) {
	ctx := context.Background()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	factory := profiler.SinkFunc(func(ctx context.Context, info profiler.SessionInfo) (profiler.Sink, error) {
		sk, err := chrome.New().Open(ctx, info)
		if err != nil {
			return nil, err
		}
		return &blockingSink{Sink: sk, entered: entered, release: release}, nil
	})
	p, err := profiler.New(profiler.WithDir(t.TempDir()), profiler.WithSink(factory))
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, Config{Streaming: true, ChunkFrames: 4, Profiler: p})
	params := sampled(3, 8)
	want := solo(t, e, Prompt{Text: "during the stop"}, params)
	if err := e.StartProfile(ctx); err != nil {
		t.Fatal(err)
	}
	before := solo(t, e, Prompt{ID: "before", Text: "during the stop"}, params)
	sameResult(t, "request before the stop", before, want)

	type stopResult struct {
		res profiler.Result
		err error
	}
	stopped := make(chan stopResult, 1)
	released := false
	t.Cleanup(func() { // a failed test still ends the stop and its goroutine
		if !released {
			close(release)
			<-stopped
		}
	})
	go func() {
		res, err := e.StopProfile(ctx)
		stopped <- stopResult{res, err}
	}()
	<-entered // the stop is in the sink's Shutdown, and stays there
	res, err := e.Generate(ctx, []Prompt{{ID: "during", Text: "during the stop"}}, params)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
		t.Fatal("the stop returned before its sink finished")
	default:
	}
	if res[0].ID != "during" || res[0].Latency <= 0 || len(res[0].Audio) == 0 {
		t.Errorf("incomplete result during the stop: %+v", res[0])
	}
	sameResult(t, "request during the stop", res[0], want)

	close(release)
	released = true
	st := <-stopped
	if st.err != nil {
		t.Fatal(st.err)
	}
	tr := traceOf(t, st.res)
	var requests []string
	for _, ev := range tr.Slices() {
		if id, ok := ev.Args["request"].(string); ok && !slices.Contains(requests, id) {
			requests = append(requests, id)
		}
	}
	if !slices.Contains(requests, "before") || slices.Contains(requests, "during") {
		t.Errorf("the trace holds requests %v, want before and not during", requests)
	}
}
