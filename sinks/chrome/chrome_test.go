package chrome_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeline runs requests through three stages the way the engine does:
// an encode activation, a denoise activation that pauses for input once
// and steps, and a decode activation on lane 1; plus host work outside any
// stage.
func pipeline(ctx context.Context, p *profiler.Profiler, reqs ...string) {
	hctx, host := p.Enter(ctx, profiler.Track{Stage: profiler.NoStage, LaneName: "main"}, "serve")
	_, sp := profiler.Start(hctx, "parse")
	sp.End()
	host.End(nil)
	for _, req := range reqs {
		ectx, enc := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "encode", LaneName: "text", Request: req}, "text_encoder",
			profiler.String("model", "t5"))
		c, m := profiler.Start(ectx, "t5.block", profiler.Int("layer", 0))
		_, k := profiler.StartKind(c, profiler.KindKernel, "matmul",
			profiler.Int("flops", 2_000_000), profiler.Int("bytes", 4096), profiler.Ints("shape", []int{2, 3}))
		spin()
		k.End()
		m.End()
		profiler.Counter(ectx, "queue_depth", 3)
		enc.End(nil)

		dctx, den := p.Enter(ctx, profiler.Track{Stage: 1, StageName: "denoise", LaneName: "loop", Request: req}, "denoise")
		for i := 0; i < 2; i++ {
			if i == 1 { // waits for its next input: the stage track shows a gap
				den.Pause()
				spin()
				den.Resume()
			}
			sctx, st := profiler.Step(dctx, "step")
			_, k := profiler.StartKind(sctx, profiler.KindKernel, "attention", profiler.Int("flops", 1_000_000))
			spin()
			k.End()
			st.End()
		}
		profiler.Event(dctx, "cfg_switch", profiler.Bool("guided", true))
		den.End(nil)

		vctx, dec := p.Enter(ctx, profiler.Track{Stage: 2, StageName: "decode", Lane: 1, LaneName: "vae", Request: req}, "vae_decode")
		_, k = profiler.StartKind(vctx, profiler.KindKernel, "conv2d", profiler.Int("flops", 3_000_000))
		spin()
		k.End()
		dec.End(nil)
	}
}

// spin lets the clock advance so that slices have a visible length.
func spin() {
	for t := profiler.Now(); profiler.Now()-t < 20_000; {
	}
}

func session(t *testing.T, run func(ctx context.Context, p *profiler.Profiler), opts ...chrome.Option) (profiler.Result, string) {
	t.Helper()
	ctx := context.Background()
	p, err := profiler.New(profiler.WithDir(t.TempDir()), profiler.WithSink(chrome.New(opts...)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, profiler.Name("test")); err != nil {
		t.Fatal(err)
	}
	run(ctx, p)
	res, err := p.Stop(ctx)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	path := filepath.Join(res.Dir, chrome.DefaultFileName)
	found := false
	for _, f := range res.Files {
		found = found || f == path
	}
	if !found {
		t.Fatalf("result files %v lack %s", res.Files, path)
	}
	return res, path
}

func TestSessionTrace(t *testing.T) {
	reqs := []string{"r0", "r1", "r2"}
	res, path := session(t, func(ctx context.Context, p *profiler.Profiler) { pipeline(ctx, p, reqs...) })
	tr := chrometest.Validate(t, path)

	wantProcs := map[int64]string{1: "host", 2: "stage 0: encode", 3: "stage 1: denoise", 4: "stage 2: decode"}
	for pid, name := range wantProcs {
		if got := tr.ProcessNames[pid]; got != name {
			t.Errorf("pid %d: process name %q, want %q", pid, got, name)
		}
	}
	wantThreads := map[chrometest.Lane]string{{Pid: 1, Tid: 1}: "main", {Pid: 2, Tid: 1}: "text", {Pid: 3, Tid: 1}: "loop", {Pid: 4, Tid: 2}: "vae"}
	for l, name := range wantThreads {
		if got := tr.ThreadNames[l]; got != name {
			t.Errorf("%+v: thread name %q, want %q", l, got, name)
		}
	}
	if len(tr.ProcessNames) != 4 || len(tr.ThreadNames) != 4 {
		t.Errorf("process names %v, thread names %v", tr.ProcessNames, tr.ThreadNames)
	}

	// Every record became one event of the right phase and category.
	if n := uint64(len(tr.Slices()) + len(tr.Phase("i")) + len(tr.Phase("C"))); n != res.Events {
		t.Errorf("%d slices, instants and counters for %d records", n, res.Events)
	}
	counts := map[string]int{}
	for _, e := range tr.Slices() {
		counts[e.Cat+"/"+e.Name]++
	}
	want := map[string]int{
		"operator/serve": 1, "module/parse": 1,
		"operator/text_encoder": 3, "module/t5.block": 3, "kernel/matmul": 3,
		"operator/denoise": 6, "iteration/step": 6, "kernel/attention": 6,
		"operator/vae_decode": 3, "kernel/conv2d": 3,
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d slices, want %d (all: %v)", k, counts[k], n, counts)
		}
	}

	// Args: request, iteration, span ids and attributes, shapes as arrays.
	for _, e := range tr.Named("matmul") {
		a := e.Args
		if a["request"] == nil || fmt.Sprint(a["flops"]) != "2000000" || fmt.Sprint(a["bytes"]) != "4096" ||
			fmt.Sprint(a["shape"]) != "[2 3]" || a["id"] == nil || a["parent"] == nil {
			t.Errorf("matmul args %v", a)
		}
		if _, ok := a["iter"]; ok {
			t.Errorf("matmul outside a step has an iter: %v", a)
		}
	}
	// Iterations count per stage, across activations: 0..5.
	iters := map[string]bool{}
	for _, e := range tr.Named("attention") {
		iters[fmt.Sprint(e.Args["iter"])] = true
	}
	if len(iters) != 6 || !iters["0"] || !iters["5"] {
		t.Errorf("attention iterations %v", iters)
	}
	if ev := tr.Named("cfg_switch"); len(ev) != 3 || ev[0].Ph != "i" || ev[0].Args["guided"] != true {
		t.Errorf("instants %+v", ev)
	}
	if c := tr.Named("queue_depth"); len(c) != 3 || c[0].Ph != "C" || fmt.Sprint(c[0].Args["value"]) != "3" {
		t.Errorf("counters %+v", c)
	}

	// Flows: encode -> denoise (first slice) and denoise (second slice) ->
	// decode for each request; the two denoise slices share a lane and get
	// no arrow between them.
	if len(tr.Flows) != 2*len(reqs) {
		t.Fatalf("%d flows, want %d", len(tr.Flows), 2*len(reqs))
	}
	perReq := map[string][]chrometest.Flow{}
	for _, f := range tr.Flows {
		if f.From == nil || f.To == nil || f.From.Cat != "operator" || f.To.Cat != "operator" {
			t.Fatalf("flow %s binds to %+v -> %+v", f.ID, f.From, f.To)
		}
		req := fmt.Sprint(f.From.Args["request"])
		if f.Name != "request "+req || fmt.Sprint(f.To.Args["request"]) != req {
			t.Errorf("flow %s named %q joins requests %v and %v", f.ID, f.Name, f.From.Args["request"], f.To.Args["request"])
		}
		perReq[req] = append(perReq[req], f)
	}
	for _, req := range reqs {
		fs := perReq[req]
		if len(fs) != 2 || fs[0].From.Name != "text_encoder" || fs[0].To.Name != "denoise" ||
			fs[1].From.Name != "denoise" || fs[1].To.Name != "vae_decode" || fs[0].To == fs[1].From {
			t.Errorf("request %s: flows %+v", req, fs)
		}
	}
	if fmt.Sprint(tr.OtherData["flows_written"]) != "6" || fmt.Sprint(tr.OtherData["flows_dropped"]) != "0" {
		t.Errorf("otherData %v", tr.OtherData)
	}
	if tr.OtherData["session"] != "test" || tr.OtherData["omniflow_version"] != profiler.Version {
		t.Errorf("otherData %v", tr.OtherData)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(tr.OtherData["started"])); err != nil {
		t.Errorf("otherData started: %v", err)
	}

	// Reading the trace back gives the profiler's own summary, exactly.
	ivs, err := chrome.ReadIntervalsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := profiler.Summarize(ivs)
	if len(got.Rows) != len(res.Summary.Rows) || got.Spans != res.Summary.Spans || got.SelfTotal != res.Summary.SelfTotal {
		t.Fatalf("summary from the file: %d rows %d spans self %v; profiler: %d rows %d spans self %v",
			len(got.Rows), got.Spans, got.SelfTotal, len(res.Summary.Rows), res.Summary.Spans, res.Summary.SelfTotal)
	}
	for i, r := range got.Rows {
		if w := res.Summary.Rows[i]; r != w {
			t.Errorf("row %d: from the file %+v, profiler %+v", i, r, w)
		}
	}
}

// TestConcurrentLanes records from many goroutines at once, each on its
// own lane, as a serving engine does.
func TestConcurrentLanes(t *testing.T) {
	const lanes, reqs = 8, 20
	_, path := session(t, func(ctx context.Context, p *profiler.Profiler) {
		var wg sync.WaitGroup
		for l := 0; l < lanes; l++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < reqs; r++ {
					req := fmt.Sprintf("req-%d", r)
					actx, a := p.Enter(ctx, profiler.Track{Stage: l % 3, StageName: "s", Lane: l, Request: req}, "op")
					for i := 0; i < 3; i++ {
						c, it := profiler.Step(actx, "step")
						_, k := profiler.StartKind(c, profiler.KindKernel, "k")
						k.End()
						it.End()
					}
					a.End(nil)
				}
			}()
		}
		wg.Wait()
	})
	tr := chrometest.Validate(t, path)
	if n := len(tr.Named("op")); n != lanes*reqs {
		t.Errorf("%d operator slices, want %d", n, lanes*reqs)
	}
	if len(tr.Flows) == 0 {
		t.Error("no flows between lanes")
	}
	for _, l := range []int64{1, 8} {
		if tr.ThreadNames[chrometest.Lane{Pid: 2, Tid: l}] == "" && l == 1 {
			t.Errorf("no thread name for lane 0")
		}
	}
	if got := tr.ThreadNames[chrometest.Lane{Pid: 2, Tid: 1}]; got != "lane 0" {
		t.Errorf("unnamed lane 0 is called %q", got)
	}
}

func info(dir string) profiler.SessionInfo {
	return profiler.SessionInfo{Name: "direct", Dir: dir, Started: time.Now(), StartedMono: profiler.Now()}
}

func open(t *testing.T, in profiler.SessionInfo, opts ...chrome.Option) *chrome.Sink {
	t.Helper()
	s, err := chrome.New(opts...).Open(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*chrome.Sink)
}

func op(in profiler.SessionInfo, stage, lane int32, req string, start, end int64) profiler.Record {
	return profiler.Record{Kind: profiler.KindOperator, Stage: stage, Lane: lane, Iter: -1, Name: "op", Request: req,
		Start: in.StartedMono + start, End: in.StartedMono + end}
}

func TestFileAppearsOnlyAfterShutdown(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := info(dir)
	s := open(t, in)
	final := filepath.Join(dir, chrome.DefaultFileName)
	if s.Path() != final {
		t.Errorf("Path %q, want %q", s.Path(), final)
	}
	if err := s.Export(ctx, []profiler.Record{op(in, 0, 0, "a", 10, 20)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("final file exists before Shutdown: %v", err)
	}
	// The trace and the operator slices held for Shutdown.
	tmp, _ := filepath.Glob(filepath.Join(dir, ".trace.json.gz.*.tmp"))
	if len(tmp) != 2 {
		t.Fatalf("temporary files %v, want two", tmp)
	}
	if f := s.Files(); len(f) != 0 {
		t.Errorf("Files before Shutdown: %v", f)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if f := s.Files(); len(f) != 1 || f[0] != final {
		t.Errorf("Files %v, want [%s]", f, final)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	if err := s.Export(ctx, []profiler.Record{op(in, 0, 0, "a", 30, 40)}); !errors.Is(err, chrome.ErrShutdown) {
		t.Errorf("Export after Shutdown: %v", err)
	}
	tr := chrometest.Validate(t, final)
	if len(tr.Slices()) != 1 {
		t.Errorf("%d slices", len(tr.Slices()))
	}
}

func TestShutdownFailureLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	in := info(dir)
	s := open(t, in)
	if err := s.Export(context.Background(), []profiler.Record{op(in, 0, 0, "a", 10, 20)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a cancelled context: %v", err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("files left after a failed Shutdown: %v", left)
	}
	if f := s.Files(); len(f) != 0 {
		t.Errorf("Files after a failed Shutdown: %v", f)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opts []chrome.Option
		dir  string
		want string
	}{
		{"no dir", nil, "", "use profiler.WithDir or set OMNIFLOW_PROFILER_DIR"},
		{"name with a folder", []chrome.Option{chrome.WithFileName("x/trace.json.gz")}, "tmp", "directory part"},
		{"empty name", []chrome.Option{chrome.WithFileName("")}, "tmp", "want a base name"},
		{"negative anchors", []chrome.Option{chrome.WithMaxFlowAnchors(-1)}, "tmp", "max flow anchors"},
		{"bad level", []chrome.Option{chrome.WithCompressionLevel(42)}, "tmp", "gzip level"},
		{"missing folder", nil, "missing", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			switch dir {
			case "tmp":
				dir = t.TempDir()
			case "missing":
				dir = filepath.Join(t.TempDir(), "gone")
			}
			_, err := chrome.New(tt.opts...).Open(ctx, info(dir))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// Through the profiler: Start reports it.
	p, err := profiler.New(profiler.WithSink(chrome.New()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err == nil || !strings.Contains(err.Error(), "profiler.WithDir") {
		t.Fatalf("Start without a directory: %v", err)
	}
}

func TestFileName(t *testing.T) {
	dir := t.TempDir()
	s := open(t, info(dir), chrome.WithFileName("run.json.gz"))
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr := chrometest.Validate(t, filepath.Join(dir, "run.json.gz"))
	if len(tr.Events) != 0 {
		t.Errorf("empty session has events: %+v", tr.Events)
	}
}

func TestRecordMapping(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := info(dir)
	s := open(t, in)
	recs := []profiler.Record{
		// Started 5 ms before the session: clipped to ts 1 µs, end kept.
		{Kind: profiler.KindHandoff, Stage: 3, Lane: 0, Iter: -1, Name: "handoff", ID: 1,
			Start: in.StartedMono - 5_000_000, End: in.StartedMono + 1_000_000},
		// Exact nanoseconds: ts 1000 µs + 1234.567 µs.
		{Kind: profiler.KindKernel, Stage: 0, Lane: 2, Iter: 4, Name: "k\"\n", ID: 7, Parent: 3,
			Start: in.StartedMono + 1_234_567, End: in.StartedMono + 1_234_567 + 1_500},
		// The stage's name arrives with a later record.
		{Kind: profiler.KindModule, Stage: 5, Lane: 0, Iter: -1, Name: "m", ID: 8,
			Start: in.StartedMono + 10, End: in.StartedMono + 20},
		{Kind: profiler.KindModule, Stage: 5, StageName: "late", Lane: 0, LaneName: "named later", Iter: -1, Name: "m", ID: 9,
			Start: in.StartedMono + 30, End: in.StartedMono + 40},
		{Kind: profiler.KindCounter, Stage: 0, Lane: 2, Name: "nan", Value: nanValue(), Start: in.StartedMono + 50},
	}
	recs[1].Attrs[0] = profiler.String("id", "user id")
	recs[1].Attrs[1] = profiler.Float64("ratio", 0.5)
	recs[1].NumAttrs = 2
	if err := s.Export(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tr := chrometest.Validate(t, s.Path())
	h := tr.Named("handoff")[0]
	if h.TS != 1000 || h.End() != 2_000_000 || h.Cat != "handoff" || h.Pid != 5 || h.Tid != 1 {
		t.Errorf("handoff %+v", h)
	}
	k := tr.Named("k\"\n")[0]
	if k.TS != 2_234_567 || k.Dur != 1_500 || k.Pid != 2 || k.Tid != 3 {
		t.Errorf("kernel %+v", k)
	}
	if fmt.Sprint(k.Args["iter"]) != "4" || fmt.Sprint(k.Args["id"]) != "7" || fmt.Sprint(k.Args["parent"]) != "3" ||
		k.Args["attr.id"] != "user id" || fmt.Sprint(k.Args["ratio"]) != "0.5" {
		t.Errorf("kernel args %v", k.Args)
	}
	if tr.ProcessNames[7] != "stage 5: late" || tr.ThreadNames[chrometest.Lane{Pid: 7, Tid: 1}] != "named later" {
		t.Errorf("late names: %v %v", tr.ProcessNames, tr.ThreadNames)
	}
	if tr.ProcessNames[2] != "stage 0" || tr.ThreadNames[chrometest.Lane{Pid: 2, Tid: 3}] != "lane 2" {
		t.Errorf("default names: %v %v", tr.ProcessNames, tr.ThreadNames)
	}
	if len(tr.Phase("C")) != 0 || fmt.Sprint(tr.OtherData["counter_samples_skipped"]) != "1" {
		t.Errorf("NaN counter written: %v", tr.OtherData)
	}
}

func nanValue() float64 { var z float64; return z / z }

func TestFlowCap(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := info(dir)
	s := open(t, in, chrome.WithMaxFlowAnchors(4))
	// a: two slices on two stages, held. b: two held, its third is over the
	// cap, so b draws no arrows. c: over the cap from the start.
	err := s.Export(ctx, []profiler.Record{
		op(in, 0, 0, "a", 10, 20), op(in, 1, 0, "a", 30, 40),
		op(in, 0, 0, "b", 50, 60), op(in, 1, 0, "b", 70, 80),
		op(in, 2, 0, "b", 90, 100),
		op(in, 0, 0, "c", 110, 120), op(in, 1, 0, "c", 130, 140),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tr := chrometest.Validate(t, s.Path())
	var names []string
	for _, f := range tr.Flows {
		names = append(names, f.Name)
	}
	if fmt.Sprint(names) != "[request a]" {
		t.Errorf("flows %v", names)
	}
	if n := len(tr.Slices()); n != 7 {
		t.Errorf("%d slices written, want all 7", n)
	}
	od := tr.OtherData
	// Written: a's. Dropped: b's three slices and c's two; requests b and c.
	if fmt.Sprintf("%v %v %v", od["flows_written"], od["flows_dropped"], od["flow_requests_dropped"]) != "1 5 2" {
		t.Errorf("otherData %v", od)
	}
}

// TestFlowFileOrder exports a request's later slice before its earlier
// one, as the profiler's shards may: the trace must still have the source
// slice first, for DevTools.
func TestFlowFileOrder(t *testing.T) {
	ctx := context.Background()
	in := info(t.TempDir())
	s := open(t, in)
	if err := s.Export(ctx, []profiler.Record{op(in, 2, 0, "r", 500, 600), op(in, 1, 3, "r", 300, 400)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, []profiler.Record{op(in, 0, 0, "r", 100, 700)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tr := chrometest.Validate(t, s.Path())
	if len(tr.Flows) != 2 {
		t.Fatalf("%d flows, want 2", len(tr.Flows))
	}
	for i, want := range [][2]int64{{2, 3}, {3, 4}} { // pids: stage 0 -> 1 -> 2
		f := tr.Flows[i]
		if f.From.Pid != want[0] || f.To.Pid != want[1] {
			t.Errorf("flow %d: pid %d -> %d", i, f.From.Pid, f.To.Pid)
		}
	}
}

// Two stages that stream to each other alternate: each pauses while it
// waits for the other. The request's arrows go forward through the
// pipeline (encode -> producer -> consumer), each from the latest slice
// before the next stage begins, not back and forth between the slices.
func TestFlowsFollowStreamingStagesForward(t *testing.T) {
	ctx := context.Background()
	in := info(t.TempDir())
	s := open(t, in)
	recs := []profiler.Record{
		op(in, 0, 0, "r", 10, 20),  // encode
		op(in, 1, 0, "r", 30, 40),  // producer, chunk 0
		op(in, 1, 0, "r", 50, 60),  // producer, chunk 1
		op(in, 2, 0, "r", 65, 70),  // consumer, chunk 0
		op(in, 1, 0, "r", 75, 80),  // producer, chunk 2
		op(in, 2, 0, "r", 85, 90),  // consumer, chunk 1
		op(in, 2, 0, "r", 95, 100), // consumer, chunk 2
	}
	if err := s.Export(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tr := chrometest.Validate(t, s.Path())
	if len(tr.Flows) != 2 {
		t.Fatalf("%d flows, want 2 (encode -> producer -> consumer)", len(tr.Flows))
	}
	want := []struct{ fromPid, toPid, fromTS, toTS int64 }{
		{2, 3, 10, 30}, // into the producer's first slice
		{3, 4, 50, 65}, // from the producer's latest slice before the consumer's first
	}
	base := tr.Flows[0].From.TS - 10 // the encode slice starts at +10 ns
	for i, w := range want {
		f := tr.Flows[i]
		if f.From.Pid != w.fromPid || f.To.Pid != w.toPid || f.From.TS-base != w.fromTS || f.To.TS-base != w.toTS {
			t.Errorf("flow %d: pid %d at +%d ns -> %d at +%d ns, want %d at +%d -> %d at +%d", i,
				f.From.Pid, f.From.TS-base, f.To.Pid, f.To.TS-base, w.fromPid, w.fromTS, w.toPid, w.toTS)
		}
	}
}

func TestFlowsDisabled(t *testing.T) {
	_, path := session(t, func(ctx context.Context, p *profiler.Profiler) { pipeline(ctx, p, "r") }, chrome.WithMaxFlowAnchors(0))
	tr := chrometest.Validate(t, path)
	if len(tr.Flows) != 0 || len(tr.Phase("s")) != 0 {
		t.Errorf("flows with WithMaxFlowAnchors(0): %d", len(tr.Flows))
	}
}

// TestCheckCatchesBadTraces makes sure the validator the other packages
// rely on does reject what it promises to reject.
func TestCheckCatchesBadTraces(t *testing.T) {
	const meta = `{"ph":"M","name":"process_name","pid":1,"tid":0,"args":{"name":"p"}},` +
		`{"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"t"}},` +
		`{"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"u"}}`
	wrap := func(evs string) string {
		return `{"displayTimeUnit":"ms","traceEvents":[` + meta + evs + `],"otherData":{}}`
	}
	x := func(tid int, name string, ts, dur string) string {
		return fmt.Sprintf(`,{"ph":"X","cat":"operator","name":%q,"pid":1,"tid":%d,"ts":%s,"dur":%s}`, name, tid, ts, dur)
	}
	tests := []struct {
		name, trace, want string
	}{
		{"good", wrap(x(1, "a", "1", "10") + x(1, "b", "2", "3") + x(2, "c", "5", "1") +
			`,{"ph":"s","cat":"operator","name":"r","id":1,"pid":1,"tid":1,"ts":1}` +
			`,{"ph":"f","bp":"e","cat":"operator","name":"r","id":1,"pid":1,"tid":2,"ts":5}`), ""},
		{"array form", `[` + meta + `]`, "object form"},
		{"zero ts", wrap(x(1, "a", "0", "1")), "ts must be present and > 0"},
		{"four decimals", wrap(x(1, "a", "1.2345", "1")), "at most 3 decimals"},
		{"partial overlap", wrap(x(1, "a", "1", "10") + x(1, "b", "5", "10")), "partly overlaps"},
		{"no thread name", wrap(x(3, "a", "1", "1")), "no thread_name"},
		{"unpaired flow", wrap(x(1, "a", "1", "10") + `,{"ph":"s","cat":"operator","name":"r","id":1,"pid":1,"tid":1,"ts":1}`), "want one of each"},
		{"unbound flow", wrap(x(1, "a", "1", "10") + x(2, "c", "5", "1") +
			`,{"ph":"s","cat":"operator","name":"r","id":1,"pid":1,"tid":1,"ts":2}` +
			`,{"ph":"f","bp":"e","cat":"operator","name":"r","id":1,"pid":1,"tid":2,"ts":5}`), "binds to no slice"},
		{"source after destination in the file", wrap(x(2, "c", "5", "1") + x(1, "a", "1", "10") +
			`,{"ph":"s","cat":"operator","name":"r","id":1,"pid":1,"tid":1,"ts":1}` +
			`,{"ph":"f","bp":"e","cat":"operator","name":"r","id":1,"pid":1,"tid":2,"ts":5}`), "comes after its destination"},
		{"backwards flow", wrap(x(1, "a", "1", "10") + x(2, "c", "5", "1") +
			`,{"ph":"s","cat":"operator","name":"r","id":1,"pid":1,"tid":2,"ts":5}` +
			`,{"ph":"f","bp":"e","cat":"operator","name":"r","id":1,"pid":1,"tid":1,"ts":1}`), "back in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chrometest.Check(strings.NewReader(tt.trace))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check: %v, want %q", err, tt.want)
			}
		})
	}
}
