package profiler_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime/trace"
	"testing"

	exptrace "golang.org/x/exp/trace"

	"github.com/omniflow-go/omniflow/profiler"
)

// TestRuntimeTraceTasksAndRegions: with Go's execution tracer on, an
// activation is a task named after its stage and spans are regions, whether
// or not a profile records.
func TestRuntimeTraceTasksAndRegions(t *testing.T) {
	if trace.IsEnabled() {
		t.Skip("the execution tracer is already running")
	}
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	p, _ := newProfiler(t)
	ctx, act := p.Enter(context.Background(), profiler.Track{Stage: 2, StageName: "vocoder", LaneName: "code2wav"}, "code2wav")
	c, s := profiler.Start(ctx, "upsample")
	_, k := profiler.StartKind(c, profiler.KindKernel, "conv1d")
	k.End()
	s.End()
	_, it := profiler.Step(ctx, "chunk")
	it.End()
	act.End(nil)
	trace.Stop()

	r, err := exptrace.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tasks := map[string]bool{}
	regions := map[string]bool{}
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind() {
		case exptrace.EventTaskBegin:
			tasks[ev.Task().Type] = true
		case exptrace.EventRegionBegin:
			regions[ev.Region().Type] = true
		}
	}
	if !tasks["stage 2: vocoder"] {
		t.Errorf("tasks %v", tasks)
	}
	for _, want := range []string{"code2wav", "upsample", "conv1d", "chunk"} {
		if !regions[want] {
			t.Errorf("no region %q in %v", want, regions)
		}
	}
}
