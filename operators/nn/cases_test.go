package nn_test

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
)

// layerCase is one layer's forward pass, for the tests that run every
// layer the same way (module spans, buffer release). run allocates its
// inputs from mem.
type layerCase struct {
	name string
	run  func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error)
	// spans are the spans the pass records below the caller, as paths from
	// the layer's module span ("Type(name)/..."; kernels by kernel name)
	// and how many of each.
	spans map[string]int
	// fail, when set, is a forward pass that must fail, partway through
	// the layer where it can, naming the layer.
	fail func(ctx context.Context, mem memory.Allocator) error
}

// linearSpans are the spans of a Linear named name under prefix.
func linearSpans(m map[string]int, prefix, name string) {
	m[prefix+"/Linear("+name+")"]++
	m[prefix+"/Linear("+name+")/linear"]++
}

func layerCases(t *testing.T) []layerCase {
	src := perturbed{21}
	lin := must(nn.NewLinear(src, "fc", 8, 4, true))
	emb := must(nn.NewEmbedding(src, "emb", 10, 4))
	rms := must(nn.NewRMSNorm(src, "rms", 8, 1e-6))
	ln := must(nn.NewLayerNorm(src, "ln", 8, 1e-5, true))
	gn := must(nn.NewGroupNorm(src, "gn", 2, 4, 1e-6))
	swiglu := must(nn.NewMLP(src, "mlp", nn.MLPConfig{Dim: 8, Hidden: 12, Act: nn.ActSiLU, Gated: true}))
	gelu := must(nn.NewMLP(src, "ffn", nn.MLPConfig{Dim: 8, Hidden: 12, Act: nn.ActGELU, Bias: true}))
	gated := must(nn.NewMLP(src, "t5", nn.MLPConfig{Dim: 8, Hidden: 12, Act: nn.ActGELUTanh, Gated: true}))
	self := must(nn.NewAttention(src, "attn", nn.AttentionConfig{Dim: 8, Heads: 2, KVHeads: 1, QKNorm: true, QKNormPerHead: true}))
	cross := must(nn.NewAttention(src, "cross", nn.AttentionConfig{Dim: 8, Heads: 2, KVDim: 6, QKNorm: true}))
	conv1 := must(nn.NewConv(src, "c1", nn.ConvConfig{In: 4, Out: 2, Kernel: []int{3}, Bias: true, Opt: device.ConvOptions{Padding: []int{1}, Causal: true}}))
	conv2 := must(nn.NewConv(src, "c2", nn.ConvConfig{In: 4, Out: 2, Kernel: []int{3, 3}, Opt: device.ConvOptions{Padding: []int{1}}}))
	conv3 := must(nn.NewConv(src, "c3", nn.ConvConfig{In: 4, Out: 2, Kernel: []int{3, 3, 3}, Bias: true, Opt: device.ConvOptions{Padding: []int{1}, Causal: true}}))
	convT := must(nn.NewConvTranspose1d(src, "up", 4, 2, 4, true, device.ConvTranspose1dOptions{Stride: 2, Padding: 1}))
	tab := device.NewRopeTable(16, 4, 10000)
	short := device.NewRopeTable(2, 4, 10000)

	in := func(mem memory.Allocator, shape ...int) *tensor.Tensor { return uniform(mem, 31, -1, 1, shape...) }
	// forward runs a layer on an input it then releases.
	forward := func(x *tensor.Tensor, f func(*tensor.Tensor) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
		defer x.Release()
		return f(x)
	}
	fails := func(x *tensor.Tensor, f func(*tensor.Tensor) (*tensor.Tensor, error)) error {
		y, err := forward(x, f)
		if err == nil {
			y.Release()
		}
		return err
	}
	single := func(typ, name, kernel string) map[string]int {
		p := typ + "(" + name + ")"
		return map[string]int{p: 1, p + "/" + kernel: 1}
	}
	mlpSpans := func(name, act string, gatedMLP bool) map[string]int {
		p := "MLP(" + name + ")"
		m := map[string]int{p: 1, p + "/" + act: 1}
		linearSpans(m, p, name+".up_proj")
		linearSpans(m, p, name+".down_proj")
		if gatedMLP {
			linearSpans(m, p, name+".gate_proj")
		}
		return m
	}
	selfSpans := func(cache bool) map[string]int {
		p := "Attention(attn)"
		m := map[string]int{p: 1, p + "/rope": 2, p + "/attention": 1,
			p + "/RMSNorm(attn.q_norm)": 1, p + "/RMSNorm(attn.q_norm)/rms_norm": 1,
			p + "/RMSNorm(attn.k_norm)": 1, p + "/RMSNorm(attn.k_norm)/rms_norm": 1}
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "o_proj"} {
			linearSpans(m, p, "attn."+n)
		}
		if cache {
			m[p+"/kv_append"] = 1
		}
		return m
	}
	crossSpans := func() map[string]int {
		p := "Attention(cross)"
		m := map[string]int{p: 1, p + "/attention": 1}
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "o_proj"} {
			linearSpans(m, p, "cross."+n)
		}
		// Whole-projection norms run on the projection, inside the layer.
		m[p+"/RMSNorm(cross.q_norm)"], m[p+"/RMSNorm(cross.q_norm)/rms_norm"] = 1, 1
		m[p+"/RMSNorm(cross.k_norm)"], m[p+"/RMSNorm(cross.k_norm)/rms_norm"] = 1, 1
		return m
	}

	return []layerCase{
		{name: "Linear", spans: single("Linear", "fc", "linear"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 2, 3, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) { return lin.Forward(ctx, x) })
			},
			fail: func(ctx context.Context, mem memory.Allocator) error {
				return fails(in(mem, 2, 7), func(x *tensor.Tensor) (*tensor.Tensor, error) { return lin.Forward(ctx, x) })
			}},
		{name: "Embedding", spans: single("Embedding", "emb", "embedding"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				ids := must(tensor.New(tensor.Int32, []int{2, 3}, tensor.WithAllocator(mem)))
				copy(ids.Int32s(), []int32{9, 0, 3, 3, 1, 7})
				return forward(ids, func(x *tensor.Tensor) (*tensor.Tensor, error) { return emb.Forward(ctx, x) })
			},
			// An id outside the table fails after the output is allocated.
			fail: func(ctx context.Context, mem memory.Allocator) error {
				ids := must(tensor.New(tensor.Int32, []int{3}, tensor.WithAllocator(mem)))
				copy(ids.Int32s(), []int32{1, 10, 2})
				return fails(ids, func(x *tensor.Tensor) (*tensor.Tensor, error) { return emb.Forward(ctx, x) })
			}},
		{name: "RMSNorm", spans: single("RMSNorm", "rms", "rms_norm"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 3, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) { return rms.Forward(ctx, x) })
			},
			fail: func(ctx context.Context, mem memory.Allocator) error {
				return fails(in(mem, 3, 6), func(x *tensor.Tensor) (*tensor.Tensor, error) { return rms.Forward(ctx, x) })
			}},
		{name: "LayerNorm", spans: single("LayerNorm", "ln", "layer_norm"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				// A transposed view: the kernel copies it to a contiguous
				// buffer first, which must be released too.
				x := in(mem, 8, 3)
				defer x.Release()
				v := must(x.Transpose(0, 1))
				return forward(v, func(x *tensor.Tensor) (*tensor.Tensor, error) { return ln.Forward(ctx, x) })
			},
			fail: func(ctx context.Context, mem memory.Allocator) error {
				return fails(in(mem, 3, 9), func(x *tensor.Tensor) (*tensor.Tensor, error) { return ln.Forward(ctx, x) })
			}},
		{name: "GroupNorm", spans: single("GroupNorm", "gn", "group_norm"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 2, 4, 3, 3), func(x *tensor.Tensor) (*tensor.Tensor, error) { return gn.Forward(ctx, x) })
			},
			fail: func(ctx context.Context, mem memory.Allocator) error {
				return fails(in(mem, 2, 6, 3), func(x *tensor.Tensor) (*tensor.Tensor, error) { return gn.Forward(ctx, x) })
			}},
		{name: "MLP/swiglu", spans: mlpSpans("mlp", "swiglu", true),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 2, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) { return swiglu.Forward(ctx, x) })
			},
			// A down projection that does not fit fails after up, gate and
			// the activation have made their outputs.
			fail: func(ctx context.Context, mem memory.Allocator) error {
				bad := *swiglu
				bad.Down = must(nn.NewLinear(src, "mlp.down_proj", 10, 8, false))
				return fails(in(mem, 2, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) { return bad.Forward(ctx, x) })
			}},
		{name: "MLP/gelu", spans: mlpSpans("ffn", "gelu", false),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 2, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) { return gelu.Forward(ctx, x) })
			},
			fail: func(ctx context.Context, mem memory.Allocator) error {
				bad := *gelu
				bad.Down = must(nn.NewLinear(src, "ffn.down_proj", 10, 8, false))
				return fails(in(mem, 2, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) { return bad.Forward(ctx, x) })
			}},
		{name: "MLP/gated_gelu_tanh", spans: func() map[string]int {
			m := mlpSpans("t5", "gelu_tanh", true)
			m["MLP(t5)/mul"] = 1
			return m
		}(),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 2, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) { return gated.Forward(ctx, x) })
			}},
		{name: "Attention/self", spans: selfSpans(false),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 1, 5, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) {
					return self.Forward(ctx, x, nn.AttendOptions{Causal: true, RoPE: &tab})
				})
			},
			// Positions past the RoPE table fail after the projections.
			fail: func(ctx context.Context, mem memory.Allocator) error {
				return fails(in(mem, 1, 5, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) {
					return self.Forward(ctx, x, nn.AttendOptions{Causal: true, RoPE: &short})
				})
			}},
		{name: "Attention/cache", spans: selfSpans(true),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				cache := must(device.NewKVCache(1, 1, 8, 4))
				return forward(in(mem, 1, 3, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) {
					return self.Forward(ctx, x, nn.AttendOptions{Cache: cache, RoPE: &tab})
				})
			},
			// A full cache fails after the projections and RoPE.
			fail: func(ctx context.Context, mem memory.Allocator) error {
				cache := must(device.NewKVCache(1, 1, 2, 4))
				return fails(in(mem, 1, 3, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) {
					return self.Forward(ctx, x, nn.AttendOptions{Cache: cache, RoPE: &tab})
				})
			}},
		{name: "Attention/cross", spans: crossSpans(),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				c := uniform(mem, 32, -1, 1, 2, 4, 6)
				defer c.Release()
				return forward(in(mem, 2, 3, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) {
					return cross.Forward(ctx, x, nn.AttendOptions{Context: c, KeyMask: []bool{true, true, false, true, true, true, true, false}})
				})
			},
			// A mask of the wrong shape fails in the attention kernel, after
			// every projection.
			fail: func(ctx context.Context, mem memory.Allocator) error {
				c := uniform(mem, 32, -1, 1, 2, 4, 6)
				defer c.Release()
				mask := uniform(mem, 33, -1, 0, 3, 3)
				defer mask.Release()
				return fails(in(mem, 2, 3, 8), func(x *tensor.Tensor) (*tensor.Tensor, error) {
					return cross.Forward(ctx, x, nn.AttendOptions{Context: c, Mask: mask})
				})
			}},
		{name: "Conv/1d", spans: single("Conv", "c1", "conv1d"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 1, 4, 6), func(x *tensor.Tensor) (*tensor.Tensor, error) { return conv1.Forward(ctx, x) })
			},
			fail: func(ctx context.Context, mem memory.Allocator) error {
				return fails(in(mem, 1, 3, 6), func(x *tensor.Tensor) (*tensor.Tensor, error) { return conv1.Forward(ctx, x) })
			}},
		{name: "Conv/2d", spans: single("Conv", "c2", "conv2d"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 1, 4, 3, 4), func(x *tensor.Tensor) (*tensor.Tensor, error) { return conv2.Forward(ctx, x) })
			}},
		{name: "Conv/3d", spans: single("Conv", "c3", "conv3d"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 1, 4, 2, 3, 3), func(x *tensor.Tensor) (*tensor.Tensor, error) { return conv3.Forward(ctx, x) })
			}},
		{name: "ConvTranspose1d", spans: single("ConvTranspose1d", "up", "conv_transpose1d"),
			run: func(ctx context.Context, mem memory.Allocator) (*tensor.Tensor, error) {
				return forward(in(mem, 2, 4, 5), func(x *tensor.Tensor) (*tensor.Tensor, error) { return convT.Forward(ctx, x) })
			},
			fail: func(ctx context.Context, mem memory.Allocator) error {
				return fails(in(mem, 2, 2, 5), func(x *tensor.Tensor) (*tensor.Tensor, error) { return convT.Forward(ctx, x) })
			}},
	}
}
