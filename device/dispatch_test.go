package device_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/device/devicetest"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
	"github.com/omniflow-go/omniflow/tensor"
)

// record runs f under a recording profile (shapes on) with cpu as the
// context's CPU, and returns what was recorded.
func record(t *testing.T, cpu *device.CPU, f func(ctx context.Context)) []profiler.Record {
	t.Helper()
	ctx := context.Background()
	mem := memory.New()
	p, err := profiler.New(profiler.WithSink(mem), profiler.WithRecordShapes(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actx, act := p.Enter(device.WithDevice(ctx, cpu), profiler.Track{Stage: 0, StageName: "s", LaneName: "l"}, "op")
	f(actx)
	act.End(nil)
	if _, err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	return mem.Records()
}

// kernels returns the kernel spans in recs.
func kernels(recs []profiler.Record) []profiler.Record {
	var out []profiler.Record
	for _, r := range recs {
		if r.Kind == profiler.KindKernel {
			out = append(out, r)
		}
	}
	return out
}

func attr(r profiler.Record, key string) string {
	a, ok := r.Attr(key)
	if !ok {
		return ""
	}
	if s := a.AsString(); s != "" {
		return s
	}
	return string(a.AppendJSON(nil))
}

// dispatchCase is one kernel call on host operands, named by its span.
type dispatchCase struct {
	kernel string
	in     []*tensor.Tensor
	run    func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error)
}

func dispatchCases(rng *rand.Rand) []dispatchCase {
	q, k, v := randT(rng, 2, 3, 4, 8), randT(rng, 2, 5, 2, 8), randT(rng, 2, 5, 2, 8)
	return []dispatchCase{
		{"softmax", []*tensor.Tensor{randT(rng, 3, 7)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.Softmax(ctx, in[0])
		}},
		{"rms_norm", []*tensor.Tensor{randT(rng, 3, 8), randT(rng, 8)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.RMSNorm(ctx, in[0], in[1], 1e-6)
		}},
		{"rms_norm_channels", []*tensor.Tensor{randT(rng, 2, 4, 3, 5), randT(rng, 4)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.RMSNormChannels(ctx, in[0], in[1], 1e-24/4)
		}},
		{"attention", []*tensor.Tensor{q, k, v}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.Attention(ctx, in[0], in[1], in[2], device.AttentionOptions{Causal: true, Past: 2})
		}},
		{"conv2d", []*tensor.Tensor{randT(rng, 1, 4, 6, 6), randT(rng, 2, 2, 3, 3), randT(rng, 2)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.Conv(ctx, in[0], in[1], in[2], device.ConvOptions{Groups: 2, Padding: []int{1}})
		}},
		{"conv1d", []*tensor.Tensor{randT(rng, 2, 3, 9), randT(rng, 4, 3, 3)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.Conv(ctx, in[0], in[1], nil, device.ConvOptions{Causal: true, Padding: []int{1}})
		}},
		{"add", []*tensor.Tensor{randT(rng, 2, 3, 4), randT(rng, 3, 1)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.Add(ctx, in[0], in[1])
		}},
		{"gelu", []*tensor.Tensor{randT(rng, 5, 6)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.GELU(ctx, in[0])
		}},
		{"argmax", []*tensor.Tensor{randT(rng, 4, 9)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.ArgMax(ctx, in[0])
		}},
		{"layer_norm", []*tensor.Tensor{randT(rng, 3, 8), randT(rng, 8), randT(rng, 8)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.LayerNorm(ctx, in[0], in[1], in[2], 1e-5)
		}},
		{"matmul", []*tensor.Tensor{randT(rng, 2, 3, 5), randT(rng, 2, 4, 5)}, func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
			return device.MatMul(ctx, in[0], in[1], false, true)
		}},
	}
}

// TestBackendDispatch runs each kernel three ways: on the CPU; on a Sim
// that implements it (it must run there, once, its span saying "sim", the
// result in the Sim's memory); and on a Sim that lacks it (tried once,
// answered ErrNotImplemented, run on the CPU: the span says "cpu", the
// result still lands on the Sim). All three results must be bit-identical:
// the same CPU arithmetic runs in each. Each call records exactly one
// kernel span.
func TestBackendDispatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, tc := range dispatchCases(rng) {
		t.Run(tc.kernel, func(t *testing.T) {
			cpu := device.NewCPU(device.WithThreads(1))
			var want *tensor.Tensor
			recs := record(t, cpu, func(ctx context.Context) {
				var err error
				if want, err = tc.run(ctx, tc.in); err != nil {
					t.Fatal(err)
				}
			})
			defer want.Release()
			if ks := kernels(recs); len(ks) != 1 || ks[0].Name != tc.kernel || attr(ks[0], "device") != "cpu" {
				t.Fatalf("cpu: kernel spans %v, want one %q on cpu", ks, tc.kernel)
			}
			for _, has := range []bool{true, false} {
				var sim *devicetest.Sim
				wantDev := "cpu"
				if has {
					sim = devicetest.NewSim(devicetest.WithKernels(tc.kernel))
					wantDev = "sim"
				} else {
					sim = devicetest.NewSim(devicetest.WithKernels("none"))
				}
				in := make([]*tensor.Tensor, len(tc.in))
				for i, x := range tc.in {
					in[i] = devicetest.Put(t, sim, x)
				}
				var got *tensor.Tensor
				recs := record(t, cpu, func(ctx context.Context) {
					var err error
					if got, err = tc.run(ctx, in); err != nil {
						t.Fatal(err)
					}
				})
				if got.OnHost() {
					t.Fatalf("has=%v: result on the host, want it on the sim", has)
				}
				ks := kernels(recs)
				if len(ks) != 1 || ks[0].Name != tc.kernel {
					t.Fatalf("has=%v: kernel spans %v, want one %q", has, ks, tc.kernel)
				}
				if d := attr(ks[0], "device"); d != wantDev {
					t.Errorf("has=%v: span device %q, want %q", has, d, wantDev)
				}
				if tries, runs := sim.Tries(tc.kernel), sim.Runs(tc.kernel); tries != 1 || runs != map[bool]int64{true: 1, false: 0}[has] {
					t.Errorf("has=%v: sim tried %d times and ran %d", has, tries, runs)
				}
				h := devicetest.Get(t, sim, got)
				if !tensor.SameShape(h.Shape(), want.Shape()) || string(h.Bytes()) != string(want.Bytes()) {
					t.Errorf("has=%v: result differs from the CPU's", has)
				}
				h.Release()
				got.Release()
				for _, x := range in {
					x.Release()
				}
				if sim.InUse() != 0 {
					t.Errorf("has=%v: %d sim bytes still in use", has, sim.InUse())
				}
			}
		})
	}
}

// TestBackendSample checks the sampling kernel's dispatch the same way: a
// Sim with "sample" draws the same token from the same seed, and its span
// says so; one without falls back.
func TestBackendSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	logits := randT(rng, 50)
	p := device.SampleParams{Temperature: 0.8, TopK: 10, TopP: 0.9, RepetitionPenalty: 1.3}
	prev := []int32{3, 7, 7}
	want := make([]int32, 8)
	for i := range want {
		tok, err := device.Sample(context.Background(), nil, logits, prev, p, rand.New(rand.NewPCG(uint64(i), 1)))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = tok
	}
	for _, has := range []bool{true, false} {
		sim := devicetest.NewSim()
		wantDev := "cpu"
		if has {
			sim, wantDev = devicetest.NewSim(devicetest.WithKernels("sample")), "sim"
		}
		d := devicetest.Put(t, sim, logits)
		var s device.Sampler
		recs := record(t, device.NewCPU(), func(ctx context.Context) {
			for i := range want {
				tok, err := device.Sample(ctx, &s, d, prev, p, rand.New(rand.NewPCG(uint64(i), 1)))
				if err != nil {
					t.Fatal(err)
				}
				if tok != want[i] {
					t.Errorf("has=%v seed %d: token %d, want %d", has, i, tok, want[i])
				}
			}
		})
		ks := kernels(recs)
		if len(ks) != len(want) {
			t.Fatalf("has=%v: %d kernel spans, want %d", has, len(ks), len(want))
		}
		for _, k := range ks {
			if k.Name != "sample" || attr(k, "device") != wantDev {
				t.Fatalf("has=%v: span %s on %s, want sample on %s", has, k.Name, attr(k, "device"), wantDev)
			}
		}
		d.Release()
	}
}

// TestSpanBytes checks that a span's bytes count each operand at its own
// element size: bfloat16 and float16 are 2 bytes, float32 4.
func TestSpanBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	a, b := randT(rng, 8, 16), randT(rng, 16, 4)
	ab, _ := a.ConvertTo(tensor.BFloat16)
	bh, _ := b.ConvertTo(tensor.Float16)
	for _, tc := range []struct {
		name string
		a, b *tensor.Tensor
		want int64
	}{
		{"f32", a, b, 4*8*16 + 4*16*4 + 4*8*4},
		{"bf16 x f16", ab, bh, 2*8*16 + 2*16*4 + 4*8*4},
		{"bf16 x f32", ab, b, 2*8*16 + 4*16*4 + 4*8*4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := record(t, device.NewCPU(), func(ctx context.Context) {
				out, err := device.MatMul(ctx, tc.a, tc.b, false, false)
				if err != nil {
					t.Fatal(err)
				}
				out.Release()
			})
			ks := kernels(recs)
			if len(ks) != 1 {
				t.Fatalf("%d kernel spans", len(ks))
			}
			if got := attr(ks[0], "bytes"); got != strconv.FormatInt(tc.want, 10) {
				t.Errorf("bytes %s, want %d", got, tc.want)
			}
			if got := attr(ks[0], "dtype"); got != tc.a.DType().String() {
				t.Errorf("dtype %s, want %s", got, tc.a.DType())
			}
		})
	}
}

// TestMemoryCounterPerDevice checks that the memory counter track follows
// the device that allocated: a kernel the Sim runs samples "memory.sim"
// (and not the CPU, which allocated nothing that outlives the call); a
// fallback samples both, the CPU for its scratch and the Sim for the result.
func TestMemoryCounterPerDevice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	x := randT(rng, 64, 64)
	for _, tc := range []struct {
		name      string
		kernels   []string
		wantCPU   bool
		wantSimAt float64
	}{
		{"backend", []string{"softmax"}, false, 2 * 64 * 64 * 4},
		{"fallback", nil, true, 2 * 64 * 64 * 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := devicetest.NewSim(devicetest.WithKernels(tc.kernels...))
			d := devicetest.Put(t, sim, x)
			var out *tensor.Tensor
			recs := record(t, device.NewCPU(), func(ctx context.Context) {
				var err error
				if out, err = device.Softmax(ctx, d); err != nil {
					t.Fatal(err)
				}
			})
			var simSamples []float64
			cpuSamples := 0
			for _, r := range recs {
				if r.Kind != profiler.KindCounter {
					continue
				}
				switch r.Name {
				case "memory.sim":
					simSamples = append(simSamples, r.Value)
				case "memory.cpu":
					cpuSamples++
				}
			}
			if len(simSamples) != 1 || simSamples[0] != tc.wantSimAt {
				t.Errorf("memory.sim samples %v, want [%v]", simSamples, tc.wantSimAt)
			}
			if (cpuSamples > 0) != tc.wantCPU {
				t.Errorf("%d memory.cpu samples, want some: %v", cpuSamples, tc.wantCPU)
			}
			out.Release()
			d.Release()
		})
	}
}

// TestFallbackMatchesReference runs a chain of kernels (rms_norm, linear,
// silu, softmax) on every device and compares with a float64 reference:
// the backend and fallback paths compose. Tolerance: relative 1e-5, as
// near() (float32 dot products of length 8 and vectorized exp).
func TestFallbackMatchesReference(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(8, 8))
		x, g, w := randT(rng, 3, 8), randT(rng, 8), randT(rng, 5, 8)
		dx, dg, dw := devicetest.Put(t, dev, x), devicetest.Put(t, dev, g), devicetest.Put(t, dev, w)
		defer dx.Release()
		defer dg.Release()
		defer dw.Release()
		n, err := device.RMSNorm(ctx, dx, dg, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Release()
		l, err := device.Linear(ctx, n, dw, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		s, err := device.SiLU(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Release()
		p, err := device.Softmax(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Release()
		h := devicetest.Get(t, dev, p)
		defer h.Release()
		for r := 0; r < 3; r++ {
			var ms float64
			for j := 0; j < 8; j++ {
				ms += x.At(r, j) * x.At(r, j) / 8
			}
			inv := 1 / math.Sqrt(ms+1e-6)
			z := make([]float64, 5)
			var mx float64 = math.Inf(-1)
			for o := 0; o < 5; o++ {
				var acc float64
				for j := 0; j < 8; j++ {
					acc += x.At(r, j) * inv * g.At(j) * w.At(o, j)
				}
				z[o] = acc / (1 + math.Exp(-acc))
				mx = math.Max(mx, z[o])
			}
			var sum float64
			for o := range z {
				z[o] = math.Exp(z[o] - mx)
				sum += z[o]
			}
			for o := range z {
				if got := float64(h.Float32s()[r*5+o]); !near(got, z[o]/sum) {
					t.Fatalf("row %d col %d: %g, want %g", r, o, got, z[o]/sum)
				}
			}
		}
	})
}
