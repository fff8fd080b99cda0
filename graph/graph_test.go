package graph_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/graph"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
	"github.com/omniflow-go/omniflow/tensor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// op builds an operator from ports and a function.
func op(name string, ins, outs []graph.Port, run func(ctx context.Context, io *graph.IO) error) graph.Operator {
	return graph.OperatorFunc(graph.Contract{Name: name, Inputs: ins, Outputs: outs}, run)
}

func ports(p ...graph.Port) []graph.Port { return p }

// addOne reads int "x" and writes x+1 to "y".
func addOne() graph.Operator {
	return op("add_one", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			v, err := io.Get("x")
			if err != nil {
				return err
			}
			return io.Put("y", v.(int)+1)
		})
}

func TestBuildReportsEverythingAtOnce(t *testing.T) {
	f32 := func(dims ...string) graph.Type { return graph.Tensor(tensor.Float32, dims...) }
	g := graph.New("broken")
	in := g.Input("prompt", graph.Text())
	a := g.Add("a", op("enc", ports(graph.In("text", graph.Text())), ports(graph.Out("emb", f32("B", "T", "768"))), nil))
	b := g.Add("b", op("dit", ports(graph.In("cond", f32("B", "T", "1024")), graph.In("lat", f32("B", "C"))), ports(graph.Out("out", f32("B", "C"))), nil))
	c := g.Add("c", op("vae", ports(graph.In("z", graph.Tensor(tensor.Float16, "B", "C")), graph.In("w", graph.Image())), ports(graph.Out("img", graph.Image())), nil))
	d := g.Add("d", op("loop", ports(graph.In("x", graph.Any()), graph.In("need", graph.Any())), ports(graph.Out("y", graph.Any())), nil))
	e := g.Add("e", op("loop", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())), nil))
	f := g.Add("f", op("rank", ports(graph.In("x", f32("B", "T", "D"))), nil, nil))
	s := g.Add("s", op("streamer", nil, ports(graph.StreamOut("tok", graph.Tokens())), nil))
	v := g.Add("v", op("valuer", ports(graph.In("tok", graph.Tokens())), nil, nil))
	g.Add("a", addOne()) // duplicate name
	g.Connect(in, a.In("text"))
	g.Connect(a.Out("emb"), b.In("cond")) // 768 vs 1024
	g.Connect(b.Out("out"), c.In("z"))    // f32 vs f16
	g.Connect(c.Out("img"), b.In("lat"))  // image vs tensor kind
	g.Connect(a.Out("emb"), c.In("nope")) // unknown port
	g.Connect(d.Out("y"), e.In("x"))      // cycle d -> e -> d
	g.Connect(e.Out("y"), d.In("x"))      //
	g.Connect(b.Out("out"), f.In("x"))    // rank 2 vs 3
	g.Connect(s.Out("tok"), v.In("tok"))  // stream into value
	g.Connect(in, a.In("text"))           // connected twice
	_, err := g.Build()
	if err == nil {
		t.Fatal("Build accepted a broken graph")
	}
	msg := err.Error()
	for _, want := range []string{
		`node "a": duplicate name`,
		`dim 2 (768 vs 1024) cannot unify: 768`,
		`b.out -> c.z: dtype float32 does not match float16`,
		`c.img -> b.lat: kind image does not match tensor`,
		`no input port "nope" (has z, w)`,
		`cycle: d -> e -> d`,
		`rank 2 [B,C] does not match rank 3 [B,T,D]`,
		`s.tok -> v.tok: a stream output feeds a value input`,
		`node "c" (vae): required input "w" is not connected`,
		`node "d" (loop): required input "need" is not connected`,
		`input "text" connected twice`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Build error lacks %q:\n%s", want, msg)
		}
	}
}

func TestDimsUnifyAcrossEdges(t *testing.T) {
	f32 := func(dims ...string) graph.Type { return graph.Tensor(tensor.Float32, dims...) }
	nop := func(ctx context.Context, io *graph.IO) error { return nil }
	// D is bound to 64 by a's output through b (which calls it E), and c
	// declares 32 for the same dimension: the conflict crosses two edges.
	g := graph.New("dims")
	a := g.Add("a", op("a", nil, ports(graph.Out("x", f32("B", "64"))), nop))
	b := g.Add("b", op("b", ports(graph.In("x", f32("B", "E"))), ports(graph.Out("y", f32("B", "E"))), nop))
	c := g.Add("c", op("c", ports(graph.In("y", f32("_", "32"))), nil, nop))
	g.Connect(a.Out("x"), b.In("x"))
	g.Connect(b.Out("y"), c.In("y"))
	_, err := g.Build()
	if err == nil || !strings.Contains(err.Error(), "64 (from a.x[1]) vs 32 (from c.y[1])") {
		t.Fatalf("want a dims conflict naming both origins, got %v", err)
	}
	// Consistent symbols build fine.
	g = graph.New("dims-ok")
	a = g.Add("a", op("a", nil, ports(graph.Out("x", f32("B", "64"))), nop))
	b = g.Add("b", op("b", ports(graph.In("x", f32("B", "E"))), ports(graph.Out("y", f32("B", "E"))), nop))
	c = g.Add("c", op("c", ports(graph.In("y", f32("_", "64"))), nil, nop))
	g.Connect(a.Out("x"), b.In("x"))
	g.Connect(b.Out("y"), c.In("y"))
	if _, err := g.Build(); err != nil {
		t.Fatal(err)
	}
}

func chain(t *testing.T, opts ...graph.BuildOption) *graph.Plan {
	t.Helper()
	g := graph.New("chain")
	x := g.Input("x", graph.Any())
	a := g.Add("a", addOne(), graph.Stage(0, "first"))
	b := g.Add("b", addOne(), graph.Stage(1, "second"))
	c := g.Add("c", addOne(), graph.Stage(2, "third"))
	must(t, g.Connect(x, a.In("x")))
	must(t, g.Connect(a.Out("y"), b.In("x")))
	must(t, g.Connect(b.Out("y"), c.In("x")))
	must(t, g.Output("y", c.Out("y")))
	must(t, g.Output("mid", a.Out("y")))
	p, err := g.Build(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRun(t *testing.T) {
	p := chain(t)
	res, err := p.Run(context.Background(), graph.Feeds{"x": 10})
	if err != nil {
		t.Fatal(err)
	}
	if res["y"] != 13 || res["mid"] != 11 {
		t.Fatalf("results %v", res)
	}
	if got := len(p.Stages()); got != 3 {
		t.Errorf("%d stages", got)
	}
}

func TestFeedErrors(t *testing.T) {
	p := chain(t)
	_, err := p.Run(context.Background(), graph.Feeds{"z": 1})
	if err == nil || !strings.Contains(err.Error(), `missing feed "x"`) || !strings.Contains(err.Error(), `unknown feed "z"`) {
		t.Fatalf("err %v", err)
	}
	if _, err := p.Run(context.Background(), graph.Feeds{"x": nil}); err == nil || !strings.Contains(err.Error(), `feed "x" is nil`) {
		t.Fatalf("nil feed: %v", err)
	}
}

func TestErrorNamesNodeAndCancelsTheRest(t *testing.T) {
	boom := errors.New("boom")
	slowStarted := make(chan struct{})
	var slowErr error
	g := graph.New("fail")
	x := g.Input("x", graph.Any())
	bad := g.Add("bad", op("exploder", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			<-slowStarted
			return boom
		}))
	slow := g.Add("slow", op("waiter", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			close(slowStarted)
			<-ctx.Done() // only cancellation ends this
			slowErr = context.Cause(ctx)
			return ctx.Err()
		}))
	join := g.Add("join", op("join", ports(graph.In("a", graph.Any()), graph.In("b", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			a, err := io.Get("a")
			if err != nil {
				return err
			}
			return io.Put("y", a)
		}))
	must(t, g.Connect(x, bad.In("x")))
	must(t, g.Connect(x, slow.In("x")))
	must(t, g.Connect(bad.Out("y"), join.In("a")))
	must(t, g.Connect(slow.Out("y"), join.In("b")))
	must(t, g.Output("y", join.Out("y")))
	p, err := g.Build()
	must(t, err)
	_, err = p.Run(context.Background(), graph.Feeds{"x": 1})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `node "bad" (exploder)`) {
		t.Fatalf("err %v", err)
	}
	if !errors.Is(slowErr, boom) {
		t.Errorf("the slow node was not cancelled with the first error: %v", slowErr)
	}
}

func TestPanicBecomesError(t *testing.T) {
	g := graph.New("panic")
	x := g.Input("x", graph.Any())
	n := g.Add("crash", op("crasher", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			var m map[string]int
			m["x"] = 1 // assignment to a nil map
			return nil
		}))
	must(t, g.Connect(x, n.In("x")))
	must(t, g.Output("y", n.Out("y")))
	p, err := g.Build()
	must(t, err)
	_, err = p.Run(context.Background(), graph.Feeds{"x": 1})
	if err == nil || !strings.Contains(err.Error(), `node "crash" (crasher): panic: assignment to entry in nil map`) {
		t.Fatalf("err %v", err)
	}
}

func TestMissingOutputIsAnError(t *testing.T) {
	g := graph.New("lazy")
	x := g.Input("x", graph.Any())
	n := g.Add("lazy", op("lazy", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error { return nil }))
	must(t, g.Connect(x, n.In("x")))
	must(t, g.Output("y", n.Out("y")))
	p, err := g.Build()
	must(t, err)
	_, err = p.Run(context.Background(), graph.Feeds{"x": 1})
	if err == nil || !strings.Contains(err.Error(), `node "lazy" (lazy): Run returned without writing output(s) [y]`) {
		t.Fatalf("err %v", err)
	}
}

func TestCancellationStopsRunPromptly(t *testing.T) {
	started := make(chan struct{})
	g := graph.New("cancel")
	x := g.Input("x", graph.Any())
	n := g.Add("block", op("blocker", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}))
	must(t, g.Connect(x, n.In("x")))
	must(t, g.Output("y", n.Out("y")))
	p, err := g.Build()
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err = p.Run(ctx, graph.Feeds{"x": 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

// A Run whose context is already cancelled fails with the context's error
// (not with the session's own "closed"), every time.
func TestRunWithCancelledContext(t *testing.T) {
	p := chain(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("caller gave up")
	cancel(cause)
	for i := range 50 {
		_, err := p.Run(ctx, graph.Feeds{"x": 1})
		if !errors.Is(err, context.Canceled) || errors.Is(err, graph.ErrClosed) {
			t.Fatalf("run %d: err %v, want context.Canceled", i, err)
		}
	}
}

// TestPipelining proves that a session overlaps requests across stages:
// stage b holds request 1 until stage a has started request 2, which a
// sequential engine would never do (the test would time out instead).
func TestPipelining(t *testing.T) {
	aStarted2 := make(chan struct{})
	g := graph.New("pipe")
	x := g.Input("x", graph.Any())
	a := g.Add("a", op("a", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			v, _ := io.Get("x")
			if v == 2 {
				close(aStarted2)
			}
			return io.Put("y", v)
		}), graph.Stage(0, "a"))
	b := g.Add("b", op("b", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			v, _ := io.Get("x")
			if v == 1 {
				select {
				case <-aStarted2:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return io.Put("y", v)
		}), graph.Stage(1, "b"))
	must(t, g.Connect(x, a.In("x")))
	must(t, g.Connect(a.Out("y"), b.In("x")))
	must(t, g.Output("y", b.Out("y")))
	p, err := g.Build()
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := p.Serve(ctx)
	must(t, err)
	r1, err := s.Submit(ctx, graph.Feeds{"x": 1})
	must(t, err)
	r2, err := s.Submit(ctx, graph.Feeds{"x": 2})
	must(t, err)
	for i, r := range []*graph.Request{r1, r2} {
		res, err := r.Wait(ctx)
		if err != nil || res["y"] != i+1 {
			t.Fatalf("request %d: %v %v", i+1, res, err)
		}
	}
	must(t, s.Close(ctx))
}

// TestStreamDeliversChunksAsProduced: the producer sends chunk k+1 only
// after the consumer has taken chunk k, so a stream that waited for the end
// of the producer would deadlock.
func TestStreamDeliversChunksAsProduced(t *testing.T) {
	ack := make(chan int)
	g := graph.New("stream")
	x := g.Input("n", graph.Any())
	prod := g.Add("prod", op("producer", ports(graph.In("n", graph.Any())), ports(graph.StreamOut("tok", graph.Tokens())),
		func(ctx context.Context, io *graph.IO) error {
			n, _ := io.Get("n")
			for i := 0; i < n.(int); i++ {
				if err := io.Send("tok", i); err != nil {
					return err
				}
				select {
				case got := <-ack:
					if got != i {
						return fmt.Errorf("ack %d for chunk %d", got, i)
					}
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}))
	cons := g.Add("cons", op("consumer", ports(graph.StreamIn("tok", graph.Tokens())), ports(graph.StreamOut("out", graph.Tokens())),
		func(ctx context.Context, io *graph.IO) error {
			for {
				v, err := io.Recv("tok")
				if err != nil {
					return ignoreEOF(err)
				}
				ack <- v.(int)
				if err := io.Send("out", v.(int)*10); err != nil {
					return err
				}
			}
		}))
	must(t, g.Connect(x, prod.In("n")))
	must(t, g.Connect(prod.Out("tok"), cons.In("tok")))
	must(t, g.Output("out", cons.Out("out")))
	p, err := g.Build()
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := p.Serve(ctx)
	must(t, err)
	r, err := s.Submit(ctx, graph.Feeds{"n": 5})
	must(t, err)
	var got []int
	for {
		c, err := r.Next(ctx)
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatal(err)
			}
			break
		}
		if c.Output != "out" {
			t.Fatalf("chunk from %q", c.Output)
		}
		got = append(got, c.Value.(int))
	}
	res, err := r.Wait(ctx)
	must(t, err)
	if fmt.Sprint(got) != "[0 10 20 30 40]" || len(res["out"].([]any)) != 0 {
		t.Fatalf("chunks %v, leftover %v", got, res["out"])
	}
	must(t, s.Close(ctx))
}

func ignoreEOF(err error) error {
	if err != nil && err.Error() == "EOF" {
		return nil
	}
	return err
}

func TestCloseDrainsInFlightRequests(t *testing.T) {
	p := chain(t, graph.WithBuffer(2))
	ctx := context.Background()
	s, err := p.Serve(ctx)
	must(t, err)
	var reqs []*graph.Request
	for i := 0; i < 20; i++ {
		r, err := s.Submit(ctx, graph.Feeds{"x": i}, graph.RequestID(fmt.Sprintf("r%d", i)))
		must(t, err)
		reqs = append(reqs, r)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close(ctx) }()
	for i, r := range reqs {
		res, err := r.Wait(ctx)
		if err != nil || res["y"] != i+3 {
			t.Fatalf("request %d: %v %v", i, res, err)
		}
	}
	must(t, <-done)
	if _, err := s.Submit(ctx, graph.Feeds{"x": 1}); !errors.Is(err, graph.ErrClosed) {
		t.Fatalf("Submit after Close: %v", err)
	}
}

func TestCloseWithExpiredContextCancels(t *testing.T) {
	started := make(chan struct{}, 1)
	g := graph.New("stuck")
	x := g.Input("x", graph.Any())
	n := g.Add("stuck", op("stuck", ports(graph.In("x", graph.Any())), ports(graph.Out("y", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}))
	must(t, g.Connect(x, n.In("x")))
	must(t, g.Output("y", n.Out("y")))
	p, err := g.Build()
	must(t, err)
	s, err := p.Serve(context.Background())
	must(t, err)
	r, err := s.Submit(context.Background(), graph.Feeds{"x": 1})
	must(t, err)
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
	<-r.Done()
	if r.Err() == nil {
		t.Fatal("request in flight succeeded after a cancelled Close")
	}
}

type lifecycleOp struct {
	name     string
	openErr  error
	panicAt  string // "open" or "close": panic there
	log      *[]string
	mu       *sync.Mutex
	contract graph.Contract
}

func (o *lifecycleOp) Contract() graph.Contract { return o.contract }
func (o *lifecycleOp) Run(ctx context.Context, io *graph.IO) error {
	v, err := io.Get("x")
	if err != nil {
		return err
	}
	return io.Put("y", v)
}
func (o *lifecycleOp) Open(context.Context) error {
	o.mu.Lock()
	*o.log = append(*o.log, "open "+o.name)
	o.mu.Unlock()
	if o.panicAt == "open" {
		panic("open " + o.name + " exploded")
	}
	return o.openErr
}
func (o *lifecycleOp) Close() error {
	o.mu.Lock()
	*o.log = append(*o.log, "close "+o.name)
	o.mu.Unlock()
	if o.panicAt == "close" {
		panic("close " + o.name + " exploded")
	}
	return nil
}

func TestOpenCloseLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failAt  int
		panicAt string
		wantErr string
		wantLog string
	}{
		{"all open", -1, "", "", "open a,open b,open c,close c,close b,close a"},
		{"second fails", 1, "", `node "b" (life): open: no weights`, "open a,open b,close a"},
		{"second panics in open", 1, "open", `node "b" (life): open: panic: open b exploded`, "open a,open b,close a"},
		{"second panics in close", 1, "close", `close b: panic: close b exploded`, "open a,open b,open c,close c,close b,close a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			var mu sync.Mutex
			g := graph.New("life")
			x := g.Input("x", graph.Any())
			prev := x
			var last *graph.Node
			for i, name := range []string{"a", "b", "c"} {
				o := &lifecycleOp{name: name, log: &log, mu: &mu, contract: graph.Contract{Name: "life",
					Inputs: ports(graph.In("x", graph.Any())), Outputs: ports(graph.Out("y", graph.Any()))}}
				if i == tc.failAt {
					if tc.panicAt == "" {
						o.openErr = errors.New("no weights")
					}
					o.panicAt = tc.panicAt
				}
				last = g.Add(name, o)
				must(t, g.Connect(prev, last.In("x")))
				prev = last.Out("y")
			}
			must(t, g.Output("y", last.Out("y")))
			p, err := g.Build()
			must(t, err)
			_, err = p.Run(context.Background(), graph.Feeds{"x": 1})
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
			}
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(log, ","); got != tc.wantLog {
				t.Errorf("log %s, want %s", got, tc.wantLog)
			}
		})
	}
}

// recordingHook logs hook calls; its pause signal lets a test know a node
// is blocked.
type recordingHook struct {
	mu       sync.Mutex
	starts   []string
	ends     []string
	handoffs []graph.HandoffEvent
	paused   chan string
}

type recSpan struct {
	h  *recordingHook
	ev graph.NodeEvent
}

func (h *recordingHook) NodeStart(ctx context.Context, ev graph.NodeEvent) (context.Context, graph.NodeSpan) {
	h.mu.Lock()
	h.starts = append(h.starts, ev.Node+"/"+ev.Request)
	h.mu.Unlock()
	return ctx, &recSpan{h, ev}
}
func (h *recordingHook) Handoff(ctx context.Context, ev graph.HandoffEvent) {
	h.mu.Lock()
	h.handoffs = append(h.handoffs, ev)
	h.mu.Unlock()
}
func (s *recSpan) Pause() {
	if s.h.paused != nil {
		select {
		case s.h.paused <- s.ev.Node:
		default:
		}
	}
}
func (s *recSpan) Resume() {}
func (s *recSpan) End(err error) {
	s.h.mu.Lock()
	s.h.ends = append(s.h.ends, fmt.Sprintf("%s/%s:%v", s.ev.Node, s.ev.Request, err))
	s.h.mu.Unlock()
}

func TestHooksSeeNodesAndHandoffs(t *testing.T) {
	h := &recordingHook{}
	p := chain(t, graph.WithHook(h))
	ctx := context.Background()
	s, err := p.Serve(ctx)
	must(t, err)
	r, err := s.Submit(ctx, graph.Feeds{"x": 1}, graph.RequestID("q"))
	must(t, err)
	_, err = r.Wait(ctx)
	must(t, err)
	must(t, s.Close(ctx))
	if got := strings.Join(h.starts, ","); got != "a/q,b/q,c/q" {
		t.Errorf("starts %s", got)
	}
	if got := strings.Join(h.ends, ","); got != "a/q:<nil>,b/q:<nil>,c/q:<nil>" {
		t.Errorf("ends %s", got)
	}
	if len(h.handoffs) != 3 {
		t.Fatalf("handoffs %+v", h.handoffs)
	}
	for _, ev := range h.handoffs {
		if ev.Sent <= 0 || ev.Received < ev.Sent || ev.To.Request != "q" {
			t.Errorf("handoff %+v", ev)
		}
	}
	if h.handoffs[1].From != "a" || h.handoffs[1].To.Node != "b" || h.handoffs[1].FromStage != 0 || h.handoffs[1].To.Stage != 1 {
		t.Errorf("handoff a->b: %+v", h.handoffs[1])
	}
}

// TestStageRecordsOnlyWhileExecuting: the consumer blocks on its stream
// before each chunk; its operator slices must not cover the moments the
// chunks were sent (taken after the consumer was seen blocked).
func TestStageRecordsOnlyWhileExecuting(t *testing.T) {
	mem := memory.New()
	prof, err := profiler.New(profiler.WithSink(mem))
	must(t, err)
	h := &recordingHook{paused: make(chan string, 1)}
	var sendTimes []int64
	const chunks = 4
	g := graph.New("wait")
	x := g.Input("x", graph.Any())
	prod := g.Add("talker", op("talker", ports(graph.In("x", graph.Any())), ports(graph.StreamOut("codes", graph.Tokens())),
		func(ctx context.Context, io *graph.IO) error {
			if _, err := io.Get("x"); err != nil {
				return err
			}
			for i := 0; i < chunks; i++ {
				// Wait until the vocoder blocks for this chunk (it starts
				// its activation only when the first chunk is there).
				for i > 0 {
					select {
					case who := <-h.paused:
						if who != "vocoder" {
							continue
						}
					case <-ctx.Done():
						return ctx.Err()
					}
					break
				}
				sendTimes = append(sendTimes, profiler.Now())
				if err := io.Send("codes", i); err != nil {
					return err
				}
			}
			return nil
		}), graph.Stage(1, "talker"))
	voc := g.Add("vocoder", op("code2wav", ports(graph.StreamIn("codes", graph.Tokens())), ports(graph.Out("n", graph.Any())),
		func(ctx context.Context, io *graph.IO) error {
			n := 0
			for {
				_, err := io.Recv("codes")
				if err != nil {
					if err := ignoreEOF(err); err != nil {
						return err
					}
					return io.Put("n", n)
				}
				n++
			}
		}), graph.Stage(2, "vocoder"))
	must(t, g.Connect(x, prod.In("x")))
	must(t, g.Connect(prod.Out("codes"), voc.In("codes")))
	must(t, g.Output("n", voc.Out("n")))
	p, err := g.Build(graph.WithProfiler(prof), graph.WithHook(h))
	must(t, err)
	ctx := context.Background()
	must(t, prof.Start(ctx))
	res, err := p.Run(ctx, graph.Feeds{"x": 1})
	must(t, err)
	_, err = prof.Stop(ctx)
	must(t, err)
	if res["n"] != chunks {
		t.Fatalf("vocoder saw %v chunks", res["n"])
	}
	var slices []profiler.Record
	handoffs := 0
	for _, r := range mem.Records() {
		if r.Kind == profiler.KindOperator && r.Name == "vocoder" {
			slices = append(slices, r)
			if r.Stage != 2 || r.StageName != "vocoder" || r.LaneName != "vocoder" {
				t.Errorf("vocoder slice on the wrong track: %+v", r)
			}
		}
		if r.Kind == profiler.KindHandoff && r.Name == "talker → vocoder" {
			handoffs++
		}
	}
	if len(slices) < chunks {
		t.Fatalf("%d vocoder slices, want at least %d (one after each wait)", len(slices), chunks)
	}
	for _, st := range sendTimes {
		for _, s := range slices {
			if s.Start < st && st < s.End {
				t.Errorf("vocoder slice [%d,%d] covers a send at %d, while it waited", s.Start, s.End, st)
			}
		}
	}
	if handoffs != chunks {
		t.Errorf("%d hand-off spans, want %d", handoffs, chunks)
	}
}

// A plan tells its profiler which stages loop, so that a profile of all
// stages with MaxIters waits for a later stage's iterations instead of
// stopping when the first stage is done.
func TestLoopStagesAreAwaitedByMaxIters(t *testing.T) {
	mem := memory.New()
	prof, err := profiler.New(profiler.WithSink(mem), profiler.WithMaxIters(1))
	must(t, err)
	loop := func(name string) graph.Operator {
		return graph.OperatorFunc(graph.Contract{Name: name, Loop: true,
			Inputs: ports(graph.In("x", graph.Any())), Outputs: ports(graph.Out("y", graph.Any()))},
			func(ctx context.Context, io *graph.IO) error {
				v, err := io.Get("x")
				if err != nil {
					return err
				}
				for i := 0; i < 3; i++ {
					_, s := profiler.Step(ctx, name+".step")
					s.End()
				}
				return io.Put("y", v)
			})
	}
	g := graph.New("loops")
	x := g.Input("x", graph.Any())
	a := g.Add("a", loop("a"), graph.Stage(0, "first"))
	b := g.Add("b", loop("b"), graph.Stage(1, "second"))
	must(t, g.Connect(x, a.In("x")))
	must(t, g.Connect(a.Out("y"), b.In("x")))
	must(t, g.Output("y", b.Out("y")))
	p, err := g.Build(graph.WithProfiler(prof))
	must(t, err)
	ctx := context.Background()
	must(t, prof.Start(ctx))
	_, err = p.Run(ctx, graph.Feeds{"x": 1})
	must(t, err)
	res, err := prof.Wait(ctx)
	must(t, err)
	if res.Reason != profiler.StopMaxIters {
		t.Errorf("reason %q, want max_iters", res.Reason)
	}
	steps := map[string]int{}
	for _, r := range mem.Records() {
		if r.Kind == profiler.KindIteration {
			steps[r.Name]++
		}
	}
	if steps["a.step"] != 1 || steps["b.step"] != 1 {
		t.Errorf("iterations recorded %v, want one per stage", steps)
	}
}

// TestSessionConcurrentSubmit: many goroutines submit at once.
func TestSessionConcurrentSubmit(t *testing.T) {
	p := chain(t)
	ctx := context.Background()
	s, err := p.Serve(ctx)
	must(t, err)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Submit(ctx, graph.Feeds{"x": i})
			if err != nil {
				bad.Add(1)
				return
			}
			res, err := r.Wait(ctx)
			if err != nil || res["y"] != i+3 {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	must(t, s.Close(ctx))
	if bad.Load() != 0 {
		t.Fatalf("%d requests failed", bad.Load())
	}
}

// TestRequestCancelDoesNotStallSession: a request whose context is cancelled
// while its stream output is unread must not block the others.
func TestRequestCancelDoesNotStallSession(t *testing.T) {
	g := graph.New("abandon")
	x := g.Input("n", graph.Any())
	prod := g.Add("prod", op("producer", ports(graph.In("n", graph.Any())), ports(graph.StreamOut("tok", graph.Tokens())),
		func(ctx context.Context, io *graph.IO) error {
			n, _ := io.Get("n")
			for i := 0; i < n.(int); i++ {
				if err := io.Send("tok", i); err != nil {
					return err
				}
			}
			return nil
		}))
	must(t, g.Connect(x, prod.In("n")))
	must(t, g.Output("tok", prod.Out("tok")))
	p, err := g.Build(graph.WithBuffer(1))
	must(t, err)
	ctx := context.Background()
	s, err := p.Serve(ctx)
	must(t, err)
	rctx, cancel := context.WithCancel(ctx)
	abandoned, err := s.Submit(rctx, graph.Feeds{"n": 100})
	must(t, err)
	r2, err := s.Submit(ctx, graph.Feeds{"n": 3})
	must(t, err)
	cancel()
	res, err := r2.Wait(ctx)
	if err != nil || len(res["tok"].([]any)) != 3 {
		t.Fatalf("second request: %v %v", res, err)
	}
	<-abandoned.Done()
	if !errors.Is(abandoned.Err(), context.Canceled) {
		t.Errorf("abandoned request error %v", abandoned.Err())
	}
	must(t, s.Close(ctx))
}
