package scheduler_test

import (
	"fmt"
	"testing"

	"github.com/omniflow-go/omniflow/diffusion/scheduler"
)

// BenchmarkStep times one Step. SetBytes is the latent's size in bytes
// (4 per float32 value), so MB/s is latent bytes stepped per second; the
// memory traffic is a multiple of it (Euler and DDIM read the sample and
// the model output and write the sample: 3×; UniPC also reads and writes
// its history and last sample: about 6–7×).
func BenchmarkStep(b *testing.B) {
	sizes := []struct {
		name string
		n    int
	}{
		{"64K", 1 << 16},
		{"1M", 1 << 20},
		{"wan720p", 16 * 21 * 90 * 160}, // Wan 2.1 latent: 16 channels, 21 frames, 90×160
	}
	const steps = 500
	makers := []struct {
		name string
		make func() scheduler.Scheduler
	}{
		{"flowmatch", func() scheduler.Scheduler {
			s, _ := scheduler.NewFlowMatchEuler(scheduler.DefaultFlowMatchEulerConfig())
			return s
		}},
		{"unipc", func() scheduler.Scheduler {
			s, _ := scheduler.NewFlowUniPC(scheduler.WanFlowUniPCConfig(5))
			return s
		}},
		{"ddim", func() scheduler.Scheduler {
			s, _ := scheduler.NewDDIM(scheduler.StableDiffusionDDIMConfig())
			return s
		}},
	}
	for _, mk := range makers {
		for _, sz := range sizes {
			b.Run(fmt.Sprintf("%s/%s", mk.name, sz.name), func(b *testing.B) {
				s := mk.make()
				if err := s.SetTimesteps(steps); err != nil {
					b.Fatal(err)
				}
				x := normals(1, sz.n)
				v := normals(2, sz.n)
				for i := range v {
					v[i] *= 1e-3 // keep the latent bounded over many steps
				}
				// One step first, so buffers a multistep scheduler allocates
				// once per generation are not in the timing.
				if err := s.Step(v, x, 0); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(4 * sz.n))
				b.ReportAllocs()
				step := 1
				for b.Loop() {
					if step == steps {
						if err := s.SetTimesteps(steps); err != nil {
							b.Fatal(err)
						}
						step = 0
					}
					if err := s.Step(v, x, step); err != nil {
						b.Fatal(err)
					}
					step++
				}
			})
		}
	}
}
