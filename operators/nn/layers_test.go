package nn_test

import (
	"errors"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
)

// The value tests compare each layer with its float64 reference on seeded
// random inputs, within the float32 error bounds derived in ref_test.go.

func TestLinearMatchesFloat64(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in, out int
		bias    bool
		shape   []int
	}{
		{"bias", 24, 10, true, []int{2, 3, 24}},
		{"no_bias", 33, 7, false, []int{5, 33}},
		{"rank4", 8, 16, true, []int{2, 1, 3, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := nn.NewLinear(perturbed{11}, "fc", tc.in, tc.out, tc.bias)
			if err != nil {
				t.Fatal(err)
			}
			x := uniform(nil, 1, -1, 1, tc.shape...)
			y, err := l.Forward(bg, x)
			if err != nil {
				t.Fatal(err)
			}
			shape := append(append([]int(nil), tc.shape[:len(tc.shape)-1]...), tc.out)
			checkClose(t, y, shape, refLinear(l, exact(x)))
		})
	}
}

func TestMLPMatchesFloat64(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  nn.MLPConfig
	}{
		{"swiglu", nn.MLPConfig{Dim: 8, Hidden: 16, Act: nn.ActSiLU, Gated: true}},
		{"gelu", nn.MLPConfig{Dim: 12, Hidden: 20, Act: nn.ActGELU, Bias: true}},
		{"gelu_tanh", nn.MLPConfig{Dim: 12, Hidden: 20, Act: nn.ActGELUTanh, Bias: true}},
		{"gated_gelu_tanh", nn.MLPConfig{Dim: 8, Hidden: 24, Act: nn.ActGELUTanh, Gated: true,
			GateName: "wi_0", UpName: "wi_1", DownName: "wo"}},
		{"gated_gelu", nn.MLPConfig{Dim: 8, Hidden: 24, Act: nn.ActGELU, Gated: true, Bias: true}},
		{"silu", nn.MLPConfig{Dim: 8, Hidden: 12, Act: nn.ActSiLU}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := nn.NewMLP(perturbed{12}, "mlp", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Inputs of magnitude up to 3 reach the activations' tails after
			// the projections.
			x := uniform(nil, 2, -3, 3, 2, 3, tc.cfg.Dim)
			y, err := m.Forward(bg, x)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, y, []int{2, 3, tc.cfg.Dim}, refMLP(m, exact(x)))
		})
	}
}

func TestRMSNormMatchesFloat64(t *testing.T) {
	n, err := nn.NewRMSNorm(perturbed{13}, "norm", 24, 1e-6)
	if err != nil {
		t.Fatal(err)
	}
	x := uniform(nil, 3, -2, 2, 3, 4, 24)
	y, err := n.Forward(bg, x)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, y, x.Shape(), refRMSNorm(exact(x), 24, f64(n.W), 1e-6))

	// A large ε is part of the formula, not a guard: rows of small values
	// are scaled by about 1/√ε.
	n.Eps = 0.5
	small := uniform(nil, 4, -0.1, 0.1, 2, 24)
	y, err = n.Forward(bg, small)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, y, small.Shape(), refRMSNorm(exact(small), 24, f64(n.W), 0.5))
}

func TestLayerNormMatchesFloat64(t *testing.T) {
	for _, affine := range []bool{true, false} {
		name := map[bool]string{true: "affine", false: "plain"}[affine]
		t.Run(name, func(t *testing.T) {
			n, err := nn.NewLayerNorm(perturbed{14}, "ln", 20, 1e-5, affine)
			if err != nil {
				t.Fatal(err)
			}
			if (n.W != nil) != affine || (n.B != nil) != affine {
				t.Fatalf("affine %v: weight %v, bias %v", affine, n.W, n.B)
			}
			// An offset mean: a norm that skipped the centring would fail.
			x := uniform(nil, 5, -0.5, 1.5, 2, 5, 20)
			y, err := n.Forward(bg, x)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, y, x.Shape(), refLayerNorm(exact(x), 20, f64OrNil(n.W), f64OrNil(n.B), 1e-5))
		})
	}
}

func TestGroupNormMatchesFloat64(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups int
		shape  []int // [N, C, spatial...]
	}{
		{"2d", 3, []int{2, 6, 3, 4}},
		{"3d", 2, []int{1, 8, 2, 3, 2}},
		{"one_group", 1, []int{2, 4, 5}},
		{"per_channel", 4, []int{1, 4, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.shape[1]
			n, err := nn.NewGroupNorm(perturbed{15}, "gn", tc.groups, c, 1e-6)
			if err != nil {
				t.Fatal(err)
			}
			x := uniform(nil, 6, -1, 2, tc.shape...)
			y, err := n.Forward(bg, x)
			if err != nil {
				t.Fatal(err)
			}
			spatial := x.NumElements() / (tc.shape[0] * c)
			checkClose(t, y, x.Shape(), refGroupNorm(exact(x), tc.shape[0], c, spatial, tc.groups, f64(n.W), f64(n.B), 1e-6))
		})
	}
}

func TestEmbeddingGathersRows(t *testing.T) {
	e, err := nn.NewEmbedding(nn.Random(6), "emb", 7, 5)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := tensor.FromInt32([]int32{4, 1, 6, 0, 4, 3}, 2, 3)
	y, err := e.Forward(bg, ids)
	if err != nil {
		t.Fatal(err)
	}
	// A gather is exact: the bound is zero.
	w := f64(e.W)
	want := newApprox(6 * 5)
	for i, id := range ids.Int32s() {
		copy(want.v[i*5:(i+1)*5], w[int(id)*5:int(id+1)*5])
	}
	checkClose(t, y, []int{2, 3, 5}, want)

	for _, bad := range []struct {
		name string
		ids  *tensor.Tensor
		want error
	}{
		{"out_of_range", func() *tensor.Tensor { t, _ := tensor.FromInt32([]int32{2, 7}, 2); return t }(), device.ErrTokenID},
		{"negative", func() *tensor.Tensor { t, _ := tensor.FromInt32([]int32{-1}, 1); return t }(), device.ErrTokenID},
		{"float_ids", tensor.Zeros(tensor.Float32, 2), device.ErrDType},
	} {
		t.Run(bad.name, func(t *testing.T) {
			if _, err := e.Forward(bg, bad.ids); !errors.Is(err, bad.want) {
				t.Fatalf("err %v, want %v", err, bad.want)
			}
		})
	}
}

// TestAttentionPrefillAndDecode: causal self-attention with grouped-query
// heads and RoPE, over the whole sequence and through a KV cache (a
// prompt, then single steps), against the same float64 reference.
func TestAttentionPrefillAndDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  nn.AttentionConfig
		mode device.RopeMode
	}{
		{"gqa_half", nn.AttentionConfig{Dim: 16, Heads: 4, KVHeads: 2, QKVBias: true}, device.RopeHalf},
		{"mqa_interleaved", nn.AttentionConfig{Dim: 16, Heads: 4, KVHeads: 1, HeadDim: 6, OutBias: true}, device.RopeInterleaved},
		{"qk_norm_per_head", nn.AttentionConfig{Dim: 16, Heads: 2, KVHeads: 2, HeadDim: 8, QKNorm: true, QKNormPerHead: true}, device.RopeHalf},
		{"qk_norm_whole", nn.AttentionConfig{Dim: 12, Heads: 3, KVHeads: 3, QKNorm: true, QKVBias: true}, device.RopeHalf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const b, T, theta = 2, 6, 10000.0
			a, err := nn.NewAttention(perturbed{2}, "attn", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			hd := a.Cfg.HeadDim
			tab := device.NewRopeTable(32, hd, theta)
			x := uniform(nil, 7, -1, 1, b, T, tc.cfg.Dim)
			want := refAttention(a, exact(x), b, T, attnRef{causal: true, theta: theta, mode: tc.mode})

			full, err := a.Forward(bg, x, nn.AttendOptions{Causal: true, RoPE: &tab, RoPEMode: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, full, []int{b, T, tc.cfg.Dim}, want)

			cache, err := device.NewKVCache(b, a.Cfg.KVHeads, 16, hd)
			if err != nil {
				t.Fatal(err)
			}
			steps := [][2]int{{0, 4}, {4, 5}, {5, 6}}
			got := make([][]float64, b) // per sequence, the steps' outputs in order
			for _, r := range steps {
				s, _ := x.Slice(1, r[0], r[1])
				y, err := a.Forward(bg, s, nn.AttendOptions{Cache: cache, RoPE: &tab, RoPEMode: tc.mode})
				if err != nil {
					t.Fatal(err)
				}
				if !tensor.SameShape(y.Shape(), []int{b, r[1] - r[0], tc.cfg.Dim}) {
					t.Fatalf("step %v: shape %v", r, y.Shape())
				}
				v := f64(y)
				for bi := range got {
					n := (r[1] - r[0]) * tc.cfg.Dim
					got[bi] = append(got[bi], v[bi*n:(bi+1)*n]...)
				}
			}
			if cache.Len() != T {
				t.Fatalf("cache holds %d positions, want %d", cache.Len(), T)
			}
			var flat []float32
			for _, g := range got {
				for _, v := range g {
					flat = append(flat, float32(v))
				}
			}
			yt, _ := tensor.FromFloat32(flat, b, T, tc.cfg.Dim)
			checkClose(t, yt, []int{b, T, tc.cfg.Dim}, want)
		})
	}
}

// TestCrossAttentionMatchesFloat64: queries from x, keys and values from a
// context of another width and length, padding keys masked out, q/k norms.
func TestCrossAttentionMatchesFloat64(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  nn.AttentionConfig
	}{
		{"qk_norm", nn.AttentionConfig{Dim: 8, Heads: 2, KVDim: 12, QKNorm: true}},
		{"gqa_bias", nn.AttentionConfig{Dim: 16, Heads: 4, KVHeads: 2, KVDim: 6, QKVBias: true, OutBias: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const b, tq, tk = 2, 3, 5
			a, err := nn.NewAttention(perturbed{3}, "cross", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			x, c := uniform(nil, 8, -1, 1, b, tq, tc.cfg.Dim), uniform(nil, 9, -1, 1, b, tk, tc.cfg.KVDim)
			mask := []bool{true, true, true, false, false, true, false, true, true, true}
			y, err := a.Forward(bg, x, nn.AttendOptions{Context: c, KeyMask: mask})
			if err != nil {
				t.Fatal(err)
			}
			ctx := exact(c)
			checkClose(t, y, []int{b, tq, tc.cfg.Dim}, refAttention(a, exact(x), b, tq, attnRef{kv: &ctx, tk: tk, keyMask: mask}))

			// Without the mask every key counts, and the result differs.
			y2, err := a.Forward(bg, x, nn.AttendOptions{Context: c})
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, y2, []int{b, tq, tc.cfg.Dim}, refAttention(a, exact(x), b, tq, attnRef{kv: &ctx, tk: tk}))
		})
	}
	a, err := nn.NewAttention(nn.Random(3), "cross", nn.AttentionConfig{Dim: 8, Heads: 2, KVDim: 12})
	if err != nil {
		t.Fatal(err)
	}
	x := uniform(nil, 8, -1, 1, 2, 3, 8)
	tab := device.NewRopeTable(8, 4, 10000)
	cache, _ := device.NewKVCache(2, 2, 8, 4)
	for _, bad := range []struct {
		name string
		opt  nn.AttendOptions
	}{
		{"context_width", nn.AttendOptions{Context: uniform(nil, 1, -1, 1, 2, 5, 8)}},
		{"context_batch", nn.AttendOptions{Context: uniform(nil, 1, -1, 1, 1, 5, 12)}},
		{"context_rank", nn.AttendOptions{Context: uniform(nil, 1, -1, 1, 10, 12)}},
		{"rope", nn.AttendOptions{Context: uniform(nil, 1, -1, 1, 2, 5, 12), RoPE: &tab}},
		{"cache", nn.AttendOptions{Context: uniform(nil, 1, -1, 1, 2, 5, 12), Cache: cache}},
	} {
		t.Run(bad.name, func(t *testing.T) {
			if _, err := a.Forward(bg, x, bad.opt); !errors.Is(err, device.ErrShape) {
				t.Fatalf("err %v, want ErrShape", err)
			}
		})
	}
}

func TestConvMatchesFloat64(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    nn.ConvConfig
		xShape []int
	}{
		{"1d_same", nn.ConvConfig{In: 2, Out: 3, Kernel: []int{3}, Bias: true, Opt: device.ConvOptions{Padding: []int{1}}}, []int{2, 2, 7}},
		{"1d_causal_dilated_grouped", nn.ConvConfig{In: 4, Out: 6, Kernel: []int{3}, Bias: true,
			Opt: device.ConvOptions{Padding: []int{2}, Dilation: []int{2}, Groups: 2, Causal: true}}, []int{1, 4, 9}},
		{"1d_strided", nn.ConvConfig{In: 3, Out: 2, Kernel: []int{4}, Opt: device.ConvOptions{Stride: []int{3}, Padding: []int{1}}}, []int{1, 3, 11}},
		{"2d_strided_grouped", nn.ConvConfig{In: 4, Out: 4, Kernel: []int{3, 3}, Bias: true,
			Opt: device.ConvOptions{Stride: []int{2}, Padding: []int{1}, Groups: 2}}, []int{2, 4, 5, 6}},
		{"2d_asymmetric_pad", nn.ConvConfig{In: 3, Out: 5, Kernel: []int{2, 3}, Bias: true,
			Opt: device.ConvOptions{PadBegin: []int{1, 0}, PadEnd: []int{0, 2}, Dilation: []int{1, 2}}}, []int{1, 3, 4, 5}},
		{"2d_patch", nn.ConvConfig{In: 3, Out: 4, Kernel: []int{2, 2}, Bias: true, Opt: device.ConvOptions{Stride: []int{2}}}, []int{1, 3, 4, 6}},
		{"3d_causal", nn.ConvConfig{In: 2, Out: 3, Kernel: []int{3, 3, 3}, Bias: true,
			Opt: device.ConvOptions{Padding: []int{1}, Causal: true}}, []int{1, 2, 4, 3, 5}},
		{"3d_strided", nn.ConvConfig{In: 3, Out: 2, Kernel: []int{1, 2, 2}, Opt: device.ConvOptions{Stride: []int{1, 2, 2}}}, []int{2, 3, 2, 4, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := nn.NewConv(perturbed{4}, "conv", tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			x := uniform(nil, 10, -1, 1, tc.xShape...)
			y, err := c.Forward(bg, x)
			if err != nil {
				t.Fatal(err)
			}
			want, shape := refConv(exact(x), tc.xShape, f64(c.W), f64OrNil(c.B), c.W.Shape(), tc.cfg.Opt)
			checkClose(t, y, shape, want)
		})
	}
	c, err := nn.NewConv(nn.Random(4), "conv", nn.ConvConfig{In: 2, Out: 3, Kernel: []int{3, 3}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]int{{1, 3, 5, 5}, {1, 2, 5}, {1, 2, 2, 5}} {
		if _, err := c.Forward(bg, uniform(nil, 1, -1, 1, bad...)); !errors.Is(err, device.ErrShape) {
			t.Errorf("input %v: err %v, want ErrShape", bad, err)
		}
	}
}

func TestConvTranspose1dMatchesFloat64(t *testing.T) {
	for _, tc := range []struct {
		name             string
		in, out, kernel  int
		bias             bool
		opt              device.ConvTranspose1dOptions
		xShape, outShape []int
	}{
		{"upsample2", 2, 4, 4, true, device.ConvTranspose1dOptions{Stride: 2, Padding: 1}, []int{1, 2, 5}, []int{1, 4, 10}},
		{"grouped_dilated", 4, 6, 3, true, device.ConvTranspose1dOptions{Stride: 3, Dilation: 2, Groups: 2, OutputPadding: 1}, []int{2, 4, 4}, []int{2, 6, 15}},
		{"stride1_no_bias", 3, 2, 5, false, device.ConvTranspose1dOptions{Padding: 2}, []int{1, 3, 6}, []int{1, 2, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := nn.NewConvTranspose1d(perturbed{5}, "up", tc.in, tc.out, tc.kernel, tc.bias, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			x := uniform(nil, 11, -1, 1, tc.xShape...)
			y, err := c.Forward(bg, x)
			if err != nil {
				t.Fatal(err)
			}
			want, shape := refConvTranspose1d(exact(x), tc.xShape, f64(c.W), f64OrNil(c.B), c.W.Shape(), tc.opt)
			if !tensor.SameShape(shape, tc.outShape) {
				t.Fatalf("reference shape %v, want %v (PyTorch's output length)", shape, tc.outShape)
			}
			checkClose(t, y, shape, want)
		})
	}
}
