package nn_test

import (
	"context"
	"math"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
)

// f64 reads a tensor into float64 rows of its last dimension.
func f64(t *tensor.Tensor) []float64 {
	c, _ := t.Contiguous()
	out := make([]float64, c.NumElements())
	for i, v := range c.Float32s() {
		out[i] = float64(v)
	}
	return out
}

// refLinear: y[r] = W·x[r] + b in float64.
func refLinear(l *nn.Linear, x []float64) []float64 {
	w := f64(l.W)
	rows := len(x) / l.In
	y := make([]float64, rows*l.Out)
	for r := 0; r < rows; r++ {
		for o := 0; o < l.Out; o++ {
			s := 0.0
			if l.B != nil {
				s = f64(l.B)[o]
			}
			for i := 0; i < l.In; i++ {
				s += w[o*l.In+i] * x[r*l.In+i]
			}
			y[r*l.Out+o] = s
		}
	}
	return y
}

func silu(v float64) float64 { return v / (1 + math.Exp(-v)) }

func input(b, t, d int) *tensor.Tensor {
	x := tensor.Zeros(tensor.Float32, b, t, d)
	for i := range x.Float32s() {
		x.Float32s()[i] = float32(math.Sin(float64(i)*0.37) + 0.1*float64(i%7))
	}
	return x
}

// Tolerance 2e-5 absolute: outputs are O(1) sums of float32 products over
// widths <= 32 through two or three layers (error ~ layers·k·u).
func assertClose(t *testing.T, got *tensor.Tensor, want []float64) {
	t.Helper()
	g := f64(got)
	if len(g) != len(want) {
		t.Fatalf("%d values, want %d", len(g), len(want))
	}
	for i := range want {
		if math.Abs(g[i]-want[i]) > 2e-5 {
			t.Fatalf("element %d: %g, want %g", i, g[i], want[i])
		}
	}
}

func TestSwiGLUMLP(t *testing.T) {
	m, err := nn.NewMLP(nn.Random(1), "mlp", nn.MLPConfig{Dim: 8, Hidden: 16, Act: nn.ActSiLU, Gated: true})
	if err != nil {
		t.Fatal(err)
	}
	x := input(2, 3, 8)
	y, err := m.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	xs := f64(x)
	g, u := refLinear(m.Gate, xs), refLinear(m.Up, xs)
	h := make([]float64, len(g))
	for i := range g {
		h[i] = silu(g[i]) * u[i]
	}
	assertClose(t, y, refLinear(m.Down, h))
}

// refSelfAttention: causal GQA self-attention with rotate-half RoPE at
// positions 0..T-1, in float64 from the layer's weights.
func refSelfAttention(a *nn.Attention, x []float64, b, T int, theta float64) []float64 {
	c := a.Cfg
	q, k, v := refLinear(a.Q, x), refLinear(a.K, x), refLinear(a.V, x)
	rot := func(z []float64, heads int) {
		for bt := 0; bt < b*T; bt++ {
			p := float64(bt % T)
			for h := 0; h < heads; h++ {
				base := (bt*heads + h) * c.HeadDim
				for i := 0; i < c.HeadDim/2; i++ {
					ang := p * math.Pow(theta, -2*float64(i)/float64(c.HeadDim))
					x0, x1 := z[base+i], z[base+i+c.HeadDim/2]
					z[base+i] = x0*math.Cos(ang) - x1*math.Sin(ang)
					z[base+i+c.HeadDim/2] = x1*math.Cos(ang) + x0*math.Sin(ang)
				}
			}
		}
	}
	rot(q, c.Heads)
	rot(k, c.KVHeads)
	out := make([]float64, b*T*c.Heads*c.HeadDim)
	grp := c.Heads / c.KVHeads
	for bi := 0; bi < b; bi++ {
		for h := 0; h < c.Heads; h++ {
			g := h / grp
			for i := 0; i < T; i++ {
				s := make([]float64, i+1)
				m, z := math.Inf(-1), 0.0
				for j := 0; j <= i; j++ {
					for d := 0; d < c.HeadDim; d++ {
						s[j] += q[((bi*T+i)*c.Heads+h)*c.HeadDim+d] * k[((bi*T+j)*c.KVHeads+g)*c.HeadDim+d]
					}
					s[j] /= math.Sqrt(float64(c.HeadDim))
					m = math.Max(m, s[j])
				}
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				for d := 0; d < c.HeadDim; d++ {
					acc := 0.0
					for j := 0; j <= i; j++ {
						acc += s[j] / z * v[((bi*T+j)*c.KVHeads+g)*c.HeadDim+d]
					}
					out[((bi*T+i)*c.Heads+h)*c.HeadDim+d] = acc
				}
			}
		}
	}
	return refLinear(a.O, out)
}

func TestAttentionPrefillAndDecode(t *testing.T) {
	ctx := context.Background()
	const b, T, dim, theta = 1, 6, 16, 10000.0
	a, err := nn.NewAttention(nn.Random(2), "attn", nn.AttentionConfig{Dim: dim, Heads: 4, KVHeads: 2, QKVBias: true})
	if err != nil {
		t.Fatal(err)
	}
	tab := device.NewRopeTable(32, 4, theta)
	x := input(b, T, dim)
	want := refSelfAttention(a, f64(x), b, T, theta)

	full, err := a.Forward(ctx, x, nn.AttendOptions{Causal: true, RoPE: &tab})
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, full, want)

	// The same through a KV cache: a 4-token prompt, then two single steps.
	cache, _ := device.NewKVCache(b, 2, 16, 4)
	var got []float64
	for _, r := range [][2]int{{0, 4}, {4, 5}, {5, 6}} {
		s, _ := x.Slice(1, r[0], r[1])
		y, err := a.Forward(ctx, s, nn.AttendOptions{Cache: cache, RoPE: &tab})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f64(y)...)
	}
	yt, _ := tensor.FromFloat32(func() []float32 {
		o := make([]float32, len(got))
		for i, v := range got {
			o[i] = float32(v)
		}
		return o
	}(), len(got))
	assertClose(t, yt, want)
}

func TestCrossAttentionShapes(t *testing.T) {
	ctx := context.Background()
	a, err := nn.NewAttention(nn.Random(3), "cross", nn.AttentionConfig{Dim: 8, Heads: 2, KVDim: 12, QKNorm: true})
	if err != nil {
		t.Fatal(err)
	}
	x, c := input(2, 3, 8), input(2, 5, 12)
	y, err := a.Forward(ctx, x, nn.AttendOptions{Context: c, KeyMask: []bool{true, true, true, false, false, true, true, true, true, true}})
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(y.Shape(), []int{2, 3, 8}) {
		t.Fatalf("shape %v", y.Shape())
	}
	if _, err := a.Forward(ctx, x, nn.AttendOptions{Context: input(2, 5, 8)}); err == nil {
		t.Fatal("context of the wrong width accepted")
	}
}

func TestConvAndEmbeddingLayers(t *testing.T) {
	ctx := context.Background()
	c, err := nn.NewConv(nn.Random(4), "conv", nn.ConvConfig{In: 2, Out: 3, Kernel: []int{3}, Bias: true,
		Opt: device.ConvOptions{Padding: []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	x := input(1, 2, 5)
	y, err := c.Forward(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	// out[o, p] = b[o] + Σ_{c,k} w[o,c,k]·x[c, p-1+k]
	xs, w, b := f64(x), f64(c.W), f64(c.B)
	var want []float64
	for o := 0; o < 3; o++ {
		for p := 0; p < 5; p++ {
			s := b[o]
			for ch := 0; ch < 2; ch++ {
				for k := 0; k < 3; k++ {
					if q := p - 1 + k; q >= 0 && q < 5 {
						s += w[(o*2+ch)*3+k] * xs[ch*5+q]
					}
				}
			}
			want = append(want, s)
		}
	}
	assertClose(t, y, want)

	up, err := nn.NewConvTranspose1d(nn.Random(5), "up", 2, 4, 4, true, device.ConvTranspose1dOptions{Stride: 2, Padding: 1})
	if err != nil {
		t.Fatal(err)
	}
	z, err := up.Forward(ctx, x)
	if err != nil || !tensor.SameShape(z.Shape(), []int{1, 4, 10}) {
		t.Fatalf("upsampled %v, %v", z, err)
	}
	e, err := nn.NewEmbedding(nn.Random(6), "emb", 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := tensor.FromInt32([]int32{4, 1}, 2)
	r, err := e.Forward(ctx, ids)
	if err != nil || r.At(0, 2) != e.W.At(4, 2) {
		t.Fatalf("embedding %v %v", r, err)
	}
	if _, err := nn.NewConv(nn.Random(4), "bad", nn.ConvConfig{In: 3, Out: 4, Kernel: []int{3}, Opt: device.ConvOptions{Groups: 2}}); err == nil {
		t.Fatal("3 channels in 2 groups accepted")
	}
}
