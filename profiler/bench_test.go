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

// kernelAttrs are the attributes device dispatch puts on a kernel span.
var kernelAttrs = func() []profiler.Attr {
	return []profiler.Attr{profiler.Int("flops", 1<<30), profiler.Int("bytes", 1<<20), profiler.String("dtype", "f32"), profiler.Ints("a", []int{64, 64})}
}

// callBaseline has Start's signature and does nothing: the cost of calling a
// function with a context, a name and attributes, measured in the same run
// as BenchmarkSpanOff so the two can be compared on a noisy machine.
//
//go:noinline
func callBaseline(ctx context.Context, name string, attrs ...profiler.Attr) (context.Context, profiler.Span) {
	return ctx, profiler.Span{}
}

// BenchmarkSpanOff is a span site with no profile recording: the target is
// <= 10 ns and 0 allocations. The attributes are built at the call site
// each time, as they are in real code; baseline is a do-nothing call with
// the same arguments.
func BenchmarkSpanOff(b *testing.B) {
	p, err := profiler.New()
	if err != nil {
		b.Fatal(err)
	}
	ctx, act := p.Enter(context.Background(), profiler.Track{Stage: 0, StageName: "s"}, "op")
	defer act.End(nil)
	shape := []int{64, 64}
	b.Run("noattrs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, s := profiler.Start(ctx, "layer")
			s.End()
		}
	})
	b.Run("attr1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, s := profiler.Start(ctx, "layer", profiler.Int("n", 1))
			s.End()
		}
	})
	b.Run("kernel-attrs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, s := profiler.StartKind(ctx, profiler.KindKernel, "matmul", profiler.Int("flops", 1<<30),
				profiler.Int("bytes", 1<<20), profiler.String("dtype", "f32"), profiler.Ints("a", shape))
			s.End()
		}
	})
	b.Run("baseline-attr1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, s := callBaseline(ctx, "layer", profiler.Int("n", 1))
			s.End()
		}
	})
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
		{"kernel-attrs", kernelAttrs()},
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
