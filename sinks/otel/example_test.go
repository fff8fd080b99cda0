package otel_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/omniflow-go/omniflow/profiler"
	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

// A profiling session exported as OpenTelemetry spans, printed as the tree
// a tracing backend would show.
func Example() {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(ctx)

	p, err := profiler.New(profiler.WithSink(otelsink.New(tp)))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// What the engine and a denoise-loop operator do.
	track := profiler.Track{Stage: 1, StageName: "denoise", LaneName: "dit", Request: "req-1"}
	actx, act := p.Enter(ctx, track, "denoise_loop")
	for range 2 {
		sctx, step := profiler.Step(actx, "denoise.step")
		_, blk := profiler.Start(sctx, "dit.block", profiler.Ints("shape", []int{2, 16, 64}))
		blk.End()
		step.End()
	}
	act.End(nil)
	if _, err := p.Stop(ctx); err != nil { // flushes tp
		log.Fatal(err)
	}

	printTree(rec.Ended())
	// Output:
	// denoise_loop [omniflow.kind=operator omniflow.request.id=req-1]
	//   denoise.step [omniflow.kind=iteration omniflow.iteration=0]
	//     dit.block [omniflow.kind=module omniflow.iteration=0 shape=[2,16,64]]
	//   denoise.step [omniflow.kind=iteration omniflow.iteration=1]
	//     dit.block [omniflow.kind=module omniflow.iteration=1 shape=[2,16,64]]
}

// printTree prints spans indented under their parents, in start order,
// with a few attributes.
func printTree(spans []sdktrace.ReadOnlySpan) {
	slices.SortFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	children := map[oteltrace.SpanID][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
	}
	var walk func(id oteltrace.SpanID, depth int)
	walk = func(id oteltrace.SpanID, depth int) {
		for _, s := range children[id] {
			var shown []string
			for _, kv := range s.Attributes() {
				switch kv.Key {
				case otelsink.KeyKind, otelsink.KeyIteration, "shape":
				case otelsink.KeyRequestID:
					if depth > 0 {
						continue
					}
				default:
					continue
				}
				shown = append(shown, string(kv.Key)+"="+kv.Value.Emit())
			}
			fmt.Printf("%s%s %v\n", strings.Repeat("  ", depth), s.Name(), shown)
			walk(s.SpanContext().SpanID(), depth+1)
		}
	}
	walk(oteltrace.SpanID{}, 0)
}

// A server joins the caller's trace: the request's profile spans become
// children of the span named in its traceparent header.
func ExampleExporter_SetRequestParent() {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(ctx)
	exp := otelsink.New(tp)
	p, err := profiler.New(profiler.WithSink(exp))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		log.Fatal(err)
	}

	// In the HTTP handler, before the request enters the engine.
	header := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	remote := propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(header))
	exp.SetRequestParent("req-7", oteltrace.SpanContextFromContext(remote))

	_, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "thinker", Request: "req-7"}, "thinker")
	act.End(nil)
	if _, err := p.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	for _, s := range rec.Ended() {
		fmt.Println(s.Name(), s.SpanContext().TraceID(), "parent", s.Parent().SpanID(), "remote", s.Parent().IsRemote())
	}
	// Output:
	// thinker 4bf92f3577b34da6a3ce929d0e0e4736 parent 00f067aa0ba902b7 remote true
}

// Sending the profile to an OpenTelemetry collector over OTLP/gRPC. The
// exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4317) and
// the other standard OTEL_EXPORTER_OTLP_* variables.
func Example_otlp() {
	ctx := context.Background()
	client, err := otlptracegrpc.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(client))
	defer tp.Shutdown(ctx) // the program's to shut down; sessions only flush it

	p, err := profiler.New(profiler.WithSink(otelsink.New(tp, otelsink.WithSessionSpan(true))))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(ctx, profiler.Name("wan-t2v")); err != nil {
		log.Fatal(err)
	}
	// ... run the pipeline ...
	if _, err := p.Stop(ctx); err != nil {
		log.Fatal(err)
	}
}
