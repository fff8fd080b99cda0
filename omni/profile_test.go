package omni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
			if !slices.Contains(res.Stages, profiler.StageInfo{ID: 0, Name: "thinker", Selected: true, Iterations: res.Stages[0].Iterations, Events: res.Stages[0].Events}) {
				t.Errorf("stages %+v", res.Stages)
			}
		})
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
