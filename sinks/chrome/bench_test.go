package chrome_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

var benchShape = []int{2, 77, 4096}

// benchBatch is a batch of 64 records shaped like a model's: per 16, one
// operator slice with a request, one iteration, three modules and eleven
// kernels with FLOPs, bytes, a shape and a dtype. Records on a lane do not
// overlap.
func benchBatch(in profiler.SessionInfo, base int64) []profiler.Record {
	recs := make([]profiler.Record, 64)
	for j := range recs {
		r := &recs[j]
		r.Stage, r.Lane, r.Iter = int32(j%3), int32(j%4), int32(j/16)
		r.StageName, r.LaneName = "denoise", "loop"
		r.Start = in.StartedMono + base + int64(j)*1000
		r.End = r.Start + 800
		r.ID, r.Parent = uint64(j+1), uint64(j/16*16+1)
		r.Request = fmt.Sprintf("req-%d", j/16)
		switch {
		case j%16 == 0:
			r.Kind, r.Name, r.Iter, r.Parent = profiler.KindOperator, "dit_denoise", -1, 0
		case j%16 == 1:
			r.Kind, r.Name = profiler.KindIteration, "denoise_step"
		case j%4 == 2:
			r.Kind, r.Name = profiler.KindModule, "dit.block"
			r.Attrs[0] = profiler.Int("layer", j)
			r.NumAttrs = 1
		default:
			r.Kind, r.Name = profiler.KindKernel, "matmul"
			r.Attrs[0] = profiler.Int64("flops", 2*2*77*4096*4096)
			r.Attrs[1] = profiler.Int64("bytes", 2*(2*77*4096+4096*4096))
			r.Attrs[2] = profiler.Ints("shape", benchShape)
			r.Attrs[3] = profiler.String("dtype", "bf16")
			r.NumAttrs = 4
		}
	}
	return recs
}

// BenchmarkExport measures the sink on the profiler's exporter goroutine:
// encoding a batch of 64 records and writing it through gzip to a file.
func BenchmarkExport(b *testing.B) {
	for _, lv := range []struct {
		name  string
		level int
	}{{"gzip=1", gzip.BestSpeed}, {"gzip=6", gzip.DefaultCompression}} {
		b.Run(lv.name, func(b *testing.B) {
			ctx := context.Background()
			in := info(b.TempDir())
			sink, err := chrome.New(chrome.WithCompressionLevel(lv.level)).Open(ctx, in)
			if err != nil {
				b.Fatal(err)
			}
			var batches [][]profiler.Record
			for i := 0; i < 16; i++ {
				batches = append(batches, benchBatch(in, int64(i)*64_000))
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				batch := batches[n%len(batches)]
				if n >= len(batches) { // time moves on, as in a real run
					for i := range batch {
						batch[i].Start += int64(len(batches)) * 64_000
						batch[i].End += int64(len(batches)) * 64_000
						batch[i].ID += uint64(len(batches)) * 64
					}
				}
				if err := sink.Export(ctx, batch); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.StopTimer()
			recs := float64(n * 64)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/recs, "ns/record")
			b.ReportMetric(recs/b.Elapsed().Seconds()/1e6, "Mrecords/s")
			if err := sink.Shutdown(ctx); err != nil {
				b.Fatal(err)
			}
			if st, err := os.Stat(sink.(*chrome.Sink).Path()); err == nil {
				b.ReportMetric(float64(st.Size())/recs, "file-B/record")
			}
		})
	}
}

// BenchmarkReadIntervals measures reading our own trace back.
func BenchmarkReadIntervals(b *testing.B) {
	ctx := context.Background()
	in := info(b.TempDir())
	sink, err := chrome.New().Open(ctx, in)
	if err != nil {
		b.Fatal(err)
	}
	const batches = 256
	for i := 0; i < batches; i++ {
		if err := sink.Export(ctx, benchBatch(in, int64(i)*64_000)); err != nil {
			b.Fatal(err)
		}
	}
	if err := sink.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	path := sink.(*chrome.Sink).Path()
	b.ReportAllocs()
	for b.Loop() {
		ivs, err := chrome.ReadIntervalsFile(path)
		if err != nil || len(ivs) != batches*64 {
			b.Fatalf("%d intervals, %v", len(ivs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batches*64), "ns/event")
}
