package device_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/device/devicetest"
	"github.com/omniflow-go/omniflow/tensor"
)

// Norm references in float64 (LayerNorm: Ba et al. 2016; RMSNorm: Zhang &
// Sennrich 2019; GroupNorm: Wu & He 2018). Tolerance: the near() relative
// 1e-5 bound, float32 outputs of statistics computed in float64.
func TestNorms(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(9, 10))
		x, w, b := randT(rng, 3, 8), randT(rng, 8), randT(rng, 8)
		const eps = 1e-5
		ln, err := device.LayerNorm(ctx, devicetest.Put(t, dev, x), devicetest.Put(t, dev, w), devicetest.Put(t, dev, b), eps)
		if err != nil {
			t.Fatal(err)
		}
		rms, err := device.RMSNorm(ctx, devicetest.Put(t, dev, x), devicetest.Put(t, dev, w), eps)
		if err != nil {
			t.Fatal(err)
		}
		hl, hr := devicetest.Get(t, dev, ln), devicetest.Get(t, dev, rms)
		for i := 0; i < 3; i++ {
			var mean, sq float64
			for j := 0; j < 8; j++ {
				mean += x.At(i, j) / 8
				sq += x.At(i, j) * x.At(i, j) / 8
			}
			var v float64
			for j := 0; j < 8; j++ {
				v += (x.At(i, j) - mean) * (x.At(i, j) - mean) / 8
			}
			for j := 0; j < 8; j++ {
				wantL := (x.At(i, j)-mean)/math.Sqrt(v+eps)*w.At(j) + b.At(j)
				wantR := x.At(i, j) / math.Sqrt(sq+eps) * w.At(j)
				if !near(hl.At(i, j), wantL) || !near(hr.At(i, j), wantR) {
					t.Fatalf("[%d,%d] layernorm %g want %g, rmsnorm %g want %g", i, j, hl.At(i, j), wantL, hr.At(i, j), wantR)
				}
			}
		}
		// GroupNorm over [2, 4, 3] with 2 groups.
		g := randT(rng, 2, 4, 3)
		gw, gb := randT(rng, 4), randT(rng, 4)
		gn, err := device.GroupNorm(ctx, devicetest.Put(t, dev, g), 2, devicetest.Put(t, dev, gw), devicetest.Put(t, dev, gb), eps)
		if err != nil {
			t.Fatal(err)
		}
		hg := devicetest.Get(t, dev, gn)
		for n := 0; n < 2; n++ {
			for grp := 0; grp < 2; grp++ {
				var mean, v float64
				for c := 2 * grp; c < 2*grp+2; c++ {
					for s := 0; s < 3; s++ {
						mean += g.At(n, c, s) / 6
					}
				}
				for c := 2 * grp; c < 2*grp+2; c++ {
					for s := 0; s < 3; s++ {
						v += (g.At(n, c, s) - mean) * (g.At(n, c, s) - mean) / 6
					}
				}
				for c := 2 * grp; c < 2*grp+2; c++ {
					for s := 0; s < 3; s++ {
						want := (g.At(n, c, s)-mean)/math.Sqrt(v+eps)*gw.At(c) + gb.At(c)
						if !near(hg.At(n, c, s), want) {
							t.Fatalf("groupnorm [%d,%d,%d] %g want %g", n, c, s, hg.At(n, c, s), want)
						}
					}
				}
			}
		}
		if _, err := device.GroupNorm(ctx, g, 3, nil, nil, eps); !errors.Is(err, device.ErrShape) {
			t.Fatalf("4 channels in 3 groups: %v", err)
		}
		if _, err := device.RMSNorm(ctx, x, tensor.Zeros(tensor.Float32, 7), eps); !errors.Is(err, device.ErrShape) {
			t.Fatalf("bad weight: %v", err)
		}
	})
}

// refRMSNormChannels is RMSNormChannels in float64 from its definition:
// y[n,c,p] = x[n,c,p] / √(mean_c x[n,·,p]² + eps) · w[c], over a
// contiguous float32 host x [N, C, ...] (w nil: 1).
func refRMSNormChannels(x *tensor.Tensor, w []float32, eps float32) []float64 {
	n, c := x.Dim(0), x.Dim(1)
	s := x.NumElements() / max(n*c, 1)
	v := x.Float32s()
	y := make([]float64, len(v))
	for img := range n {
		for p := range s {
			ms := 0.0
			for ch := range c {
				f := float64(v[(img*c+ch)*s+p])
				ms += f * f / float64(c)
			}
			r := 1 / math.Sqrt(ms+float64(eps))
			for ch := range c {
				g := 1.0
				if w != nil {
					g = float64(w[ch])
				}
				y[(img*c+ch)*s+p] = float64(v[(img*c+ch)*s+p]) * r * g
			}
		}
	}
	return y
}

// TestRMSNormChannels runs the channel-first RMS norm on every device over
// 3-, 4- and 5-D shapes, one channel, one position, rank 2, Wan's
// [C, 1, 1, 1] gamma and eps = 1e-24/C, no weight, bfloat16 input and a
// strided (permuted) input, against the float64 reference of the values
// the kernel was given. Tolerance: 4 u32 = 4·2⁻²⁴ relative, for the
// three float32 roundings of rstd, x·rstd and ·w (the sums are float64).
func TestRMSNormChannels(t *testing.T) {
	const tol = 4 * 0x1p-24
	rng := rand.New(rand.NewPCG(41, 42))
	type tc struct {
		name  string
		x     *tensor.Tensor // the operand, on the host
		ref   *tensor.Tensor // x's values, contiguous float32, for the reference
		w     *tensor.Tensor
		wvals []float32
		eps   float32
	}
	plain := func(name string, eps float32, wshape []int, shape ...int) tc {
		x := randT(rng, shape...)
		c := tc{name: name, x: x, ref: x, eps: eps}
		if wshape != nil {
			c.w = randT(rng, wshape...)
			c.wvals = c.w.Float32s()
		}
		return c
	}
	cases := []tc{
		plain("3d", 1e-6, []int{5}, 2, 5, 7),
		plain("4d", 1e-6, []int{6}, 2, 6, 3, 4),
		plain("5d wan gamma", 1e-24/8, []int{8, 1, 1, 1}, 1, 8, 3, 5, 7),
		plain("5d no weight", 1e-5, nil, 2, 3, 2, 4, 4),
		plain("one channel", 1e-6, []int{1}, 3, 1, 6),
		plain("one position", 1e-6, []int{7}, 2, 7, 1, 1),
		plain("rank 2", 1e-6, []int{9}, 4, 9),
		plain("wide", 1e-24/384, []int{384}, 1, 384, 2, 30, 41),
	}
	{ // bfloat16 x, float32 weight
		x := randT(rng, 2, 4, 3, 5)
		xb, _ := x.ConvertTo(tensor.BFloat16)
		ref, _ := xb.ConvertTo(tensor.Float32)
		w := randT(rng, 4)
		cases = append(cases, tc{name: "bf16", x: xb, ref: ref, w: w, wvals: w.Float32s(), eps: 1e-6})
	}
	{ // channel-last storage seen channel-first: strided
		base := randT(rng, 2, 3, 4, 6) // [N, H, W, C]
		v, _ := base.Permute(0, 3, 1, 2)
		ref, _ := v.Contiguous()
		w := randT(rng, 6)
		cases = append(cases, tc{name: "strided", x: base, ref: ref, w: w, wvals: w.Float32s(), eps: 1e-6})
	}
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		ctx := context.Background()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				x := devicetest.Put(t, dev, c.x)
				defer x.Release()
				if c.name == "strided" {
					v, err := x.Permute(0, 3, 1, 2)
					if err != nil {
						t.Fatal(err)
					}
					defer v.Release()
					if v.IsContiguous() {
						t.Fatal("permuted operand is contiguous")
					}
					x = v
				}
				var w *tensor.Tensor
				if c.w != nil {
					w = devicetest.Put(t, dev, c.w)
					defer w.Release()
				}
				out, err := device.RMSNormChannels(ctx, x, w, c.eps)
				if err != nil {
					t.Fatal(err)
				}
				defer out.Release()
				h := devicetest.Get(t, dev, out)
				defer h.Release()
				if !tensor.SameShape(h.Shape(), c.ref.Shape()) || h.DType() != tensor.Float32 {
					t.Fatalf("result %v %v, want float32 %v", h.DType(), h.Shape(), c.ref.Shape())
				}
				want := refRMSNormChannels(c.ref, c.wvals, c.eps)
				for i, g := range h.Float32s() {
					if d := math.Abs(float64(g) - want[i]); d > tol*math.Abs(want[i]) {
						t.Fatalf("element %d: %v, want %v (diff %.3g)", i, g, want[i], d)
					}
				}
				if c.name == "rank 2" { // the same kernel as RMSNorm over rows
					r, err := device.RMSNorm(ctx, x, w, c.eps)
					if err != nil {
						t.Fatal(err)
					}
					hr := devicetest.Get(t, dev, r)
					if string(hr.Bytes()) != string(h.Bytes()) {
						t.Error("rank 2: differs from RMSNorm")
					}
					hr.Release()
					r.Release()
				}
			})
		}
	})
}

// TestRMSNormChannelsSpan: one "rms_norm_channels" kernel span, with
// FLOPs 4 per element and bytes at each operand's own element size
// (bfloat16 x: 2, float32 gamma: 4, the float32 result: 4).
func TestRMSNormChannelsSpan(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	x, _ := randT(rng, 1, 8, 2, 3, 5).ConvertTo(tensor.BFloat16)
	g := randT(rng, 8, 1, 1, 1)
	const size = 8 * 2 * 3 * 5
	recs := record(t, device.NewCPU(), func(ctx context.Context) {
		out, err := device.RMSNormChannels(ctx, x, g, 1e-24/8)
		if err != nil {
			t.Fatal(err)
		}
		out.Release()
	})
	ks := kernels(recs)
	if len(ks) != 1 || ks[0].Name != "rms_norm_channels" {
		t.Fatalf("kernel spans %v, want one rms_norm_channels", ks)
	}
	for key, want := range map[string]string{
		"flops": strconv.Itoa(4 * size), "bytes": strconv.Itoa(2*size + 4*8 + 4*size),
		"dtype": "bfloat16", "device": "cpu", "shape.in0": "[1,8,2,3,5]", "shape.in1": "[8,1,1,1]",
	} {
		if got := attr(ks[0], key); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
}
