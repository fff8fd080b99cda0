package otel_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newRecorder returns an SDK provider whose spans end up in the recorder.
func newRecorder(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Errorf("tp.Shutdown: %v", err)
		}
	})
	return tp, rec
}

// workload runs nreq requests at once through two stages: an encoder
// (two slices, nested module and kernel spans, an instant) and a denoise
// loop with steps iterations (step → block → kernel, an instant and a
// counter per step). Request 1's loop ends with an error.
func workload(ctx context.Context, p *profiler.Profiler, nreq, steps int) {
	var wg sync.WaitGroup
	for i := range nreq {
		req := fmt.Sprintf("req-%d", i)
		wg.Go(func() {
			enc := profiler.Track{Stage: 0, StageName: "encode", Lane: 0, LaneName: "text_encoder", Request: req}
			actx, a := p.Enter(ctx, enc, "text_encoder", profiler.Int("tokens", 7+i))
			sctx, sp := profiler.Start(actx, "embed", profiler.Ints("shape", []int{1, 7, 64}), profiler.String("dtype", "f32"))
			_, k := profiler.StartKind(sctx, profiler.KindKernel, "matmul", profiler.Float64("flops", 1.5e6), profiler.Bool("fused", true))
			k.End()
			profiler.Event(sctx, "cache.miss", profiler.Int("layer", 0))
			sp.End()
			a.Pause()
			a.Resume()
			_, sp = profiler.Start(actx, "pool")
			sp.End()
			a.End(nil)
			handoff := profiler.Now()

			den := profiler.Track{Stage: 1, StageName: "denoise", Lane: 1, LaneName: "dit", Request: req}
			p.Emit(den, profiler.KindHandoff, "encode→denoise", handoff, profiler.Now())
			actx, a = p.Enter(ctx, den, "denoise_loop")
			for s := range steps {
				ictx, it := profiler.Step(actx, "denoise.step", profiler.Int("step", s))
				bctx, blk := profiler.Start(ictx, "dit.block", profiler.Int("block", 0))
				_, k := profiler.StartKind(bctx, profiler.KindKernel, "attention", profiler.Ints("shape", []int{2, 16, 64}))
				k.End()
				blk.End()
				profiler.Counter(ictx, "latents.norm", float64(s))
				profiler.Event(ictx, "guidance", profiler.Float64("scale", 4.5))
				it.End()
			}
			var err error
			if i == 1 {
				err = errors.New("out of memory")
			}
			a.End(err)
		})
	}
	wg.Wait()
}

// runSession profiles workload with the given sinks and returns the memory
// sink's session.
func runSession(t *testing.T, nreq, steps int, sinks ...profiler.SinkFactory) *memory.Session {
	t.Helper()
	mem := memory.New()
	opts := []profiler.Option{profiler.WithSink(mem)}
	for _, s := range sinks {
		opts = append(opts, profiler.WithSink(s))
	}
	p, err := profiler.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx, profiler.Name("otel-test")); err != nil {
		t.Fatal(err)
	}
	workload(ctx, p, nreq, steps)
	res, err := p.Stop(ctx)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if res.Dropped != 0 {
		t.Fatalf("profiler dropped %d records", res.Dropped)
	}
	return mem.Last()
}

// treeWant says how roots are parented.
type treeWant struct {
	sessionSpan     bool
	counters        bool
	noRequestTraces bool                             // WithMaxRequestTraces(0)
	remote          map[string]oteltrace.SpanContext // request → remote parent
}

// spanKey finds a record's span: requests run at once, so two spans of
// one name may start in the same nanosecond, but not in one request.
type spanKey struct {
	name       string
	request    string
	start, end int64
}

func recordKey(info profiler.SessionInfo, r *profiler.Record) spanKey {
	return spanKey{r.Name, r.Request, info.Wall(r.Start).UnixNano(), info.Wall(r.End).UnixNano()}
}

// checkTree checks that spans hold exactly the span records of sess, with
// the recorded tree, times, attributes and events.
func checkTree(t *testing.T, spans []sdktrace.ReadOnlySpan, sess *memory.Session, want treeWant) {
	t.Helper()
	info := sess.Info
	var session sdktrace.ReadOnlySpan
	byKey := map[spanKey][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.Name() == "omniflow.profile "+info.Name && want.sessionSpan {
			if session != nil {
				t.Fatalf("two session spans")
			}
			session = s
			continue
		}
		var req string
		for _, kv := range s.Attributes() {
			if kv.Key == otelsink.KeyRequestID {
				req = kv.Value.AsString()
			}
		}
		k := spanKey{s.Name(), req, s.StartTime().UnixNano(), s.EndTime().UnixNano()}
		byKey[k] = append(byKey[k], s)
	}
	if want.sessionSpan {
		if session == nil {
			t.Fatalf("no session span")
		}
		if session.Parent().IsValid() {
			t.Errorf("session span has a parent")
		}
		if !session.StartTime().Equal(info.Started) {
			t.Errorf("session span starts at %v, want %v", session.StartTime(), info.Started)
		}
	}

	recs := sess.Records()
	spanOf := map[uint64]sdktrace.ReadOnlySpan{}
	var nspans int
	for i := range recs {
		r := &recs[i]
		if !r.Kind.IsSpan() {
			continue
		}
		nspans++
		k := recordKey(info, r)
		cands := byKey[k]
		if len(cands) != 1 {
			t.Fatalf("record %d %q: %d spans with that name, request and times, want 1", r.ID, r.Name, len(cands))
		}
		delete(byKey, k)
		spanOf[r.ID] = cands[0]
	}
	if len(byKey) != 0 {
		t.Errorf("%d spans without a record: %v", len(byKey), slices.Collect(maps.Keys(byKey)))
	}
	if n := len(spans); want.sessionSpan && n != nspans+1 || !want.sessionSpan && n != nspans {
		t.Errorf("%d spans for %d span records", n, nspans)
	}

	// Each request's root operator slices: one is the root of the request's
	// trace (whichever was exported first), the others are its children.
	rootCtx := oteltrace.SpanContext{}
	if session != nil {
		rootCtx = session.SpanContext()
	}
	reqRoot := map[string]sdktrace.ReadOnlySpan{}
	for i := range recs {
		r := &recs[i]
		if r.Kind != profiler.KindOperator || r.Parent != 0 || r.Request == "" || want.remote[r.Request].IsValid() {
			continue
		}
		if s := spanOf[r.ID]; s.Parent().SpanID() == rootCtx.SpanID() {
			if reqRoot[r.Request] != nil && !want.noRequestTraces {
				t.Errorf("request %s: two operator slices at the top of its trace", r.Request)
			}
			reqRoot[r.Request] = s
		}
	}

	// With request traces, every operator slice of a request is in one trace.
	if !want.noRequestTraces {
		traces := map[string]map[oteltrace.TraceID]bool{}
		for i := range recs {
			if r := &recs[i]; r.Kind == profiler.KindOperator && r.Request != "" {
				if traces[r.Request] == nil {
					traces[r.Request] = map[oteltrace.TraceID]bool{}
				}
				traces[r.Request][spanOf[r.ID].SpanContext().TraceID()] = true
			}
		}
		for req, ids := range traces {
			if len(ids) != 1 {
				t.Errorf("request %s: operator slices in %d traces, want 1", req, len(ids))
			}
		}
	}

	wantEvents := map[oteltrace.SpanID][]sdktrace.Event{}
	for i := range recs {
		r := &recs[i]
		switch {
		case r.Kind.IsSpan():
		case r.Kind == profiler.KindInstant, r.Kind == profiler.KindCounter && want.counters:
			ev := sdktrace.Event{Name: r.Name, Time: info.Wall(r.Start), Attributes: recordAttrs(r)}
			if r.Kind == profiler.KindCounter {
				ev.Attributes = append(ev.Attributes, otelsink.KeyCounterValue.Float64(r.Value))
			}
			var id oteltrace.SpanID
			if r.Parent != 0 {
				id = spanOf[r.Parent].SpanContext().SpanID()
			} else if session != nil {
				id = session.SpanContext().SpanID()
			} else {
				continue // dropped
			}
			wantEvents[id] = append(wantEvents[id], ev)
			continue
		default:
			continue
		}
		s := spanOf[r.ID]
		if !s.StartTime().Equal(info.Wall(r.Start)) || !s.EndTime().Equal(info.Wall(r.End)) {
			t.Errorf("%q: times [%v, %v], want [%v, %v]", r.Name, s.StartTime(), s.EndTime(), info.Wall(r.Start), info.Wall(r.End))
		}
		if got, want := s.EndTime().UnixNano()-s.StartTime().UnixNano(), r.End-r.Start; got != want {
			t.Errorf("%q: duration %d ns, want %d", r.Name, got, want)
		}
		if s.SpanKind() != oteltrace.SpanKindInternal {
			t.Errorf("%q: kind %v", r.Name, s.SpanKind())
		}
		var wantParent oteltrace.SpanContext
		joined := false // a root of a request in the request's trace
		switch {
		case r.Parent == 0 && r.Request != "" && !want.remote[r.Request].IsValid() && !want.noRequestTraces:
			root := reqRoot[r.Request]
			if s == root {
				break // the request's trace root: a root like any other
			}
			if r.Kind == profiler.KindOperator || s.Parent().SpanID() == root.SpanContext().SpanID() {
				wantParent, joined = root.SpanContext(), true
			}
		}
		switch {
		case joined:
		case r.Parent != 0:
			ps, ok := spanOf[r.Parent]
			if !ok {
				t.Fatalf("%q: parent %d not recorded", r.Name, r.Parent)
			}
			wantParent = ps.SpanContext()
		case want.remote[r.Request].IsValid():
			wantParent = want.remote[r.Request]
		case session != nil:
			wantParent = session.SpanContext()
		}
		if got := s.Parent(); got.TraceID() != wantParent.TraceID() || got.SpanID() != wantParent.SpanID() {
			t.Errorf("%q (id %d, parent %d): parent %v/%v, want %v/%v", r.Name, r.ID, r.Parent,
				got.TraceID(), got.SpanID(), wantParent.TraceID(), wantParent.SpanID())
		}
		if wantParent.IsValid() && s.SpanContext().TraceID() != wantParent.TraceID() {
			t.Errorf("%q: trace %v, want its parent's %v", r.Name, s.SpanContext().TraceID(), wantParent.TraceID())
		}
		if got, want := attrMap(s.Attributes()), attrMap(spanAttrs(r)); !maps.Equal(got, want) {
			t.Errorf("%q: attributes\n got %v\nwant %v", r.Name, got, want)
		}
		if a, ok := r.Attr("error"); ok {
			if s.Status().Code != codes.Error || s.Status().Description != a.AsString() {
				t.Errorf("%q: status %+v, want error %q", r.Name, s.Status(), a.AsString())
			}
		} else if s.Status().Code != codes.Unset {
			t.Errorf("%q: status %+v", r.Name, s.Status())
		}
	}

	all := slices.Clone(spans)
	for _, s := range all {
		got := s.Events()
		want := wantEvents[s.SpanContext().SpanID()]
		delete(wantEvents, s.SpanContext().SpanID())
		if len(got) != len(want) {
			t.Errorf("%q: %d events, want %d", s.Name(), len(got), len(want))
			continue
		}
		sortEvents(got)
		sortEvents(want)
		for i := range got {
			if got[i].Name != want[i].Name || !got[i].Time.Equal(want[i].Time) ||
				!maps.Equal(attrMap(got[i].Attributes), attrMap(want[i].Attributes)) {
				t.Errorf("%q: event %d = %+v, want %+v", s.Name(), i, got[i], want[i])
			}
		}
	}
	if len(wantEvents) != 0 {
		t.Errorf("events for spans that do not exist: %v", wantEvents)
	}
}

func sortEvents(evs []sdktrace.Event) {
	slices.SortStableFunc(evs, func(a, b sdktrace.Event) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return len(a.Name) - len(b.Name)
	})
}

// spanAttrs is what the exporter is documented to attach to r's span.
func spanAttrs(r *profiler.Record) []attribute.KeyValue {
	kv := []attribute.KeyValue{
		attribute.String("omniflow.kind", r.Kind.String()),
		attribute.Int("omniflow.stage", int(r.Stage)),
	}
	if r.StageName != "" {
		kv = append(kv, attribute.String("omniflow.stage.name", r.StageName))
	}
	if r.LaneName != "" {
		kv = append(kv, attribute.String("omniflow.lane.name", r.LaneName))
	}
	if r.Request != "" {
		kv = append(kv, attribute.String("omniflow.request.id", r.Request))
	}
	if r.Iter >= 0 {
		kv = append(kv, attribute.Int("omniflow.iteration", int(r.Iter)))
	}
	return append(kv, recordAttrs(r)...)
}

func recordAttrs(r *profiler.Record) []attribute.KeyValue {
	var kv []attribute.KeyValue
	for _, a := range r.AttrList() {
		switch v := a.Value().(type) {
		case int64:
			kv = append(kv, attribute.Int64(a.Key, v))
		case float64:
			kv = append(kv, attribute.Float64(a.Key, v))
		case string:
			kv = append(kv, attribute.String(a.Key, v))
		case bool:
			kv = append(kv, attribute.Bool(a.Key, v))
		case []int:
			kv = append(kv, attribute.IntSlice(a.Key, v))
		}
	}
	return kv
}

// attrMap renders attributes comparably (type and value).
func attrMap(kv []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, a := range kv {
		m[string(a.Key)] = a.Value.Type().String() + ":" + a.Value.Emit()
	}
	return m
}

// TestProfilerSession drives a real profiler with the exporter and a memory
// sink side by side and checks every span against the records.
func TestProfilerSession(t *testing.T) {
	for _, tc := range []struct {
		name        string
		nreq, steps int
		opts        []otelsink.Option
		want        treeWant
	}{
		{name: "default", nreq: 2, steps: 3},
		{name: "many batches", nreq: 4, steps: 60},
		{name: "session span and counters", nreq: 3, steps: 10,
			opts: []otelsink.Option{otelsink.WithSessionSpan(true), otelsink.WithCounters(true)},
			want: treeWant{sessionSpan: true, counters: true}},
		{name: "a trace per root", nreq: 3, steps: 4,
			opts: []otelsink.Option{otelsink.WithMaxRequestTraces(0)},
			want: treeWant{noRequestTraces: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, rec := newRecorder(t)
			exp := otelsink.New(tp, tc.opts...)
			sess := runSession(t, tc.nreq, tc.steps, exp)
			spans := rec.Ended()
			checkTree(t, spans, sess, tc.want)
			if n := len(rec.Started()); n != len(spans) {
				t.Errorf("%d spans started, %d ended", n, len(spans))
			}
			for _, s := range spans {
				if got := s.InstrumentationScope(); got.Name != otelsink.DefaultTracerName || got.Version != profiler.Version {
					t.Fatalf("scope %+v", got)
				}
			}
			st := exp.Stats()
			if st.Dropped != 0 || st.DroppedEvents != 0 || st.Orphans != 0 {
				t.Errorf("stats %+v", st)
			}
			if want := len(spans); tc.want.sessionSpan && int(st.Spans) != want-1 || !tc.want.sessionSpan && int(st.Spans) != want {
				t.Errorf("stats count %d spans, %d ended", st.Spans, want)
			}
		})
	}
}

// TestTwoExporters puts two exporters (different providers and options) and
// a memory sink on one profiler.
func TestTwoExporters(t *testing.T) {
	tpA, recA := newRecorder(t)
	tpB, recB := newRecorder(t)
	a := otelsink.New(tpA)
	b := otelsink.New(tpB, otelsink.WithSessionSpan(true), otelsink.WithCounters(true), otelsink.WithTracerName("b"))
	sess := runSession(t, 3, 20, a, b)
	checkTree(t, recA.Ended(), sess, treeWant{})
	checkTree(t, recB.Ended(), sess, treeWant{sessionSpan: true, counters: true})
	for _, s := range recB.Ended() {
		if s.InstrumentationScope().Name != "b" {
			t.Fatalf("scope %q", s.InstrumentationScope().Name)
		}
	}
}

func remoteSpanContext(t testing.TB, tid, sid string) oteltrace.SpanContext {
	t.Helper()
	traceID, err := oteltrace.TraceIDFromHex(tid)
	if err != nil {
		t.Fatal(err)
	}
	spanID, err := oteltrace.SpanIDFromHex(sid)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := oteltrace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	return oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: oteltrace.FlagsSampled, TraceState: ts, Remote: true,
	})
}

// TestRequestParent checks that a request's roots join the remote trace,
// with and without a session span, and that other requests do not.
func TestRequestParent(t *testing.T) {
	remote := remoteSpanContext(t, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
	for _, tc := range []struct {
		name        string
		sessionSpan bool
	}{
		{"roots", false},
		{"session span", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, rec := newRecorder(t)
			exp := otelsink.New(tp, otelsink.WithSessionSpan(tc.sessionSpan))
			exp.SetRequestParent("req-0", remote)
			sess := runSession(t, 2, 4, exp)
			checkTree(t, rec.Ended(), sess, treeWant{
				sessionSpan: tc.sessionSpan,
				remote:      map[string]oteltrace.SpanContext{"req-0": remote},
			})
			var joined, other int
			for _, s := range rec.Ended() {
				req := ""
				for _, kv := range s.Attributes() {
					if kv.Key == otelsink.KeyRequestID {
						req = kv.Value.AsString()
					}
				}
				inRemote := s.SpanContext().TraceID() == remote.TraceID()
				switch {
				case req == "req-0" && !inRemote:
					t.Errorf("%q of req-0 in trace %v", s.Name(), s.SpanContext().TraceID())
				case req == "req-0":
					joined++
					if got := s.SpanContext().TraceState().Get("vendor"); got != "abc" {
						t.Errorf("%q: tracestate vendor=%q, want abc", s.Name(), got)
					}
					if s.Parent().SpanID() == remote.SpanID() && !s.Parent().IsRemote() {
						t.Errorf("%q: remote parent not marked remote", s.Name())
					}
				case inRemote:
					t.Errorf("%q of %q in the remote trace", s.Name(), req)
				default:
					other++
				}
			}
			if joined == 0 || other == 0 {
				t.Errorf("joined %d, other %d", joined, other)
			}
		})
	}
}

func TestRequestParentBound(t *testing.T) {
	sc := func(i int) oteltrace.SpanContext {
		return remoteSpanContext(t, "4bf92f3577b34da6a3ce929d0e0e4736", fmt.Sprintf("%016x", i+1))
	}
	exp := otelsink.New(noop.NewTracerProvider(), otelsink.WithMaxRequestParents(3))
	for i := range 5 {
		exp.SetRequestParent(fmt.Sprint("r", i), sc(i))
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := exp.RequestParent(fmt.Sprint("r", i)); ok != want {
			t.Errorf("r%d remembered: %v, want %v", i, ok, want)
		}
	}
	exp.SetRequestParent("r2", sc(20)) // replaces, keeps its age
	exp.SetRequestParent("r3", oteltrace.SpanContext{})
	exp.SetRequestParent("r5", sc(5))
	exp.SetRequestParent("r6", sc(6))
	for id, want := range map[string]bool{"r2": false, "r3": false, "r4": true, "r5": true, "r6": true} {
		if _, ok := exp.RequestParent(id); ok != want {
			t.Errorf("%s remembered: %v, want %v", id, ok, want)
		}
	}
	// Churn stays bounded and consistent.
	for i := range 10000 {
		exp.SetRequestParent(fmt.Sprint("c", i%7), sc(i))
		if i%3 == 0 {
			exp.SetRequestParent(fmt.Sprint("c", i%5), oteltrace.SpanContext{})
		}
	}
	n := 0
	for i := range 7 {
		if _, ok := exp.RequestParent(fmt.Sprint("c", i)); ok {
			n++
		}
	}
	if n == 0 || n > 3 {
		t.Errorf("%d entries remembered, want 1..3", n)
	}

	off := otelsink.New(noop.NewTracerProvider(), otelsink.WithMaxRequestParents(0))
	off.SetRequestParent("r", sc(1))
	if _, ok := off.RequestParent("r"); ok {
		t.Errorf("remembered with WithMaxRequestParents(0)")
	}
}

// TestRequestParentConcurrent sets remote parents while a session exports.
func TestRequestParentConcurrent(t *testing.T) {
	tp, rec := newRecorder(t)
	exp := otelsink.New(tp, otelsink.WithMaxRequestParents(8))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			exp.SetRequestParent(fmt.Sprint("req-", i%16), remoteSpanContext(t, "4bf92f3577b34da6a3ce929d0e0e4736", fmt.Sprintf("%016x", i+1)))
			exp.RequestParent("req-0")
		}
	})
	sess := runSession(t, 4, 30, exp)
	cancel()
	wg.Wait()
	if got, want := len(rec.Ended()), countSpans(sess.Records()); got != want {
		t.Errorf("%d spans, want %d", got, want)
	}
}

func countSpans(recs []profiler.Record) int {
	n := 0
	for _, r := range recs {
		if r.Kind.IsSpan() {
			n++
		}
	}
	return n
}

// flushCounter is a provider of someone else's making with ForceFlush.
type flushCounter struct {
	oteltrace.TracerProvider
	mu      sync.Mutex
	flushes int
	hasDL   bool
}

func (f *flushCounter) ForceFlush(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes++
	_, f.hasDL = ctx.Deadline()
	return nil
}

func TestSinkLifecycle(t *testing.T) {
	ctx := context.Background()
	info := profiler.SessionInfo{Name: "t", Started: time.Unix(1_700_000_000, 0)}

	t.Run("noop provider", func(t *testing.T) {
		exp := otelsink.New(noop.NewTracerProvider(), otelsink.WithSessionSpan(true))
		s, err := exp.Open(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Export(ctx, []profiler.Record{span(2, 1, "child", 1, 2), span(1, 0, "root", 0, 3), instant(1, "i", 1)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		// The event comes after its span, which the window holds open.
		if st := exp.Stats(); st.Spans != 2 || st.Events != 1 || st.DroppedEvents != 0 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("nil provider uses the global one", func(t *testing.T) {
		exp := otelsink.New(nil)
		s, err := exp.Open(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Export(ctx, []profiler.Record{span(1, 0, "root", 0, 3)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("shutdown once, then no export", func(t *testing.T) {
		fc := &flushCounter{TracerProvider: noop.NewTracerProvider()}
		exp := otelsink.New(fc)
		s, err := exp.Open(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if fc.flushes != 1 || !fc.hasDL {
			t.Errorf("%d flushes (deadline %v), want 1 with a deadline", fc.flushes, fc.hasDL)
		}
		if err := s.Export(ctx, []profiler.Record{span(1, 0, "late", 0, 1)}); !errors.Is(err, otelsink.ErrShutdown) {
			t.Errorf("Export after Shutdown: %v, want ErrShutdown", err)
		}
	})

	t.Run("flush error is returned", func(t *testing.T) {
		tp := sdktrace.NewTracerProvider()
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := otelsink.New(tp).Open(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Shutdown(ctx) // the SDK's ForceFlush after Shutdown: must not panic
	})

	for _, tc := range []struct {
		name string
		opt  otelsink.Option
	}{
		{"empty tracer name", otelsink.WithTracerName("")},
		{"negative buffer", otelsink.WithMaxBuffered(-1)},
		{"huge buffer", otelsink.WithMaxBuffered(math.MaxInt)}, // valid where int is 32 bits: see below
		{"negative window", otelsink.WithEventWindow(-1)},
		{"negative request parents", otelsink.WithMaxRequestParents(-1)},
	} {
		t.Run("invalid option/"+tc.name, func(t *testing.T) {
			if tc.name == "huge buffer" && math.MaxInt == math.MaxInt32 {
				t.Skip("int is 32 bits")
			}
			if _, err := otelsink.New(noop.NewTracerProvider(), tc.opt).Open(ctx, info); err == nil {
				t.Errorf("Open succeeded")
			}
			if _, err := profiler.New(profiler.WithSink(otelsink.New(nil, tc.opt))); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func span(id, parent uint64, name string, start, end int64) profiler.Record {
	return profiler.Record{Kind: profiler.KindModule, ID: id, Parent: parent, Name: name, Start: start, End: end, Iter: -1, Stage: profiler.NoStage}
}

func instant(parent uint64, name string, at int64) profiler.Record {
	return profiler.Record{Kind: profiler.KindInstant, Parent: parent, Name: name, Start: at, End: at, Iter: -1, Stage: profiler.NoStage}
}

func counter(parent uint64, name string, at int64, v float64) profiler.Record {
	return profiler.Record{Kind: profiler.KindCounter, Parent: parent, Name: name, Start: at, End: at, Value: v, Iter: -1, Stage: profiler.NoStage}
}
