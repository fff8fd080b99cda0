package device_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
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
