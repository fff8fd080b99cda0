package otel_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/omniflow-go/omniflow/profiler"
	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

// TestBatchOrder feeds batches straight to a session sink, in the orders
// the profiler's shards can produce and beyond, and checks the tree.
func TestBatchOrder(t *testing.T) {
	// root(1) → a(2) → g(3); root → b(4) → g2(5)
	root := span(1, 0, "root", 0, 100)
	a := span(2, 1, "a", 10, 40)
	g := span(3, 2, "g", 20, 30)
	b := span(4, 1, "b", 50, 90)
	g2 := span(5, 4, "g2", 60, 70)
	full := map[string]string{"root": "", "a": "root", "g": "a", "b": "root", "g2": "b"}
	remote := remoteSpanContext(t, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
	withReq := func(r profiler.Record, req string) profiler.Record { r.Request = req; return r }

	for _, tc := range []struct {
		name    string
		opts    []otelsink.Option
		remote  map[string]oteltrace.SpanContext
		batches [][]profiler.Record
		tree    map[string]string   // span → parent ("" root, "<session>", "<remote>")
		events  map[string][]string // span → its events, in time order
		stats   otelsink.Stats
	}{
		{name: "parents first", batches: [][]profiler.Record{{root}, {a, b}, {g, g2}},
			tree: full, stats: otelsink.Stats{Spans: 5}},
		{name: "end order", batches: [][]profiler.Record{{g}, {a}, {g2, b}, {root}},
			tree: full, stats: otelsink.Stats{Spans: 5}},
		{name: "one batch, reversed", batches: [][]profiler.Record{{g2, b, g, a, root}},
			tree: full, stats: otelsink.Stats{Spans: 5}},
		{name: "child batch after parent, parent after child", batches: [][]profiler.Record{{g}, {root}, {a}, {g2}, {b}},
			tree: full, stats: otelsink.Stats{Spans: 5}},
		{name: "grandchild last", batches: [][]profiler.Record{{b, g2}, {a, root}, {g}},
			tree: full, stats: otelsink.Stats{Spans: 5}},
		{name: "session span", opts: []otelsink.Option{otelsink.WithSessionSpan(true)},
			batches: [][]profiler.Record{{g, a}, {g2, b}, {root}},
			tree:    map[string]string{"root": "<session>", "a": "root", "g": "a", "b": "root", "g2": "b"},
			stats:   otelsink.Stats{Spans: 5}},
		{name: "orphans become roots at shutdown",
			batches: [][]profiler.Record{{span(8, 7, "y", 2, 3)}, {span(7, 6, "x", 1, 4)}, {span(9, 6, "x2", 5, 6)}},
			tree:    map[string]string{"x": "", "y": "x", "x2": ""},
			stats:   otelsink.Stats{Spans: 3, Orphans: 2}},
		{name: "orphans under the session span", opts: []otelsink.Option{otelsink.WithSessionSpan(true)},
			batches: [][]profiler.Record{{span(8, 7, "y", 2, 3)}, {span(7, 6, "x", 1, 4)}},
			tree:    map[string]string{"x": "<session>", "y": "x"},
			stats:   otelsink.Stats{Spans: 2, Orphans: 1}},
		{name: "orphans under a remote parent", remote: map[string]oteltrace.SpanContext{"r": remote},
			opts:    []otelsink.Option{otelsink.WithSessionSpan(true)},
			batches: [][]profiler.Record{{withReq(span(8, 7, "y", 2, 3), "r")}, {withReq(span(7, 6, "x", 1, 4), "r")}, {withReq(span(10, 0, "z", 1, 4), "r")}},
			tree:    map[string]string{"x": "<remote>", "y": "x", "z": "<remote>"},
			stats:   otelsink.Stats{Spans: 3, Orphans: 1}},
		{name: "malformed cycle", batches: [][]profiler.Record{{span(5, 6, "c1", 1, 2)}, {span(6, 5, "c2", 0, 3)}},
			tree:  map[string]string{"c2": "", "c1": "c2"},
			stats: otelsink.Stats{Spans: 2, Orphans: 1}},

		{name: "instants before their span", batches: [][]profiler.Record{{instant(2, "i2", 35), instant(2, "i1", 15), g}, {a}, {root}},
			tree:   map[string]string{"root": "", "a": "root", "g": "a"},
			events: map[string][]string{"a": {"i1", "i2"}},
			stats:  otelsink.Stats{Spans: 3, Events: 2}},
		{name: "instant after its span, in the window", batches: [][]profiler.Record{{a, root}, {b}, {instant(2, "i", 15)}},
			tree:   map[string]string{"root": "", "a": "root", "b": "root"},
			events: map[string][]string{"a": {"i"}},
			stats:  otelsink.Stats{Spans: 3, Events: 1}},
		{name: "instant after its span, no window", opts: []otelsink.Option{otelsink.WithEventWindow(0)},
			batches: [][]profiler.Record{{a, root}, {instant(2, "i", 15)}},
			tree:    map[string]string{"root": "", "a": "root"},
			stats:   otelsink.Stats{Spans: 2, DroppedEvents: 1}},
		{name: "instant after its span left the window", opts: []otelsink.Option{otelsink.WithEventWindow(1)},
			batches: [][]profiler.Record{{a, root}, {instant(2, "i", 15), instant(1, "j", 5)}},
			tree:    map[string]string{"root": "", "a": "root"},
			events:  map[string][]string{"root": {"j"}},
			stats:   otelsink.Stats{Spans: 2, Events: 1, DroppedEvents: 1}},
		{name: "root instant dropped", batches: [][]profiler.Record{{instant(0, "i", 1), root}},
			tree:  map[string]string{"root": ""},
			stats: otelsink.Stats{Spans: 1, DroppedEvents: 1}},
		{name: "root instant on the session span", opts: []otelsink.Option{otelsink.WithSessionSpan(true)},
			batches: [][]profiler.Record{{instant(0, "i", 1), root}},
			tree:    map[string]string{"root": "<session>"},
			events:  map[string][]string{"<session>": {"i"}},
			stats:   otelsink.Stats{Spans: 1, Events: 1}},
		{name: "orphan instant", batches: [][]profiler.Record{{instant(77, "i", 1), root}},
			tree:  map[string]string{"root": ""},
			stats: otelsink.Stats{Spans: 1, DroppedEvents: 1}},
		{name: "counters skipped", batches: [][]profiler.Record{{counter(1, "mem", 5, 1.5), root}},
			tree:  map[string]string{"root": ""},
			stats: otelsink.Stats{Spans: 1}},
		{name: "counters as events", opts: []otelsink.Option{otelsink.WithCounters(true)},
			batches: [][]profiler.Record{{counter(1, "mem", 5, 1.5), root}},
			tree:    map[string]string{"root": ""},
			events:  map[string][]string{"root": {"mem"}},
			stats:   otelsink.Stats{Spans: 1, Events: 1}},

		{name: "buffer full: children of a dropped span go to its parent",
			opts:    []otelsink.Option{otelsink.WithMaxBuffered(1)},
			batches: [][]profiler.Record{{g}, {a}, {root}, {span(6, 2, "h", 12, 13)}},
			tree:    map[string]string{"root": "", "g": "root", "h": "root"},
			stats:   otelsink.Stats{Spans: 3, Dropped: 1}},
		{name: "buffer full: events of a dropped span go to its parent",
			opts:    []otelsink.Option{otelsink.WithMaxBuffered(1)},
			batches: [][]profiler.Record{{instant(2, "i", 15)}, {a}, {root}},
			tree:    map[string]string{"root": ""},
			events:  map[string][]string{"root": {"i"}},
			stats:   otelsink.Stats{Spans: 1, Events: 1, Dropped: 1}},
		{name: "no buffer", opts: []otelsink.Option{otelsink.WithMaxBuffered(0)},
			batches: [][]profiler.Record{{g, a}, {root}, {b}, {g2}},
			tree:    map[string]string{"root": "", "b": "root", "g2": "b"},
			stats:   otelsink.Stats{Spans: 3, Dropped: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, rec := newRecorder(t)
			exp := otelsink.New(tp, tc.opts...)
			for req, sc := range tc.remote {
				exp.SetRequestParent(req, sc)
			}
			info := profiler.SessionInfo{Name: "order", Started: time.Unix(1_700_000_000, 123), StartedMono: -1000}
			ctx := context.Background()
			s, err := exp.Open(ctx, info)
			if err != nil {
				t.Fatal(err)
			}
			starts := map[string]int64{}
			for _, b := range tc.batches {
				for _, r := range b {
					starts[r.Name] = r.Start
				}
				// Sinks get a batch that the profiler reuses afterwards.
				batch := slices.Clone(b)
				if err := s.Export(ctx, batch); err != nil {
					t.Fatal(err)
				}
				clear(batch)
			}
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if got := exp.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}

			spans := rec.Ended()
			names := map[oteltrace.SpanID]string{}
			for _, sp := range spans {
				n := sp.Name()
				if n == "omniflow.profile order" {
					n = "<session>"
				}
				if _, dup := names[sp.SpanContext().SpanID()]; dup {
					t.Fatalf("span id reused")
				}
				names[sp.SpanContext().SpanID()] = n
			}
			tree := map[string]string{}
			events := map[string][]string{}
			for _, sp := range spans {
				n := names[sp.SpanContext().SpanID()]
				for _, ev := range sp.Events() {
					events[n] = append(events[n], ev.Name)
				}
				if n == "<session>" {
					continue
				}
				if _, dup := tree[n]; dup {
					t.Errorf("span %q twice", n)
				}
				par := sp.Parent()
				switch {
				case !par.IsValid():
					tree[n] = ""
				case par.SpanID() == remote.SpanID() && par.TraceID() == remote.TraceID():
					tree[n] = "<remote>"
				default:
					pn, ok := names[par.SpanID()]
					if !ok {
						pn = "<unknown " + par.SpanID().String() + ">"
					}
					tree[n] = pn
					if par.TraceID() != sp.SpanContext().TraceID() {
						t.Errorf("%q: trace id differs from its parent's", n)
					}
				}
				if want := info.Wall(starts[n]); !sp.StartTime().Equal(want) {
					t.Errorf("%q starts at %v, want %v", n, sp.StartTime(), want)
				}
			}
			if !maps.Equal(tree, tc.tree) {
				t.Errorf("tree %v, want %v", tree, tc.tree)
			}
			if !maps.EqualFunc(events, tc.events, slices.Equal) && (len(events) != 0 || len(tc.events) != 0) {
				t.Errorf("events %v, want %v", events, tc.events)
			}
		})
	}
}
