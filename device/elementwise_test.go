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

// The CPU kernels are checked against float64 references in device/cpu;
// these tests check the tensor-level wiring (shapes, broadcasting, dtype
// conversion, the fallback from a device without kernels) on every device.
// Tolerance: relative 1e-5 — a few float32 ulps (2^-24 ≈ 6e-8 each) of
// the kernels' vectorized exp/tanh approximations, with margin.
func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-5*math.Max(1, math.Abs(want))
}

func TestElementwise(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(7, 8))
		x := randT(rng, 3, 4)
		pos := tensor.Zeros(tensor.Float32, 3, 4)
		for i, v := range x.Float32s() {
			pos.Float32s()[i] = float32(math.Abs(float64(v))) + 0.1
		}
		unary := []struct {
			name string
			in   *tensor.Tensor
			f    func(context.Context, *tensor.Tensor) (*tensor.Tensor, error)
			ref  func(float64) float64
		}{
			{"exp", x, device.Exp, math.Exp},
			{"tanh", x, device.Tanh, math.Tanh},
			{"sigmoid", x, device.Sigmoid, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }},
			{"neg", x, device.Neg, func(v float64) float64 { return -v }},
			{"sqrt", pos, device.Sqrt, math.Sqrt},
			{"rsqrt", pos, device.Rsqrt, func(v float64) float64 { return 1 / math.Sqrt(v) }},
			{"scale", x, func(c context.Context, t *tensor.Tensor) (*tensor.Tensor, error) { return device.Scale(c, t, 2.5) },
				func(v float64) float64 { return 2.5 * v }},
			{"add_scalar", x, func(c context.Context, t *tensor.Tensor) (*tensor.Tensor, error) { return device.AddScalar(c, t, -1) },
				func(v float64) float64 { return v - 1 }},
		}
		for _, tc := range unary {
			out, err := tc.f(ctx, devicetest.Put(t, dev, tc.in))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			h := devicetest.Get(t, dev, out)
			for i, v := range tc.in.Float32s() {
				if want := tc.ref(float64(v)); !near(float64(h.Float32s()[i]), want) {
					t.Fatalf("%s(%g) = %g, want %g", tc.name, v, h.Float32s()[i], want)
				}
			}
		}
		// Broadcasting: [3,4] op [4] and [3,1].
		row, col := randT(rng, 4), randT(rng, 3, 1)
		binary := []struct {
			name string
			f    func(context.Context, *tensor.Tensor, *tensor.Tensor) (*tensor.Tensor, error)
			ref  func(a, b float64) float64
		}{
			{"add", device.Add, func(a, b float64) float64 { return a + b }},
			{"sub", device.Sub, func(a, b float64) float64 { return a - b }},
			{"mul", device.Mul, func(a, b float64) float64 { return a * b }},
			{"div", device.Div, func(a, b float64) float64 { return a / b }},
		}
		for _, tc := range binary {
			for _, b := range []*tensor.Tensor{row, col} {
				out, err := tc.f(ctx, devicetest.Put(t, dev, x), devicetest.Put(t, dev, b))
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				h := devicetest.Get(t, dev, out)
				for i := 0; i < 3; i++ {
					for j := 0; j < 4; j++ {
						var bv float64
						if b.Rank() == 1 {
							bv = b.At(j)
						} else {
							bv = b.At(i, 0)
						}
						if want := tc.ref(x.At(i, j), bv); !near(h.At(i, j), want) {
							t.Fatalf("%s at %d,%d: %g, want %g", tc.name, i, j, h.At(i, j), want)
						}
					}
				}
			}
		}
		if _, err := device.Add(ctx, x, randT(rng, 3)); !errors.Is(err, device.ErrShape) {
			t.Fatalf("bad broadcast: %v", err)
		}
		// Softmax and reductions along the last axis.
		sm, err := device.Softmax(ctx, devicetest.Put(t, dev, x))
		if err != nil {
			t.Fatal(err)
		}
		sum, _ := device.Sum(ctx, sm)
		mx, _ := device.Max(ctx, devicetest.Put(t, dev, x))
		am, _ := device.ArgMax(ctx, devicetest.Put(t, dev, x))
		hs, hm, ha := devicetest.Get(t, dev, sum), devicetest.Get(t, dev, mx), devicetest.Get(t, dev, am)
		for i := 0; i < 3; i++ {
			var z, best float64 = 0, math.Inf(-1)
			arg := 0
			for j := 0; j < 4; j++ {
				z += math.Exp(x.At(i, j))
				if x.At(i, j) > best {
					best, arg = x.At(i, j), j
				}
			}
			if !near(hs.At(i), 1) || hm.At(i) != best || int(ha.At(i)) != arg {
				t.Fatalf("row %d: softmax sums to %g, max %g (want %g), argmax %g (want %d)", i, hs.At(i), hm.At(i), best, ha.At(i), arg)
			}
			if e := math.Exp(x.At(i, 0)) / z; !near(devicetest.Get(t, dev, sm).At(i, 0), e) {
				t.Fatalf("softmax[%d,0] %g, want %g", i, devicetest.Get(t, dev, sm).At(i, 0), e)
			}
		}
	})
}
