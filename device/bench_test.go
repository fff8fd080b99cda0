package device_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/device/devicetest"
	"github.com/omniflow-go/omniflow/tensor"
)

// BenchmarkKernels measures kernels through the dispatcher, on the CPU
// and on a Sim that lacks them (the fallback: operands copied to the host
// and the result back), so the cost of dispatch and of the fallback's
// copies shows beside the arithmetic. GB/s counts the operands read and
// the result written once.
func BenchmarkKernels(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	type bench struct {
		name  string
		in    []*tensor.Tensor
		bytes float64
		run   func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error)
	}
	x := randT(rng, 8, 4096)
	benches := []bench{
		{"add/64", []*tensor.Tensor{randT(rng, 64), randT(rng, 64)}, 3 * 4 * 64,
			func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
				return device.Add(ctx, in[0], in[1])
			}},
		{"softmax/8x4096", []*tensor.Tensor{x}, 2 * 4 * 8 * 4096,
			func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
				return device.Softmax(ctx, in[0])
			}},
		{"rms_norm/8x4096", []*tensor.Tensor{x, randT(rng, 4096)}, 4 * (2*8*4096 + 4096),
			func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
				return device.RMSNorm(ctx, in[0], in[1], 1e-6)
			}},
		{"rms_norm_channels/1x384x1x60x104", []*tensor.Tensor{randT(rng, 1, 384, 1, 60, 104), randT(rng, 384, 1, 1, 1)}, 4 * (2*384*60*104 + 384),
			func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
				return device.RMSNormChannels(ctx, in[0], in[1], 1e-24/384)
			}},
		{"attention/decode-q28-kv4-512x128", []*tensor.Tensor{randT(rng, 1, 1, 28, 128), randT(rng, 1, 512, 4, 128), randT(rng, 1, 512, 4, 128)},
			4 * (2*28*128 + 2*512*4*128),
			func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
				return device.Attention(ctx, in[0], in[1], in[2], device.AttentionOptions{})
			}},
	}
	for _, dev := range []device.Device{device.NewCPU(), devicetest.NewSim()} {
		for _, bc := range benches {
			b.Run(bc.name+"/"+dev.Name()+"/f32", func(b *testing.B) {
				in := make([]*tensor.Tensor, len(bc.in))
				for i, t := range bc.in {
					in[i] = devicetest.Put(b, dev, t)
					defer in[i].Release()
				}
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					out, err := bc.run(ctx, in)
					if err != nil {
						b.Fatal(err)
					}
					out.Release()
				}
				b.ReportMetric(bc.bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkSample measures one token drawn from a 152k vocabulary through
// the dispatcher with Qwen2.5-Omni's talker settings (top-k 40, top-p 0.8)
// and a plain temperature draw; GB/s counts one pass over the logits.
func BenchmarkSample(b *testing.B) {
	const vocab = 151936
	logits := randT(rand.New(rand.NewPCG(2, 2)), vocab)
	for _, tc := range []struct {
		name string
		p    device.SampleParams
	}{
		{"greedy", device.SampleParams{}},
		{"temperature", device.SampleParams{Temperature: 0.9}},
		{"top-k-top-p", device.SampleParams{Temperature: 0.9, TopK: 40, TopP: 0.8, RepetitionPenalty: 1.05}},
	} {
		b.Run(tc.name+"/cpu/f32/152K", func(b *testing.B) {
			var s device.Sampler
			rng := rand.New(rand.NewPCG(3, 3))
			prev := []int32{1, 2, 3, 500, 9000}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := device.Sample(ctx, &s, logits, prev, tc.p, rng); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(4*vocab*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
