package otel_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/omniflow-go/omniflow/profiler"
	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

// discard is a span processor that keeps nothing, so that the benchmark
// measures the exporter and the SDK's span making, not a backend.
type discard struct{}

func (discard) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discard) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discard) Shutdown(context.Context) error                  { return nil }
func (discard) ForceFlush(context.Context) error                { return nil }

// synthRecords makes roots operator slices, each with 4 iterations of 3
// modules of 2 kernels and an instant per iteration (45 records a root), in
// end order (children first, as the profiler delivers them) or parents
// first.
func synthRecords(roots int, endOrder bool) []profiler.Record {
	var out []profiler.Record
	var id uint64
	var t int64
	attrs := []profiler.Attr{profiler.Ints("shape", []int{2, 16, 64}), profiler.Float64("flops", 1e6)}
	var node func(parent uint64, kind profiler.Kind, name string, iter int32, children func(id uint64))
	node = func(parent uint64, kind profiler.Kind, name string, iter int32, children func(id uint64)) {
		id++
		r := profiler.Record{Kind: kind, ID: id, Parent: parent, Name: name, Stage: 1, StageName: "denoise",
			LaneName: "dit", Request: "req-1", Iter: iter, Start: t}
		for _, a := range attrs[:min(len(attrs), int(kind)-1)] {
			r.Attrs[r.NumAttrs] = a
			r.NumAttrs++
		}
		t += 10
		at := len(out)
		if !endOrder {
			out = append(out, r)
		}
		if children != nil {
			children(r.ID)
		}
		t += 10
		r.End = t
		if endOrder {
			out = append(out, r)
		} else {
			out[at].End = t
		}
	}
	for range roots {
		node(0, profiler.KindOperator, "denoise_loop", -1, func(op uint64) {
			for it := range int32(4) {
				node(op, profiler.KindIteration, "denoise.step", it, func(step uint64) {
					for range 3 {
						node(step, profiler.KindModule, "dit.block", it, func(blk uint64) {
							node(blk, profiler.KindKernel, "matmul", it, nil)
							node(blk, profiler.KindKernel, "softmax", it, nil)
						})
					}
					out = append(out, profiler.Record{Kind: profiler.KindInstant, Parent: step, Name: "guidance", Start: t, End: t, Iter: it})
				})
			}
		})
	}
	return out
}

func BenchmarkExport(b *testing.B) {
	providers := []struct {
		name string
		tp   func() oteltrace.TracerProvider
	}{
		{"noop", func() oteltrace.TracerProvider { return noop.NewTracerProvider() }},
		{"sdk", func() oteltrace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discard{}))
		}},
	}
	orders := []struct {
		name     string
		endOrder bool
	}{{"end-order", true}, {"parents-first", false}}
	for _, p := range providers {
		for _, o := range orders {
			b.Run(p.name+"/"+o.name, func(b *testing.B) {
				recs := synthRecords(91, o.endOrder) // 4095 records
				exp := otelsink.New(p.tp())
				info := profiler.SessionInfo{Name: "bench", Started: time.Unix(1_700_000_000, 0)}
				ctx := context.Background()
				batch := make([]profiler.Record, 0, 64)
				b.ReportAllocs()
				for b.Loop() {
					s, err := exp.Open(ctx, info)
					if err != nil {
						b.Fatal(err)
					}
					for i := 0; i < len(recs); i += 64 {
						batch = append(batch[:0], recs[i:min(i+64, len(recs))]...)
						if err := s.Export(ctx, batch); err != nil {
							b.Fatal(err)
						}
					}
					if err := s.Shutdown(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
				if st := exp.Stats(); st.Dropped+st.DroppedEvents+st.Orphans != 0 {
					b.Fatalf("stats %+v", st)
				}
			})
		}
	}
}
