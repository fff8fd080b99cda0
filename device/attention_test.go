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

// refAttention is softmax(scale·q·kᵀ + mask)·v in float64 for [B, T, H, D]
// operands with grouped-query heads (Vaswani et al. 2017; GQA: Ainslie et
// al. 2023, head h reads kv head h/(Hq/Hkv)).
func refAttention(q, k, v *tensor.Tensor, causal bool, past int, keyMask []bool) []float64 {
	b, tq, hq, d := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	tk, hk := k.Dim(1), k.Dim(2)
	out := make([]float64, b*tq*hq*d)
	scale := 1 / math.Sqrt(float64(d))
	for bi := 0; bi < b; bi++ {
		for h := 0; h < hq; h++ {
			g := h / (hq / hk)
			for i := 0; i < tq; i++ {
				s := make([]float64, tk)
				m := math.Inf(-1)
				for j := 0; j < tk; j++ {
					s[j] = math.Inf(-1)
					if (causal && j > past+i) || (keyMask != nil && !keyMask[bi*tk+j]) {
						continue
					}
					var dot float64
					for x := 0; x < d; x++ {
						dot += q.At(bi, i, h, x) * k.At(bi, j, g, x)
					}
					s[j] = dot * scale
					m = math.Max(m, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				for x := 0; x < d; x++ {
					var acc float64
					for j := 0; j < tk; j++ {
						acc += s[j] / z * v.At(bi, j, g, x)
					}
					out[((bi*tq+i)*hq+h)*d+x] = acc
				}
			}
		}
	}
	return out
}

// Tolerance 1e-5 absolute on outputs of size O(1): the scores and the
// weighted sums are float32 dot products of length <= 16 (error ~ k·u),
// well inside it.
func checkClose(t *testing.T, name string, got *tensor.Tensor, want []float64) {
	t.Helper()
	for i, g := range got.Float32s() {
		if math.Abs(float64(g)-want[i]) > 1e-5 {
			t.Fatalf("%s: element %d = %g, want %g", name, i, g, want[i])
		}
	}
}

func TestAttention(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(11, 12))
		for _, tc := range []struct {
			name      string
			b, tq, tk int
			hq, hk, d int
			causal    bool
			past      int
			keyMask   bool
		}{
			{"mha", 2, 5, 5, 4, 4, 8, false, 0, false},
			{"gqa causal prefill", 1, 6, 6, 4, 2, 8, true, 0, false},
			{"decode step", 2, 1, 7, 6, 2, 4, true, 6, false},
			{"cross with padding", 2, 3, 5, 2, 2, 8, false, 0, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				q := randT(rng, tc.b, tc.tq, tc.hq, tc.d)
				k := randT(rng, tc.b, tc.tk, tc.hk, tc.d)
				v := randT(rng, tc.b, tc.tk, tc.hk, tc.d)
				var km []bool
				if tc.keyMask {
					km = make([]bool, tc.b*tc.tk)
					for i := range km {
						km[i] = i%tc.tk < tc.tk-1-i/tc.tk // a different length per sequence
					}
				}
				out, err := device.Attention(ctx, devicetest.Put(t, dev, q), devicetest.Put(t, dev, k), devicetest.Put(t, dev, v),
					device.AttentionOptions{Causal: tc.causal, Past: tc.past, KeyMask: km})
				if err != nil {
					t.Fatal(err)
				}
				checkClose(t, tc.name, devicetest.Get(t, dev, out), refAttention(q, k, v, tc.causal, tc.past, km))
			})
		}
	})
}

// TestAttentionCacheMatchesFull: a prompt then decode steps through the KV
// cache give the same outputs as causal attention over the whole sequence.
func TestAttentionCacheMatchesFull(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 14))
	const b, T, hq, hk, d = 2, 7, 4, 2, 8
	q, k, v := randT(rng, b, T, hq, d), randT(rng, b, T, hk, d), randT(rng, b, T, hk, d)
	want := refAttention(q, k, v, true, 0, nil)
	cache, err := device.NewKVCache(b, hk, 16, d)
	if err != nil {
		t.Fatal(err)
	}
	steps := [][2]int{{0, 4}, {4, 5}, {5, 6}, {6, 7}} // a 4-token prompt, then one token at a time
	for _, st := range steps {
		sl := func(x *tensor.Tensor) *tensor.Tensor {
			s, _ := x.Slice(1, st[0], st[1])
			c, _ := s.Contiguous()
			return c
		}
		if err := cache.Append(ctx, sl(k), sl(v)); err != nil {
			t.Fatal(err)
		}
		out, err := device.AttentionCache(ctx, sl(q), cache, device.AttentionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for bi := 0; bi < b; bi++ {
			for i := st[0]; i < st[1]; i++ {
				for h := 0; h < hq; h++ {
					for x := 0; x < d; x++ {
						g := out.At(bi, i-st[0], h, x)
						w := want[((bi*T+i)*hq+h)*d+x]
						if math.Abs(g-w) > 1e-5 {
							t.Fatalf("position %d: %g, want %g", i, g, w)
						}
					}
				}
			}
		}
	}
	if cache.Len() != T {
		t.Fatalf("cache length %d", cache.Len())
	}
	small, _ := device.NewKVCache(1, 1, 2, 4)
	x := randT(rng, 1, 3, 1, 4)
	if err := small.Append(ctx, x, x); err == nil {
		t.Fatal("append past capacity succeeded")
	}
	if _, err := device.Attention(ctx, q, randT(rng, b, T, 3, d), randT(rng, b, T, 3, d), device.AttentionOptions{}); !errors.Is(err, device.ErrShape) {
		t.Fatalf("4 query heads over 3 kv heads: %v", err)
	}
}

// TestRoPE against the rotate-half formula (Su et al. 2021, RoFormer; the
// Hugging Face Qwen2 convention): for i < D/2 with angle a = p·θ^(-2i/D),
// x'[i] = x[i]cos a − x[i+D/2] sin a and x'[i+D/2] = x[i+D/2] cos a + x[i] sin a.
func TestRoPE(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		rng := rand.New(rand.NewPCG(15, 16))
		const b, T, h, d, pos0, theta = 2, 3, 2, 8, 5, 10000.0
		x := randT(rng, b, T, h, d)
		tab := device.NewRopeTable(64, d, theta)
		out, err := device.RoPE(context.Background(), devicetest.Put(t, dev, x), tab, device.RopeHalf, pos0, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := devicetest.Get(t, dev, out)
		for bi := 0; bi < b; bi++ {
			for s := 0; s < T; s++ {
				for hh := 0; hh < h; hh++ {
					for i := 0; i < d/2; i++ {
						a := float64(pos0+s) * math.Pow(theta, -2*float64(i)/d)
						x0, x1 := x.At(bi, s, hh, i), x.At(bi, s, hh, i+d/2)
						w0 := x0*math.Cos(a) - x1*math.Sin(a)
						w1 := x1*math.Cos(a) + x0*math.Sin(a)
						if math.Abs(got.At(bi, s, hh, i)-w0) > 1e-5 || math.Abs(got.At(bi, s, hh, i+d/2)-w1) > 1e-5 {
							t.Fatalf("[%d,%d,%d,%d]: %g,%g want %g,%g", bi, s, hh, i, got.At(bi, s, hh, i), got.At(bi, s, hh, i+d/2), w0, w1)
						}
					}
				}
			}
		}
		if _, err := device.RoPE(context.Background(), x, tab, device.RopeHalf, 62, nil); !errors.Is(err, device.ErrShape) {
			t.Fatalf("positions past the table: %v", err)
		}
	})
}

func TestActivations(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(17, 18))
		x, up := randT(rng, 4, 5), randT(rng, 4, 5)
		gelu := func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }
		geluTanh := func(v float64) float64 {
			return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
		}
		silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
		for _, tc := range []struct {
			name string
			f    func(context.Context, *tensor.Tensor) (*tensor.Tensor, error)
			ref  func(float64) float64
		}{{"gelu", device.GELU, gelu}, {"gelu_tanh", device.GELUTanh, geluTanh}, {"silu", device.SiLU, silu}} {
			out, err := tc.f(ctx, devicetest.Put(t, dev, x))
			if err != nil {
				t.Fatal(err)
			}
			h := devicetest.Get(t, dev, out)
			for i, v := range x.Float32s() {
				if !near(float64(h.Float32s()[i]), tc.ref(float64(v))) {
					t.Fatalf("%s(%g) = %g, want %g", tc.name, v, h.Float32s()[i], tc.ref(float64(v)))
				}
			}
		}
		sw, err := device.SwiGLU(ctx, devicetest.Put(t, dev, x), devicetest.Put(t, dev, up))
		if err != nil {
			t.Fatal(err)
		}
		h := devicetest.Get(t, dev, sw)
		for i, v := range x.Float32s() {
			if want := silu(float64(v)) * float64(up.Float32s()[i]); !near(float64(h.Float32s()[i]), want) {
				t.Fatalf("swiglu %g, want %g", h.Float32s()[i], want)
			}
		}
	})
}
