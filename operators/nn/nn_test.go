package nn_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

func TestRandomSourceIsDeterministicPerName(t *testing.T) {
	a, _ := nn.Random(42).Tensor("x.weight", []int{4, 4}, nn.Normal(0.02))
	b, _ := nn.Random(42).Tensor("x.weight", []int{4, 4}, nn.Normal(0.02))
	c, _ := nn.Random(42).Tensor("y.weight", []int{4, 4}, nn.Normal(0.02))
	d, _ := nn.Random(43).Tensor("x.weight", []int{4, 4}, nn.Normal(0.02))
	same := func(x, y *tensor.Tensor) bool {
		for i := range x.Float32s() {
			if x.Float32s()[i] != y.Float32s()[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) || same(a, c) || same(a, d) {
		t.Fatal("random weights depend on something other than seed and name")
	}
	var sq float64
	for _, v := range a.Float32s() {
		sq += float64(v) * float64(v)
	}
	if std := math.Sqrt(sq / 16); std > 0.05 || std < 0.005 {
		t.Errorf("std %g for Normal(0.02)", std)
	}
	ones, _ := nn.Random(1).Tensor("n.weight", []int{3}, nn.Ones)
	if ones.Float32s()[2] != 1 {
		t.Error("Ones init")
	}
}

// must is for test setup that fails only when the test itself is wrong.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// recorder is a Source that hands out nn.Random's weights and remembers
// every weight a layer asked for.
type recorder struct {
	src     nn.Source
	weights nn.Map
	order   []string
}

func (r *recorder) Tensor(name string, shape []int, init nn.Init) (*tensor.Tensor, error) {
	t, err := r.src.Tensor(name, shape, init)
	if err == nil {
		r.weights[name] = t
		r.order = append(r.order, name)
	}
	return t, err
}

// constructors builds every layer from a Source.
var constructors = []struct {
	name  string
	build func(nn.Source) error
}{
	{"Linear", func(s nn.Source) error { _, err := nn.NewLinear(s, "fc", 4, 3, true); return err }},
	{"Embedding", func(s nn.Source) error { _, err := nn.NewEmbedding(s, "emb", 7, 3); return err }},
	{"RMSNorm", func(s nn.Source) error { _, err := nn.NewRMSNorm(s, "rms", 5, 1e-6); return err }},
	{"LayerNorm", func(s nn.Source) error { _, err := nn.NewLayerNorm(s, "ln", 5, 1e-5, true); return err }},
	{"GroupNorm", func(s nn.Source) error { _, err := nn.NewGroupNorm(s, "gn", 2, 6, 1e-6); return err }},
	{"MLP/swiglu", func(s nn.Source) error {
		_, err := nn.NewMLP(s, "mlp", nn.MLPConfig{Dim: 4, Hidden: 6, Act: nn.ActSiLU, Gated: true, Bias: true})
		return err
	}},
	{"MLP/gelu", func(s nn.Source) error {
		_, err := nn.NewMLP(s, "ffn", nn.MLPConfig{Dim: 4, Hidden: 6, Act: nn.ActGELU, UpName: "fc1", DownName: "fc2"})
		return err
	}},
	{"Attention/self", func(s nn.Source) error {
		_, err := nn.NewAttention(s, "attn", nn.AttentionConfig{Dim: 8, Heads: 2, KVHeads: 1, QKVBias: true, OutBias: true,
			QKNorm: true, QKNormPerHead: true})
		return err
	}},
	{"Attention/cross", func(s nn.Source) error {
		_, err := nn.NewAttention(s, "cross", nn.AttentionConfig{Dim: 8, Heads: 2, KVDim: 6, QKNorm: true,
			QName: "to_q", KName: "to_k", VName: "to_v", OName: "to_out.0", QNormName: "norm_q", KNormName: "norm_k"})
		return err
	}},
	{"Conv/1d", func(s nn.Source) error {
		_, err := nn.NewConv(s, "c1", nn.ConvConfig{In: 4, Out: 2, Kernel: []int{3}, Bias: true, Opt: device.ConvOptions{Groups: 2}})
		return err
	}},
	{"Conv/2d", func(s nn.Source) error {
		_, err := nn.NewConv(s, "c2", nn.ConvConfig{In: 3, Out: 2, Kernel: []int{3, 2}, Bias: true})
		return err
	}},
	{"Conv/3d", func(s nn.Source) error {
		_, err := nn.NewConv(s, "c3", nn.ConvConfig{In: 2, Out: 2, Kernel: []int{3, 1, 1}, Bias: true, Opt: device.ConvOptions{Causal: true}})
		return err
	}},
	{"ConvTranspose1d", func(s nn.Source) error {
		_, err := nn.NewConvTranspose1d(s, "up", 4, 6, 4, true, device.ConvTranspose1dOptions{Stride: 2, Groups: 2})
		return err
	}},
}

// TestCheckpointLoadErrors: for every layer and every weight it needs, a
// checkpoint without it, with it mis-shaped, with an integer dtype or with
// a non-finite value fails at construction with ErrWeight, naming the
// weight; with all of them right (in bf16, say) construction succeeds.
func TestCheckpointLoadErrors(t *testing.T) {
	for _, c := range constructors {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{src: nn.Random(1), weights: nn.Map{}}
			if err := c.build(rec); err != nil {
				t.Fatal(err)
			}
			if len(rec.order) == 0 || len(rec.order) != len(rec.weights) {
				t.Fatalf("weights asked for: %q", rec.order)
			}
			if err := c.build(nn.Checkpoint(rec.weights)); err != nil {
				t.Fatalf("the weights it was built from: %v", err)
			}
			bf := nn.Map{}
			for n, w := range rec.weights {
				bf[n], _ = w.ConvertTo(tensor.BFloat16)
			}
			if err := c.build(nn.Checkpoint(bf)); err != nil {
				t.Fatalf("bf16 weights: %v", err)
			}
			for _, name := range rec.order {
				w := rec.weights[name]
				wrongShape := append(append([]int(nil), w.Shape()...), 1)
				wrongShape[0]++
				nan := must(w.Clone())
				nan.Float32s()[nan.NumElements()-1] = float32(math.NaN())
				for _, tc := range []struct {
					what    string
					replace *tensor.Tensor // nil: the weight is missing
					wantErr string
				}{
					{"missing", nil, name + ": not found"},
					{"shape", tensor.Zeros(tensor.Float32, wrongShape...), fmt.Sprintf("%s has shape %v, the model needs %v", name, wrongShape, w.Shape())},
					{"dtype", tensor.Zeros(tensor.Int32, w.Shape()...), name + " has dtype int32"},
					{"non_finite", nan, name + " holds a non-finite value"},
				} {
					t.Run(name+"/"+tc.what, func(t *testing.T) {
						m := maps.Clone(rec.weights)
						if tc.replace == nil {
							delete(m, name)
						} else {
							m[name] = tc.replace
						}
						err := c.build(nn.Checkpoint(m))
						if !errors.Is(err, nn.ErrWeight) || !strings.Contains(err.Error(), tc.wantErr) {
							t.Fatalf("err %v, want ErrWeight saying %q", err, tc.wantErr)
						}
					})
				}
			}
		})
	}
}

// TestConfigErrors: a layer configuration that no weights could make work
// is an ErrWeight error at construction, naming the layer.
func TestConfigErrors(t *testing.T) {
	src := nn.Random(1)
	conv := func(cfg nn.ConvConfig) error { _, err := nn.NewConv(src, "bad", cfg); return err }
	convT := func(in, out, k int, opt device.ConvTranspose1dOptions) error {
		_, err := nn.NewConvTranspose1d(src, "bad", in, out, k, true, opt)
		return err
	}
	attn := func(cfg nn.AttentionConfig) error { _, err := nn.NewAttention(src, "bad", cfg); return err }
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"linear_no_inputs", func() error { _, err := nn.NewLinear(src, "bad", 0, 3, false); return err }()},
		{"embedding_empty", func() error { _, err := nn.NewEmbedding(src, "bad", 0, 3); return err }()},
		{"rms_norm_empty", func() error { _, err := nn.NewRMSNorm(src, "bad", 0, 1e-6); return err }()},
		{"rms_norm_negative_eps", func() error { _, err := nn.NewRMSNorm(src, "bad", 4, -1e-6); return err }()},
		{"layer_norm_nan_eps", func() error { _, err := nn.NewLayerNorm(src, "bad", 4, float32(math.NaN()), false); return err }()},
		{"layer_norm_inf_eps", func() error { _, err := nn.NewLayerNorm(src, "bad", 4, float32(math.Inf(1)), true); return err }()},
		{"group_norm_groups", func() error { _, err := nn.NewGroupNorm(src, "bad", 4, 6, 1e-6); return err }()},
		{"group_norm_no_groups", func() error { _, err := nn.NewGroupNorm(src, "bad", 0, 6, 1e-6); return err }()},
		{"mlp_activation", func() error {
			_, err := nn.NewMLP(src, "bad", nn.MLPConfig{Dim: 4, Hidden: 8, Act: "relu6"})
			return err
		}()},
		{"mlp_no_hidden", func() error { _, err := nn.NewMLP(src, "bad", nn.MLPConfig{Dim: 4}); return err }()},
		{"attention_kv_heads", attn(nn.AttentionConfig{Dim: 12, Heads: 3, KVHeads: 2})},
		{"attention_no_heads", attn(nn.AttentionConfig{Dim: 12})},
		{"attention_head_dim", attn(nn.AttentionConfig{Dim: 2, Heads: 4})},
		{"conv_groups", conv(nn.ConvConfig{In: 3, Out: 4, Kernel: []int{3}, Opt: device.ConvOptions{Groups: 2}})},
		{"conv_negative_groups", conv(nn.ConvConfig{In: 4, Out: 4, Kernel: []int{3}, Opt: device.ConvOptions{Groups: -2}})},
		{"conv_no_kernel", conv(nn.ConvConfig{In: 2, Out: 2})},
		{"conv_4d", conv(nn.ConvConfig{In: 2, Out: 2, Kernel: []int{1, 1, 1, 1}})},
		{"conv_zero_kernel", conv(nn.ConvConfig{In: 2, Out: 2, Kernel: []int{3, 0}})},
		{"conv_stride_zero", conv(nn.ConvConfig{In: 2, Out: 2, Kernel: []int{3}, Opt: device.ConvOptions{Stride: []int{0}}})},
		{"conv_dilation_entries", conv(nn.ConvConfig{In: 2, Out: 2, Kernel: []int{3, 3}, Opt: device.ConvOptions{Dilation: []int{1, 1, 1}}})},
		{"conv_negative_padding", conv(nn.ConvConfig{In: 2, Out: 2, Kernel: []int{3}, Opt: device.ConvOptions{Padding: []int{-1}}})},
		{"conv_pad_end_entries", conv(nn.ConvConfig{In: 2, Out: 2, Kernel: []int{3, 3, 3}, Opt: device.ConvOptions{PadEnd: []int{1, 1}}})},
		{"conv_transpose_groups", convT(4, 6, 3, device.ConvTranspose1dOptions{Groups: 4})},
		{"conv_transpose_output_padding", convT(4, 6, 3, device.ConvTranspose1dOptions{Stride: 2, OutputPadding: 2})},
		{"conv_transpose_negative_padding", convT(4, 6, 3, device.ConvTranspose1dOptions{Padding: -1})},
		{"conv_transpose_no_kernel", convT(4, 6, 0, device.ConvTranspose1dOptions{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, nn.ErrWeight) || !strings.Contains(tc.err.Error(), "bad") {
				t.Fatalf("err %v, want ErrWeight naming layer \"bad\"", tc.err)
			}
		})
	}
}

// TestLinearFromSafetensors loads a bf16 checkpoint written by the test and
// checks y = x·Wᵀ + b in float64.
func TestLinearFromSafetensors(t *testing.T) {
	wf := []float32{1, 2, 3, -1, 0.5, 0.25}
	w32, _ := tensor.FromFloat32(wf, 2, 3)
	wbf, _ := w32.ConvertTo(tensor.BFloat16)
	b, _ := tensor.FromFloat32([]float32{10, -10}, 2)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := safetensors.WriteFile(path, map[string]*tensor.Tensor{"fc.weight": wbf, "fc.bias": b}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	lin, err := nn.NewLinear(nn.Checkpoint(f), "fc", 3, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // the layer holds copies
	x, _ := tensor.FromFloat32([]float32{1, 1, 2}, 1, 3)

	mem := memory.New()
	p, _ := profiler.New(profiler.WithSink(mem))
	ctx := context.Background()
	p.Start(ctx)
	actx, act := p.Enter(ctx, profiler.Track{}, "op")
	y, err := lin.Forward(actx, x)
	act.End(nil)
	p.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Values exactly representable in bf16, so the reference is exact.
	want := []float64{1 + 2 + 6 + 10, -1 + 0.5 + 0.5 - 10}
	for i, v := range y.Float32s() {
		if float64(v) != want[i] {
			t.Fatalf("y = %v, want %v", y.Float32s(), want)
		}
	}
	var module, kernel bool
	for _, r := range mem.Records() {
		if r.Kind == profiler.KindModule && r.Name == "Linear" {
			a, _ := r.Attr("name")
			module = a.AsString() == "fc"
		}
		kernel = kernel || (r.Kind == profiler.KindKernel && r.Name == "linear")
	}
	if !module || !kernel {
		t.Errorf("module span %v, kernel span %v", module, kernel)
	}
}
