package profiler_test

import (
	"context"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
)

// discard is a sink that keeps nothing, so benchmarks measure the span path.
type discard struct{}

func (discard) Export(context.Context, []profiler.Record) error { return nil }
func (discard) Shutdown(context.Context) error                  { return nil }

var discardFactory = profiler.SinkFunc(func(context.Context, profiler.SessionInfo) (profiler.Sink, error) {
	return discard{}, nil
})

// BenchmarkSpanOff is a span site with no profile recording: the target is
// <= 10 ns and 0 allocations.
func BenchmarkSpanOff(b *testing.B) {
	p, err := profiler.New()
	if err != nil {
		b.Fatal(err)
	}
	ctx, act := p.Enter(context.Background(), profiler.Track{Stage: 0, StageName: "s"}, "op")
	defer act.End(nil)
	b.ReportAllocs()
	for b.Loop() {
		_, s := profiler.Start(ctx, "layer", profiler.Int("n", 1))
		s.End()
	}
}

// BenchmarkSpanOn is a span site recording into a session: the target is
// <= 300 ns and 0 allocations amortized. MaxEvents is large enough that no
// record is dropped for the cap; the queue may drop when the exporter falls
// behind, which costs the span site nothing extra.
func BenchmarkSpanOn(b *testing.B) {
	for _, bc := range []struct {
		name  string
		attrs []profiler.Attr
	}{
		{"noattrs", nil},
		{"kernel-attrs", []profiler.Attr{profiler.Int("flops", 1<<30), profiler.Int("bytes", 1<<20), profiler.String("dtype", "f32"), profiler.Ints("a", []int{64, 64})}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := profiler.New(profiler.WithSink(discardFactory), profiler.WithMaxEvents(1<<30))
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			ctx, act := p.Enter(context.Background(), profiler.Track{Stage: 0, StageName: "s"}, "op")
			b.ReportAllocs()
			for b.Loop() {
				_, s := profiler.StartKind(ctx, profiler.KindKernel, "matmul", bc.attrs...)
				s.End()
			}
			b.StopTimer()
			act.End(nil)
			res, err := p.Stop(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(res.Dropped)/float64(b.N), "dropped/op")
		})
	}
}

// BenchmarkSpanOnParallel measures contention between goroutines recording at once.
func BenchmarkSpanOnParallel(b *testing.B) {
	p, err := profiler.New(profiler.WithSink(discardFactory), profiler.WithMaxEvents(1<<30))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx, act := p.Enter(context.Background(), profiler.Track{Stage: 0}, "op")
		for pb.Next() {
			_, s := profiler.Start(ctx, "layer")
			s.End()
		}
		act.End(nil)
	})
	b.StopTimer()
	if _, err := p.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
}
