package gostreams_test

import (
	"context"
	"errors"
	"testing"

	"github.com/reugn/go-streams/extension"
	"github.com/reugn/go-streams/flow"
	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/graph"
	"github.com/omniflow-go/omniflow/graph/gostreams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func square(t *testing.T) *graph.Plan {
	g := graph.New("square")
	x := g.Input("x", graph.Any())
	n := g.Add("square", graph.OperatorFunc(graph.Contract{Name: "square",
		Inputs: []graph.Port{graph.In("x", graph.Any())}, Outputs: []graph.Port{graph.Out("y", graph.Any())}},
		func(ctx context.Context, io *graph.IO) error {
			v, err := graph.Get[int](io, "x")
			if err != nil {
				return err
			}
			if v < 0 {
				return errors.New("negative input")
			}
			return io.Put("y", v*v)
		}))
	if err := g.Connect(x, n.In("x")); err != nil {
		t.Fatal(err)
	}
	if err := g.Output("y", n.Out("y")); err != nil {
		t.Fatal(err)
	}
	p, err := g.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFlowInAGoStreamsPipeline(t *testing.T) {
	ctx := context.Background()
	sess, err := square(t).Serve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan any)
	out := make(chan any)
	go func() {
		for _, v := range []int{1, 2, -3, 4, 5} {
			in <- v
		}
		close(in)
	}()
	f := gostreams.New(ctx, sess, func(v any) (graph.Feeds, error) { return graph.Feeds{"x": v}, nil })
	done := make(chan struct{})
	var got []gostreams.Result
	go func() {
		for r := range out {
			got = append(got, r.(gostreams.Result))
		}
		close(done)
	}()
	// A go-streams pipeline: channel source -> a go-streams Map -> our flow -> channel sink.
	extension.NewChanSource(in).
		Via(flow.NewMap(func(v any) any { return v.(int) + 0 }, 1)).
		Via(f).
		To(extension.NewChanSink(out))
	<-done
	f.Wait()
	if err := sess.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := []int{1, 4, -1, 16, 25}
	if len(got) != len(want) {
		t.Fatalf("got %d results", len(got))
	}
	for i, r := range got {
		if want[i] < 0 {
			if r.Err == nil || r.Input != -3 {
				t.Errorf("element %d: want the node's error, got %+v", i, r)
			}
			continue
		}
		if r.Err != nil || r.Outputs["y"] != want[i] {
			t.Errorf("element %d: %+v, want y=%d", i, r, want[i])
		}
	}
}

func TestFlowStopsWithContext(t *testing.T) {
	sess, err := square(t).Serve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := gostreams.New(ctx, sess, func(v any) (graph.Feeds, error) { return graph.Feeds{"x": v}, nil })
	f.In() <- 3
	r := (<-f.Out()).(gostreams.Result)
	if r.Outputs["y"] != 9 {
		t.Fatalf("%+v", r)
	}
	cancel()
	f.Wait() // both goroutines end without the input being closed
	if err := sess.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
