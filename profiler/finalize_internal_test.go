package profiler

import (
	"context"
	"sync"
	"testing"
)

type recordingSink struct {
	mu   sync.Mutex
	recs []Record
}

func (s *recordingSink) Export(_ context.Context, b []Record) error {
	s.mu.Lock()
	s.recs = append(s.recs, b...)
	s.mu.Unlock()
	return nil
}

func (s *recordingSink) Shutdown(context.Context) error { return nil }

// A span that ends while the stop is being finalized (after recording has
// been switched off, before the shards close) is still accepted; the open
// activation around it is cut after it, so the trace keeps nesting.
func TestStopCutsOpenActivationAfterLateSpans(t *testing.T) {
	ctx := context.Background()
	sink := &recordingSink{}
	p, err := New(WithSink(sink))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(ctx, Track{Stage: 0, StageName: "thinker", LaneName: "loop"}, "loop")
	_, it := Step(actx, "iteration")
	var ended bool
	finalizeHook = func() {
		// Busy until the clock moves so that the span's end is strictly
		// after any cut taken before this point.
		for t0 := Now(); Now() == t0; {
		}
		it.End()
		ended = true
	}
	defer func() { finalizeHook = nil }()
	if _, err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	act.End(nil)
	if !ended {
		t.Fatal("finalize hook did not run")
	}
	var loop, iter *Record
	for i := range sink.recs {
		switch sink.recs[i].Name {
		case "loop":
			loop = &sink.recs[i]
		case "iteration":
			iter = &sink.recs[i]
		}
	}
	if loop == nil || iter == nil {
		t.Fatalf("want the truncated loop and the late iteration, got %d records", len(sink.recs))
	}
	if a, ok := loop.Attr("truncated"); !ok || !a.AsBool() {
		t.Errorf("loop not marked truncated: %+v", loop)
	}
	if iter.Start < loop.Start || iter.End > loop.End {
		t.Errorf("iteration [%d,%d] escapes its truncated activation [%d,%d]", iter.Start, iter.End, loop.Start, loop.End)
	}
}

func (s *recordingSink) Open(context.Context, SessionInfo) (Sink, error) { return s, nil }
