package chrome_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

// A profiling session writes <dir>/<session>/trace.json.gz; reading it
// back gives the intervals the summary table is made of.
func Example() {
	dir, err := os.MkdirTemp("", "omniflow-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	p, err := profiler.New(profiler.WithDir(dir), profiler.WithSink(chrome.New()))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		log.Fatal(err)
	}
	for _, req := range []string{"a", "b"} {
		for stage, name := range []string{"encode", "decode"} {
			// What the engine does around each node it runs.
			actx, act := p.Enter(ctx, profiler.Track{Stage: stage, StageName: name, Request: req}, name)
			_, k := profiler.StartKind(actx, profiler.KindKernel, "matmul", profiler.Int("flops", 1<<20))
			k.End()
			act.End(nil)
		}
	}
	res, err := p.Stop(ctx)
	if err != nil {
		log.Fatal(err)
	}

	ivs, err := chrome.ReadIntervalsFile(filepath.Join(res.Dir, chrome.DefaultFileName))
	if err != nil {
		log.Fatal(err)
	}
	rows := profiler.Summarize(ivs).Rows
	slices.SortFunc(rows, func(a, b profiler.SummaryRow) int { return strings.Compare(a.Cat+a.Name, b.Cat+b.Name) })
	for _, r := range rows {
		fmt.Println(r.Cat, r.Name, r.Calls, r.Flops)
	}
	// Output:
	// kernel matmul 4 4.194304e+06
	// operator decode 2 0
	// operator encode 2 0
}

// ReadIntervals reads the PyTorch profiler's traces too: ts and dur are
// microseconds, converted exactly to nanoseconds.
func ExampleReadIntervals() {
	const trace = `{"traceEvents":[
	  {"ph":"X","cat":"cpu_op","name":"aten::mm","pid":7,"tid":7,"ts":1700000000000010.5,"dur":2.25,"args":{"flops":8192}},
	  {"ph":"M","name":"thread_name","pid":7,"tid":7,"args":{"name":"main"}}]}`
	ivs, err := chrome.ReadIntervals(strings.NewReader(trace))
	if err != nil {
		log.Fatal(err)
	}
	for _, iv := range ivs {
		fmt.Println(iv.Cat, iv.Name, iv.Start, iv.End-iv.Start, iv.Flops)
	}
	// Output:
	// cpu_op aten::mm 1700000000000010500 2250 8192
}
