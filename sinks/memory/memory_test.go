package memory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
)

func TestStoreKeepsEachSession(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	if mem.Last() != nil || mem.Records() != nil {
		t.Fatal("a new store has a session")
	}
	p, err := profiler.New(profiler.WithSink(mem))
	if err != nil {
		t.Fatal(err)
	}
	for round, names := range [][]string{{"a", "b"}, {"c"}} {
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		actx, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "s"}, "op")
		for _, n := range names {
			_, s := profiler.Start(actx, n, profiler.Int("round", round))
			s.End()
		}
		act.End(nil)
		res, err := p.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := mem.Last()
		if !last.Complete() {
			t.Errorf("round %d: session not shut down after Stop", round)
		}
		if last.Info.Name != res.Name {
			t.Errorf("round %d: session info %q, result %q", round, last.Info.Name, res.Name)
		}
		got := map[string]bool{}
		for _, r := range mem.Records() {
			got[r.Name] = true
			if a, ok := r.Attr("round"); r.Name != "op" && (!ok || a.AsInt() != int64(round)) {
				t.Errorf("round %d: record %s has round %v", round, r.Name, a)
			}
		}
		if len(got) != len(names)+1 || !got["op"] {
			t.Errorf("round %d: records %v, want op and %v", round, got, names)
		}
		if uint64(len(mem.Records())) != res.Events {
			t.Errorf("round %d: %d records kept, %d exported", round, len(mem.Records()), res.Events)
		}
	}
	if n := len(mem.Sessions()); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	if first := mem.Sessions()[0].Records(); len(first) != 3 {
		t.Errorf("first session has %d records after the second ran, want 3", len(first))
	}
}

func TestExportAfterShutdown(t *testing.T) {
	ctx := context.Background()
	sk, err := memory.New().Open(ctx, profiler.SessionInfo{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	batch := []profiler.Record{{Kind: profiler.KindModule, Name: "a"}}
	if err := sk.Export(ctx, batch); err != nil {
		t.Fatal(err)
	}
	batch[0].Name = "changed" // the sink keeps a copy
	if err := sk.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sk.Export(ctx, batch); !errors.Is(err, memory.ErrShutdown) {
		t.Errorf("Export after Shutdown: %v", err)
	}
	s := sk.(*memory.Session)
	if r := s.Records(); len(r) != 1 || r[0].Name != "a" {
		t.Errorf("records %+v", r)
	}
}
