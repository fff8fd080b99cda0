package otel_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/omniflow-go/omniflow/profiler"
	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

// FuzzBatchOrder makes a random tree of spans and instants, delivers it in a
// random order and random batches, and checks the invariant: every span's
// parent is its nearest exported ancestor (none: a root), every event sits
// on the nearest exported ancestor of its span, and everything is counted.
func FuzzBatchOrder(f *testing.F) {
	f.Add(uint64(1), uint8(20), uint8(5), uint8(3), uint16(1000), uint8(16))
	f.Add(uint64(2), uint8(200), uint8(40), uint8(64), uint16(1000), uint8(0))
	f.Add(uint64(3), uint8(100), uint8(30), uint8(7), uint16(10), uint8(2))
	f.Add(uint64(4), uint8(255), uint8(255), uint8(1), uint16(0), uint8(1))
	f.Fuzz(func(t *testing.T, seed uint64, nspans, ninst, batch uint8, maxBuf uint16, window uint8) {
		rng := rand.New(rand.NewPCG(seed, seed>>1|1))
		n := int(nspans) + 1
		parent := make([]uint64, n+1) // by span id 1..n
		var recs []profiler.Record
		for id := 1; id <= n; id++ {
			p := uint64(0)
			if id > 1 && rng.IntN(8) != 0 {
				p = uint64(1 + rng.IntN(id-1))
			}
			parent[id] = p
			recs = append(recs, span(uint64(id), p, fmt.Sprint("s", id), int64(id), int64(2*n-id)))
		}
		instParent := map[string]uint64{}
		for k := range int(ninst) {
			p := uint64(rng.IntN(n + 1))
			name := fmt.Sprint("e", k)
			instParent[name] = p
			recs = append(recs, instant(p, name, int64(p)))
		}
		// Roughly end order: sort by descending id, then disturb.
		for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
			recs[i], recs[j] = recs[j], recs[i]
		}
		for range len(recs) / 2 {
			i, j := rng.IntN(len(recs)), rng.IntN(len(recs))
			recs[i], recs[j] = recs[j], recs[i]
		}

		rec := tracetest.NewSpanRecorder()
		limits := sdktrace.NewSpanLimits()
		limits.EventCountLimit = -1 // the SDK keeps 128 events a span by default
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithRawSpanLimits(limits))
		defer tp.Shutdown(context.Background())
		exp := otelsink.New(tp, otelsink.WithMaxBuffered(int(maxBuf)), otelsink.WithEventWindow(int(window)))
		ctx := context.Background()
		s, err := exp.Open(ctx, profiler.SessionInfo{Name: "fuzz", Started: time.Unix(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		bl := int(batch) + 1
		for i := 0; i < len(recs); i += bl {
			if err := s.Export(ctx, recs[i:min(i+bl, len(recs))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}

		spans := rec.Ended()
		exported := map[uint64]sdktrace.ReadOnlySpan{}
		for _, sp := range spans {
			var id uint64
			if _, err := fmt.Sscanf(sp.Name(), "s%d", &id); err != nil {
				t.Fatalf("span %q", sp.Name())
			}
			if _, dup := exported[id]; dup {
				t.Fatalf("span %d twice", id)
			}
			exported[id] = sp
		}
		nearest := func(p uint64) oteltrace.SpanID {
			for ; p != 0; p = parent[p] {
				if sp, ok := exported[p]; ok {
					return sp.SpanContext().SpanID()
				}
			}
			return oteltrace.SpanID{}
		}
		st := exp.Stats()
		if int(st.Spans) != len(spans) || int(st.Spans+st.Dropped) != n {
			t.Fatalf("stats %+v for %d spans, %d exported", st, n, len(spans))
		}
		if int(maxBuf) >= len(recs) && st.Dropped != 0 {
			t.Fatalf("dropped %d with room for all", st.Dropped)
		}
		var events int
		for id, sp := range exported {
			if got, want := sp.Parent().SpanID(), nearest(parent[id]); got != want {
				t.Errorf("s%d: parent %v, want %v", id, got, want)
			}
			for _, ev := range sp.Events() {
				events++
				if nearest(instParent[ev.Name]) != sp.SpanContext().SpanID() {
					t.Errorf("event %s on s%d, recorded under s%d", ev.Name, id, instParent[ev.Name])
				}
			}
		}
		if int(st.Events) != events || int(st.Events+st.DroppedEvents) != int(ninst) {
			t.Errorf("stats %+v, %d events on spans, %d instants", st, events, ninst)
		}
	})
}
