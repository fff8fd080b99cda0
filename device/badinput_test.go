package device_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/device/devicetest"
	"github.com/omniflow-go/omniflow/tensor"
)

// call runs f, turning a panic into a test failure that names the case.
func call(t *testing.T, name string, f func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: panicked: %v", name, r)
			err = nil
		}
	}()
	return f()
}

func z(shape ...int) *tensor.Tensor { return tensor.Zeros(tensor.Float32, shape...) }

func zt(dt tensor.DType, shape ...int) *tensor.Tensor { return tensor.Zeros(dt, shape...) }

// ok1 drops a tensor result (released) and keeps the error.
func ok1(out *tensor.Tensor, err error) error {
	if out != nil {
		out.Release()
	}
	return err
}

// TestBadInputs calls every kernel with inputs that do not fit it: each
// must return an error wrapping the sentinel named, whose message names the
// kernel (and the argument, where one is named), and none may panic.
func TestBadInputs(t *testing.T) {
	ctx := context.Background()
	tab := device.NewRopeTable(8, 4, 10000)
	cache, err := device.NewKVCache(1, 2, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	var zeroCache device.KVCache
	nan := float32(math.NaN())
	rng := rand.New(rand.NewPCG(1, 2))
	ids := func(v ...int32) *tensor.Tensor { x, _ := tensor.FromInt32(v, len(v)); return x }
	for _, tc := range []struct {
		name string
		want error
		msg  []string // substrings of the message
		f    func() error
	}{
		// matmul and linear
		{"matmul nil a", device.ErrNilTensor, []string{"matmul", "a"}, func() error { return ok1(device.MatMul(ctx, nil, z(2, 2), false, false)) }},
		{"matmul nil b", device.ErrNilTensor, []string{"matmul", "b"}, func() error { return ok1(device.MatMul(ctx, z(2, 2), nil, false, false)) }},
		{"matmul rank 1", device.ErrShape, []string{"matmul"}, func() error { return ok1(device.MatMul(ctx, z(3), z(3, 3), false, false)) }},
		{"matmul inner", device.ErrShape, []string{"matmul", "inner"}, func() error { return ok1(device.MatMul(ctx, z(2, 3), z(4, 5), false, false)) }},
		{"matmul batch", device.ErrShape, []string{"matmul", "batch"}, func() error { return ok1(device.MatMul(ctx, z(2, 3, 3), z(4, 3, 3), false, false)) }},
		{"matmul int", device.ErrDType, []string{"matmul", "a"}, func() error {
			return ok1(device.MatMul(ctx, zt(tensor.Int32, 3, 3), z(3, 3), false, false))
		}},
		{"linear nil weight", device.ErrNilTensor, []string{"linear", "weight"}, func() error { return ok1(device.Linear(ctx, z(2, 3), nil, nil)) }},
		{"linear nil x", device.ErrNilTensor, []string{"linear", "x"}, func() error { return ok1(device.Linear(ctx, nil, z(2, 3), nil)) }},
		{"linear scalar x", device.ErrShape, []string{"linear"}, func() error { return ok1(device.Linear(ctx, z(), z(2, 3), nil)) }},
		{"linear in", device.ErrShape, []string{"linear"}, func() error { return ok1(device.Linear(ctx, z(2, 4), z(2, 3), nil)) }},
		{"linear bias", device.ErrShape, []string{"linear", "bias"}, func() error { return ok1(device.Linear(ctx, z(2, 3), z(2, 3), z(3))) }},
		{"linear int bias", device.ErrDType, []string{"linear", "bias"}, func() error {
			return ok1(device.Linear(ctx, z(2, 3), z(2, 3), zt(tensor.Int32, 2)))
		}},

		// elementwise
		{"exp nil", device.ErrNilTensor, []string{"exp", "x"}, func() error { return ok1(device.Exp(ctx, nil)) }},
		{"gelu int", device.ErrDType, []string{"gelu", "x"}, func() error { return ok1(device.GELU(ctx, zt(tensor.Int64, 3))) }},
		{"unary unknown op", device.ErrParam, []string{"unary", "cube"}, func() error { return ok1(device.Unary(ctx, "cube", z(3), 0)) }},
		{"add nil", device.ErrNilTensor, []string{"add", "b"}, func() error { return ok1(device.Add(ctx, z(3), nil)) }},
		{"sub broadcast", device.ErrShape, []string{"sub"}, func() error { return ok1(device.Sub(ctx, z(2, 3), z(4))) }},
		{"mul uint8", device.ErrDType, []string{"mul", "b"}, func() error { return ok1(device.Mul(ctx, z(3), zt(tensor.Uint8, 3))) }},
		{"div zero vs 3", device.ErrShape, []string{"div"}, func() error { return ok1(device.Div(ctx, z(0), z(3))) }},
		{"binary unknown op", device.ErrParam, []string{"binary"}, func() error { return ok1(device.Binary(ctx, "pow", z(3), z(3))) }},
		{"swiglu shapes", device.ErrShape, []string{"swiglu", "gate"}, func() error { return ok1(device.SwiGLU(ctx, z(2, 4), z(2, 3))) }},
		{"swiglu nil up", device.ErrNilTensor, []string{"swiglu", "up"}, func() error { return ok1(device.SwiGLU(ctx, z(2, 4), nil)) }},

		// rows
		{"softmax scalar", device.ErrShape, []string{"softmax"}, func() error { return ok1(device.Softmax(ctx, z())) }},
		{"softmax nil", device.ErrNilTensor, []string{"softmax", "x"}, func() error { return ok1(device.Softmax(ctx, nil)) }},
		{"log_softmax int", device.ErrDType, []string{"log_softmax"}, func() error { return ok1(device.LogSoftmax(ctx, zt(tensor.Int32, 2, 2))) }},
		{"max empty axis", device.ErrShape, []string{"max", "empty"}, func() error { return ok1(device.Max(ctx, z(3, 0))) }},
		{"argmax empty axis", device.ErrShape, []string{"argmax", "empty"}, func() error { return ok1(device.ArgMax(ctx, z(3, 0))) }},
		{"mean empty axis", device.ErrShape, []string{"mean", "empty"}, func() error { return ok1(device.Mean(ctx, z(2, 0))) }},
		{"sum scalar", device.ErrShape, []string{"sum"}, func() error { return ok1(device.Sum(ctx, z())) }},
		{"argmax nil", device.ErrNilTensor, []string{"argmax"}, func() error { return ok1(device.ArgMax(ctx, nil)) }},
		{"reduce unknown op", device.ErrParam, []string{"reduce"}, func() error { return ok1(device.Reduce(ctx, "min", z(3))) }},

		// norms
		{"layer_norm weight", device.ErrShape, []string{"layer_norm", "weight"}, func() error { return ok1(device.LayerNorm(ctx, z(2, 4), z(3), nil, 1e-5)) }},
		{"layer_norm bias", device.ErrShape, []string{"layer_norm", "bias"}, func() error { return ok1(device.LayerNorm(ctx, z(2, 4), nil, z(5), 1e-5)) }},
		{"layer_norm nan eps", device.ErrParam, []string{"layer_norm", "eps"}, func() error { return ok1(device.LayerNorm(ctx, z(2, 4), nil, nil, nan)) }},
		{"layer_norm int weight", device.ErrDType, []string{"layer_norm", "weight"}, func() error {
			return ok1(device.LayerNorm(ctx, z(2, 4), zt(tensor.Int32, 4), nil, 1e-5))
		}},
		{"rms_norm negative eps", device.ErrParam, []string{"rms_norm", "eps"}, func() error { return ok1(device.RMSNorm(ctx, z(2, 4), nil, -1)) }},
		{"rms_norm nil", device.ErrNilTensor, []string{"rms_norm", "x"}, func() error { return ok1(device.RMSNorm(ctx, nil, nil, 1e-5)) }},
		{"rms_norm scalar", device.ErrShape, []string{"rms_norm"}, func() error { return ok1(device.RMSNorm(ctx, z(), nil, 1e-5)) }},
		{"rms_norm_channels nil", device.ErrNilTensor, []string{"rms_norm_channels", "x"}, func() error {
			return ok1(device.RMSNormChannels(ctx, nil, nil, 1e-5))
		}},
		{"rms_norm_channels rank 1", device.ErrShape, []string{"rms_norm_channels", "x"}, func() error {
			return ok1(device.RMSNormChannels(ctx, z(4), nil, 1e-5))
		}},
		{"rms_norm_channels scalar", device.ErrShape, []string{"rms_norm_channels", "x"}, func() error {
			return ok1(device.RMSNormChannels(ctx, z(), nil, 1e-5))
		}},
		{"rms_norm_channels weight", device.ErrShape, []string{"rms_norm_channels", "weight"}, func() error {
			return ok1(device.RMSNormChannels(ctx, z(1, 4, 3, 3), z(3), 1e-5))
		}},
		{"rms_norm_channels weight of the last axis", device.ErrShape, []string{"rms_norm_channels", "weight"}, func() error {
			return ok1(device.RMSNormChannels(ctx, z(1, 4, 2, 6), z(6), 1e-5))
		}},
		{"rms_norm_channels nan eps", device.ErrParam, []string{"rms_norm_channels", "eps"}, func() error {
			return ok1(device.RMSNormChannels(ctx, z(1, 4, 3), nil, nan))
		}},
		{"rms_norm_channels inf eps", device.ErrParam, []string{"rms_norm_channels", "eps"}, func() error {
			return ok1(device.RMSNormChannels(ctx, z(1, 4, 3), nil, float32(math.Inf(1))))
		}},
		{"rms_norm_channels negative eps", device.ErrParam, []string{"rms_norm_channels", "eps"}, func() error {
			return ok1(device.RMSNormChannels(ctx, z(1, 4, 3), nil, -1e-6))
		}},
		{"rms_norm_channels int x", device.ErrDType, []string{"rms_norm_channels", "x"}, func() error {
			return ok1(device.RMSNormChannels(ctx, zt(tensor.Int32, 1, 4, 3), nil, 1e-5))
		}},
		{"rms_norm_channels int weight", device.ErrDType, []string{"rms_norm_channels", "weight"}, func() error {
			return ok1(device.RMSNormChannels(ctx, z(1, 4, 3), zt(tensor.Int64, 4), 1e-5))
		}},
		{"group_norm rank", device.ErrShape, []string{"group_norm"}, func() error { return ok1(device.GroupNorm(ctx, z(4), 2, nil, nil, 1e-5)) }},
		{"group_norm groups", device.ErrShape, []string{"group_norm", "groups"}, func() error { return ok1(device.GroupNorm(ctx, z(1, 6, 2), 4, nil, nil, 1e-5)) }},
		{"group_norm zero groups", device.ErrShape, []string{"group_norm"}, func() error { return ok1(device.GroupNorm(ctx, z(1, 6, 2), 0, nil, nil, 1e-5)) }},
		{"group_norm nil", device.ErrNilTensor, []string{"group_norm", "x"}, func() error { return ok1(device.GroupNorm(ctx, nil, 1, nil, nil, 1e-5)) }},
		{"group_norm inf eps", device.ErrParam, []string{"group_norm", "eps"}, func() error {
			return ok1(device.GroupNorm(ctx, z(1, 6, 2), 2, nil, nil, float32(math.Inf(1))))
		}},

		// rope
		{"rope negative pos0", device.ErrShape, []string{"rope", "pos0"}, func() error { return ok1(device.RoPE(ctx, z(1, 2, 1, 4), tab, device.RopeHalf, -5, nil)) }},
		{"rope pos0 overflow", device.ErrShape, []string{"rope", "pos0"}, func() error {
			return ok1(device.RoPE(ctx, z(1, 2, 1, 4), tab, device.RopeHalf, math.MaxInt, nil))
		}},
		{"rope past table", device.ErrShape, []string{"rope"}, func() error { return ok1(device.RoPE(ctx, z(1, 2, 1, 4), tab, device.RopeHalf, 7, nil)) }},
		{"rope rank", device.ErrShape, []string{"rope", "x"}, func() error { return ok1(device.RoPE(ctx, z(2, 1, 4), tab, device.RopeHalf, 0, nil)) }},
		{"rope nil", device.ErrNilTensor, []string{"rope", "x"}, func() error { return ok1(device.RoPE(ctx, nil, tab, device.RopeHalf, 0, nil)) }},
		{"rope empty table", device.ErrShape, []string{"rope", "table"}, func() error {
			return ok1(device.RoPE(ctx, z(1, 2, 1, 4), device.RopeTable{}, device.RopeHalf, 0, nil))
		}},
		{"rope bad table args", device.ErrShape, []string{"rope", "table"}, func() error {
			return ok1(device.RoPE(ctx, z(1, 2, 1, 4), device.NewRopeTable(8, 3, 10000), device.RopeHalf, 0, nil))
		}},
		{"rope theta <= 1", device.ErrShape, []string{"rope", "table"}, func() error {
			return ok1(device.RoPE(ctx, z(1, 2, 1, 4), device.NewRopeTable(8, 4, 0.5), device.RopeHalf, 0, nil))
		}},
		{"rope no freqs", device.ErrShape, []string{"rope", "table"}, func() error {
			return ok1(device.RoPE(ctx, z(1, 2, 1, 4), device.NewRopeTableFreqs(8, nil), device.RopeHalf, 0, nil))
		}},
		{"rope ragged table", device.ErrShape, []string{"rope", "table"}, func() error {
			bad := tab
			bad.Sin = bad.Sin[:3]
			return ok1(device.RoPE(ctx, z(1, 2, 1, 4), bad, device.RopeHalf, 0, nil))
		}},
		{"rope table wider than head", device.ErrShape, []string{"rope", "table"}, func() error {
			return ok1(device.RoPE(ctx, z(1, 2, 1, 2), tab, device.RopeHalf, 0, nil))
		}},
		{"rope mode", device.ErrParam, []string{"rope", "mode"}, func() error { return ok1(device.RoPE(ctx, z(1, 2, 1, 4), tab, 7, 0, nil)) }},
		{"rope positions count", device.ErrShape, []string{"rope", "positions"}, func() error {
			return ok1(device.RoPE(ctx, z(1, 2, 1, 4), tab, device.RopeHalf, 0, []int32{0, 1, 2}))
		}},
		{"rope negative position", device.ErrShape, []string{"rope", "positions[1]"}, func() error {
			return ok1(device.RoPE(ctx, z(1, 2, 1, 4), tab, device.RopeHalf, 0, []int32{0, -1}))
		}},
		{"rope int", device.ErrDType, []string{"rope", "x"}, func() error { return ok1(device.RoPE(ctx, zt(tensor.Int32, 1, 2, 1, 4), tab, device.RopeHalf, 0, nil)) }},

		// attention
		{"attention negative past", device.ErrShape, []string{"attention", "past"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{Causal: true, Past: -3}))
		}},
		{"attention negative past, not causal", device.ErrShape, []string{"attention", "past"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{Past: -1}))
		}},
		{"attention past overflow", device.ErrShape, []string{"attention", "past"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{Causal: true, Past: math.MaxInt}))
		}},
		{"attention zero q heads", device.ErrShape, []string{"attention"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 0, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{}))
		}},
		{"attention zero kv heads", device.ErrShape, []string{"attention"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 0, 4), z(1, 2, 0, 4), device.AttentionOptions{}))
		}},
		{"attention zero head dim", device.ErrShape, []string{"attention"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 0), z(1, 2, 2, 0), z(1, 2, 2, 0), device.AttentionOptions{}))
		}},
		{"attention gqa", device.ErrShape, []string{"attention"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 3, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{}))
		}},
		{"attention k vs v", device.ErrShape, []string{"attention"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), z(1, 3, 2, 4), device.AttentionOptions{}))
		}},
		{"attention rank", device.ErrShape, []string{"attention"}, func() error {
			return ok1(device.Attention(ctx, z(2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{}))
		}},
		{"attention nil v", device.ErrNilTensor, []string{"attention", "v"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), nil, device.AttentionOptions{}))
		}},
		{"attention causal keys", device.ErrShape, []string{"attention", "causal"}, func() error {
			return ok1(device.Attention(ctx, z(1, 3, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{Causal: true}))
		}},
		{"attention nan scale", device.ErrParam, []string{"attention", "scale"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{Scale: nan}))
		}},
		{"attention key mask", device.ErrShape, []string{"attention", "key mask"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{KeyMask: []bool{true}}))
		}},
		{"attention mask", device.ErrShape, []string{"attention", "mask"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{Mask: z(3, 3)}))
		}},
		{"attention int mask", device.ErrDType, []string{"attention", "mask"}, func() error {
			return ok1(device.Attention(ctx, z(1, 2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{Mask: zt(tensor.Int32, 2, 2)}))
		}},
		{"attention int q", device.ErrDType, []string{"attention", "q"}, func() error {
			return ok1(device.Attention(ctx, zt(tensor.Int32, 1, 2, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), device.AttentionOptions{}))
		}},

		// kv cache
		{"kv cache zero dims", device.ErrShape, []string{"kv cache"}, func() error { _, err := device.NewKVCache(1, 0, 4, 4); return err }},
		{"kv cache overflow", device.ErrShape, []string{"kv cache", "too large"}, func() error {
			_, err := device.NewKVCache(1<<20, 1<<20, 1<<20, 1<<20)
			return err
		}},
		{"kv append rank 1", device.ErrShape, []string{"kv cache append"}, func() error { return cache.Append(ctx, z(4), z(4)) }},
		{"kv append scalar", device.ErrShape, []string{"kv cache append"}, func() error { return cache.Append(ctx, z(), z()) }},
		{"kv append heads", device.ErrShape, []string{"kv cache append"}, func() error { return cache.Append(ctx, z(1, 1, 3, 4), z(1, 1, 3, 4)) }},
		{"kv append v differs", device.ErrShape, []string{"kv cache append"}, func() error { return cache.Append(ctx, z(1, 1, 2, 4), z(1, 2, 2, 4)) }},
		{"kv append nil v", device.ErrNilTensor, []string{"kv_append", "v"}, func() error { return cache.Append(ctx, z(1, 1, 2, 4), nil) }},
		{"kv append int", device.ErrDType, []string{"kv_append", "k"}, func() error {
			return cache.Append(ctx, zt(tensor.Int32, 1, 1, 2, 4), zt(tensor.Int32, 1, 1, 2, 4))
		}},
		{"kv append full", device.ErrKVCacheFull, []string{"kv cache append"}, func() error { return cache.Append(ctx, z(1, 5, 2, 4), z(1, 5, 2, 4)) }},
		{"kv truncate", device.ErrShape, []string{"kv cache", "truncate"}, func() error { return cache.Truncate(-1) }},
		{"kv zero cache append", device.ErrShape, []string{"kv cache"}, func() error { return zeroCache.Append(ctx, z(1, 1, 2, 4), z(1, 1, 2, 4)) }},
		{"kv nil cache attention", device.ErrShape, []string{"attention", "kv cache"}, func() error {
			return ok1(device.AttentionCache(ctx, z(1, 1, 2, 4), nil, device.AttentionOptions{}))
		}},
		{"attention cache zero heads", device.ErrShape, []string{"attention"}, func() error {
			return ok1(device.AttentionCache(ctx, z(1, 0, 0, 4), cache, device.AttentionOptions{}))
		}},
		{"attention cache too many queries", device.ErrShape, []string{"attention", "append first"}, func() error {
			return ok1(device.AttentionCache(ctx, z(1, 1, 2, 4), cache, device.AttentionOptions{}))
		}},
		{"attention cache nil q", device.ErrNilTensor, []string{"attention", "q"}, func() error {
			return ok1(device.AttentionCache(ctx, nil, cache, device.AttentionOptions{}))
		}},

		// conv
		{"conv nil weight", device.ErrNilTensor, []string{"conv", "weight"}, func() error { return ok1(device.Conv(ctx, z(1, 2, 5), nil, nil, device.ConvOptions{})) }},
		{"conv rank", device.ErrShape, []string{"conv"}, func() error { return ok1(device.Conv(ctx, z(2, 5), z(2, 2, 3), nil, device.ConvOptions{})) }},
		{"conv channels", device.ErrShape, []string{"conv1d"}, func() error { return ok1(device.Conv(ctx, z(1, 3, 5), z(2, 2, 3), nil, device.ConvOptions{})) }},
		{"conv zero channels", device.ErrShape, []string{"conv1d"}, func() error { return ok1(device.Conv(ctx, z(1, 0, 5), z(2, 0, 3), nil, device.ConvOptions{})) }},
		{"conv zero out channels", device.ErrShape, []string{"conv1d"}, func() error { return ok1(device.Conv(ctx, z(1, 2, 5), z(0, 2, 3), nil, device.ConvOptions{})) }},
		{"conv negative groups", device.ErrShape, []string{"conv1d", "groups"}, func() error {
			return ok1(device.Conv(ctx, z(1, 2, 5), z(2, 2, 3), nil, device.ConvOptions{Groups: -1}))
		}},
		{"conv stride 0", device.ErrShape, []string{"conv1d", "stride"}, func() error {
			return ok1(device.Conv(ctx, z(1, 2, 5), z(2, 2, 3), nil, device.ConvOptions{Stride: []int{0}}))
		}},
		{"conv negative padding", device.ErrShape, []string{"conv2d", "padding"}, func() error {
			return ok1(device.Conv(ctx, z(1, 2, 5, 5), z(2, 2, 3, 3), nil, device.ConvOptions{Padding: []int{-1}}))
		}},
		{"conv huge dilation", device.ErrShape, []string{"conv1d", "dilation"}, func() error {
			return ok1(device.Conv(ctx, z(1, 2, 5), z(2, 2, 3), nil, device.ConvOptions{Dilation: []int{math.MaxInt}}))
		}},
		{"conv option entries", device.ErrShape, []string{"conv2d", "stride"}, func() error {
			return ok1(device.Conv(ctx, z(1, 2, 5, 5), z(2, 2, 3, 3), nil, device.ConvOptions{Stride: []int{1, 1, 1}}))
		}},
		{"conv no output", device.ErrShape, []string{"conv1d", "no output"}, func() error { return ok1(device.Conv(ctx, z(1, 2, 2), z(2, 2, 3), nil, device.ConvOptions{})) }},
		{"conv zero kernel", device.ErrShape, []string{"conv1d", "kernel"}, func() error { return ok1(device.Conv(ctx, z(1, 2, 4), z(2, 2, 0), nil, device.ConvOptions{})) }},
		{"conv bias", device.ErrShape, []string{"conv1d", "bias"}, func() error { return ok1(device.Conv(ctx, z(1, 2, 5), z(2, 2, 3), z(3), device.ConvOptions{})) }},
		{"conv int x", device.ErrDType, []string{"conv1d", "x"}, func() error {
			return ok1(device.Conv(ctx, zt(tensor.Int32, 1, 2, 5), z(2, 2, 3), nil, device.ConvOptions{}))
		}},
		{"conv_transpose1d nil x", device.ErrNilTensor, []string{"conv_transpose1d", "x"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, nil, z(2, 2, 3), nil, device.ConvTranspose1dOptions{}))
		}},
		{"conv_transpose1d rank", device.ErrShape, []string{"conv_transpose1d"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, z(2, 5), z(2, 2, 3), nil, device.ConvTranspose1dOptions{}))
		}},
		{"conv_transpose1d negative stride", device.ErrShape, []string{"conv_transpose1d", "stride"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, z(1, 2, 5), z(2, 2, 3), nil, device.ConvTranspose1dOptions{Stride: -2}))
		}},
		{"conv_transpose1d negative groups", device.ErrShape, []string{"conv_transpose1d", "groups"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, z(1, 2, 5), z(2, 2, 3), nil, device.ConvTranspose1dOptions{Groups: -1}))
		}},
		{"conv_transpose1d zero out channels", device.ErrShape, []string{"conv_transpose1d"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, z(1, 2, 5), z(2, 0, 3), nil, device.ConvTranspose1dOptions{}))
		}},
		{"conv_transpose1d zero length", device.ErrShape, []string{"conv_transpose1d"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, z(1, 2, 0), z(2, 2, 3), nil, device.ConvTranspose1dOptions{}))
		}},
		{"conv_transpose1d output padding", device.ErrShape, []string{"conv_transpose1d", "output padding"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, z(1, 2, 5), z(2, 2, 3), nil, device.ConvTranspose1dOptions{OutputPadding: 1}))
		}},
		{"conv_transpose1d padding", device.ErrShape, []string{"conv_transpose1d", "output length"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, z(1, 2, 1), z(2, 2, 1), nil, device.ConvTranspose1dOptions{Padding: 3}))
		}},
		{"conv_transpose1d bias", device.ErrShape, []string{"conv_transpose1d", "bias"}, func() error {
			return ok1(device.ConvTranspose1d(ctx, z(1, 2, 5), z(2, 2, 3), z(1), device.ConvTranspose1dOptions{}))
		}},

		// embedding
		{"embedding nil table", device.ErrNilTensor, []string{"embedding", "table"}, func() error { return ok1(device.Embedding(ctx, ids(0), nil)) }},
		{"embedding float ids", device.ErrDType, []string{"embedding", "ids"}, func() error { return ok1(device.Embedding(ctx, z(2), z(4, 3))) }},
		{"embedding table rank", device.ErrShape, []string{"embedding", "table"}, func() error { return ok1(device.Embedding(ctx, ids(0), z(4))) }},
		{"embedding int table", device.ErrDType, []string{"embedding", "table"}, func() error { return ok1(device.Embedding(ctx, ids(0), zt(tensor.Int32, 4, 3))) }},
		{"embedding id", device.ErrTokenID, []string{"embedding", "ids[1]"}, func() error { return ok1(device.Embedding(ctx, ids(0, 4), z(4, 3))) }},
		{"embedding id, empty rows", device.ErrTokenID, []string{"embedding", "ids[0]"}, func() error { return ok1(device.Embedding(ctx, ids(-1), z(4, 0))) }},

		// sample
		{"sample nil", device.ErrNilTensor, []string{"sample", "logits"}, func() error {
			_, err := device.Sample(ctx, nil, nil, nil, device.SampleParams{}, rng)
			return err
		}},
		{"sample empty", device.ErrShape, []string{"sample", "logits"}, func() error {
			_, err := device.Sample(ctx, nil, z(0), nil, device.SampleParams{}, rng)
			return err
		}},
		{"sample two rows", device.ErrShape, []string{"sample", "logits"}, func() error {
			_, err := device.Sample(ctx, nil, z(2, 3), nil, device.SampleParams{}, rng)
			return err
		}},
		{"sample int", device.ErrDType, []string{"sample", "logits"}, func() error {
			_, err := device.Sample(ctx, nil, zt(tensor.Int32, 3), nil, device.SampleParams{}, rng)
			return err
		}},
		{"sample nil rng", device.ErrParam, []string{"sample", "rng"}, func() error {
			_, err := device.Sample(ctx, nil, z(3), nil, device.SampleParams{Temperature: 1}, nil)
			return err
		}},
		{"sample negative penalty", device.ErrParam, []string{"sample", "repetition_penalty"}, func() error {
			_, err := device.Sample(ctx, nil, z(3), []int32{0}, device.SampleParams{RepetitionPenalty: -1}, rng)
			return err
		}},
		{"sample nan penalty", device.ErrParam, []string{"sample", "repetition_penalty"}, func() error {
			_, err := device.Sample(ctx, nil, z(3), nil, device.SampleParams{RepetitionPenalty: nan}, rng)
			return err
		}},
		{"sample nan temperature", device.ErrParam, []string{"sample", "temperature"}, func() error {
			_, err := device.Sample(ctx, nil, z(3), nil, device.SampleParams{Temperature: nan}, rng)
			return err
		}},
		{"sample nan top_p", device.ErrParam, []string{"sample", "top_p"}, func() error {
			_, err := device.Sample(ctx, nil, z(3), nil, device.SampleParams{Temperature: 1, TopP: nan}, rng)
			return err
		}},
		{"sample prev id", device.ErrShape, []string{"sample", "prev[1]"}, func() error {
			_, err := device.Sample(ctx, nil, z(3), []int32{0, 3}, device.SampleParams{RepetitionPenalty: 1.2}, rng)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, tc.name, tc.f)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want one wrapping %v", err, tc.want)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not name %q", err, m)
				}
			}
		})
	}
}

// TestEmptyOperands checks the kernels' answers for zero-size dimensions:
// empty results, zeros for an empty sum (matmul with K = 0, sum of an empty
// axis) and the bias alone for a linear layer with no inputs.
func TestEmptyOperands(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		ctx := context.Background()
		put := func(x *tensor.Tensor) *tensor.Tensor { return devicetest.Put(t, dev, x) }
		check := func(name string, out *tensor.Tensor, err error, shape []int, want float32) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			defer out.Release()
			h := devicetest.Get(t, dev, out)
			defer h.Release()
			if !tensor.SameShape(h.Shape(), shape) {
				t.Fatalf("%s: shape %v, want %v", name, h.Shape(), shape)
			}
			for i := range h.NumElements() {
				var v float32
				if h.DType() == tensor.Int32 {
					v = float32(h.Int32s()[i])
				} else {
					v = h.Float32s()[i]
				}
				if v != want {
					t.Fatalf("%s: element %d = %v, want %v", name, i, v, want)
				}
			}
		}
		out, err := device.MatMul(ctx, put(z(2, 0)), put(z(0, 3)), false, false)
		check("matmul k=0", out, err, []int{2, 3}, 0)
		out, err = device.MatMul(ctx, put(z(3, 0, 2)), put(z(3, 5, 0)), true, true)
		check("batched matmul k=0 transposed", out, err, []int{3, 2, 5}, 0)
		out, err = device.MatMul(ctx, put(z(0, 4)), put(z(4, 3)), false, false)
		check("matmul m=0", out, err, []int{0, 3}, 0)
		b := z(2)
		b.Float32s()[0], b.Float32s()[1] = 7, 7
		out, err = device.Linear(ctx, put(z(3, 0)), put(z(2, 0)), put(b))
		check("linear in=0", out, err, []int{3, 2}, 7)
		out, err = device.Linear(ctx, put(z(0, 4)), put(z(2, 4)), nil)
		check("linear no rows", out, err, []int{0, 2}, 0)
		out, err = device.Sum(ctx, put(z(3, 0)))
		check("sum empty axis", out, err, []int{3}, 0)
		out, err = device.Max(ctx, put(z(0, 4)))
		check("max no rows", out, err, []int{0}, 0)
		out, err = device.ArgMax(ctx, put(z(2, 0, 4)))
		check("argmax no rows", out, err, []int{2, 0}, 0)
		out, err = device.Softmax(ctx, put(z(3, 0)))
		check("softmax empty rows", out, err, []int{3, 0}, 0)
		out, err = device.RMSNorm(ctx, put(z(0, 4)), nil, 1e-5)
		check("rms_norm no rows", out, err, []int{0, 4}, 0)
		out, err = device.LayerNorm(ctx, put(z(2, 0)), nil, nil, 1e-5)
		check("layer_norm empty rows", out, err, []int{2, 0}, 0)
		out, err = device.RMSNormChannels(ctx, put(z(0, 4, 3)), nil, 1e-5)
		check("rms_norm_channels no images", out, err, []int{0, 4, 3}, 0)
		out, err = device.RMSNormChannels(ctx, put(z(2, 0, 3, 3)), put(z(0)), 1e-5)
		check("rms_norm_channels no channels", out, err, []int{2, 0, 3, 3}, 0)
		out, err = device.RMSNormChannels(ctx, put(z(2, 4, 0)), nil, 1e-5)
		check("rms_norm_channels no positions", out, err, []int{2, 4, 0}, 0)
		out, err = device.GroupNorm(ctx, put(z(0, 4, 3)), 2, nil, nil, 1e-5)
		check("group_norm no images", out, err, []int{0, 4, 3}, 0)
		out, err = device.Add(ctx, put(z(0, 3)), put(z(3)))
		check("add empty", out, err, []int{0, 3}, 0)
		out, err = device.Exp(ctx, put(z(0)))
		check("exp empty", out, err, []int{0}, 0)
		out, err = device.Attention(ctx, put(z(1, 0, 2, 4)), put(z(1, 3, 2, 4)), put(z(1, 3, 2, 4)), device.AttentionOptions{})
		check("attention no queries", out, err, []int{1, 0, 2, 4}, 0)
		out, err = device.Attention(ctx, put(z(0, 2, 2, 4)), put(z(0, 3, 1, 4)), put(z(0, 3, 1, 4)), device.AttentionOptions{})
		check("attention no batch", out, err, []int{0, 2, 2, 4}, 0)
		q := z(1, 2, 2, 4)
		for i := range q.Float32s() {
			q.Float32s()[i] = 1
		}
		out, err = device.Attention(ctx, put(q), put(z(1, 0, 2, 4)), put(z(1, 0, 2, 4)), device.AttentionOptions{})
		check("attention no keys", out, err, []int{1, 2, 2, 4}, 0)
		tab := device.NewRopeTable(4, 4, 10000)
		out, err = device.RoPE(ctx, put(z(2, 0, 1, 4)), tab, device.RopeHalf, 4, nil)
		check("rope no tokens", out, err, []int{2, 0, 1, 4}, 0)
		out, err = device.Conv(ctx, put(z(0, 2, 5)), put(z(4, 2, 3)), nil, device.ConvOptions{})
		check("conv no images", out, err, []int{0, 4, 3}, 0)
		out, err = device.ConvTranspose1d(ctx, put(z(0, 2, 5)), put(z(2, 3, 3)), nil, device.ConvTranspose1dOptions{})
		check("conv_transpose1d no images", out, err, []int{0, 3, 7}, 0)
		none, _ := tensor.FromInt32([]int32{}, 0)
		out, err = device.Embedding(ctx, put(none), put(z(4, 3)))
		check("embedding no ids", out, err, []int{0, 3}, 0)
	})
}

// FuzzMatMulShapes and FuzzAttentionShapes feed arbitrary small shapes
// (including zero and negative options) to two kernels: every call returns
// a result of the documented shape or an error, never a panic.
func FuzzMatMulShapes(f *testing.F) {
	f.Add(uint8(2), uint8(0), uint8(0), uint8(3), uint8(1), uint8(1), false, true)
	f.Add(uint8(3), uint8(4), uint8(4), uint8(5), uint8(2), uint8(1), true, false)
	f.Fuzz(func(t *testing.T, m, ka, kb, n, ba, bb uint8, ta, tb bool) {
		dims := func(v uint8) int { return int(v % 7) }
		as := []int{dims(ba), dims(m), dims(ka)}
		bs := []int{dims(bb), dims(kb), dims(n)}
		a, b := z(as...), z(bs...)
		out, err := device.MatMul(context.Background(), a, b, ta, tb)
		if err != nil {
			if !errors.Is(err, device.ErrShape) {
				t.Fatalf("%v·%v: error %v does not wrap ErrShape", as, bs, err)
			}
			return
		}
		defer out.Release()
		for _, v := range out.Float32s() {
			if v != 0 {
				t.Fatalf("%v·%v of zeros gave %v", as, bs, v)
			}
		}
	})
}

func FuzzAttentionShapes(f *testing.F) {
	f.Add(uint8(1), uint8(2), uint8(0), uint8(2), uint8(4), uint8(2), true, int8(-3))
	f.Add(uint8(1), uint8(2), uint8(4), uint8(2), uint8(4), uint8(3), false, int8(0))
	f.Fuzz(func(t *testing.T, b, tq, hq, hk, d, tk uint8, causal bool, past int8) {
		dims := func(v uint8) int { return int(v % 5) }
		qs := []int{dims(b), dims(tq), dims(hq), dims(d)}
		ks := []int{dims(b), dims(tk), dims(hk), dims(d)}
		out, err := device.Attention(context.Background(), z(qs...), z(ks...), z(ks...), device.AttentionOptions{Causal: causal, Past: int(past)})
		if err != nil {
			if !errors.Is(err, device.ErrShape) {
				t.Fatalf("q %v k %v: error %v does not wrap ErrShape", qs, ks, err)
			}
			return
		}
		defer out.Release()
		if !tensor.SameShape(out.Shape(), qs) {
			t.Fatalf("q %v k %v: result %v", qs, ks, out.Shape())
		}
	})
}

func FuzzConvShapes(f *testing.F) {
	f.Add(uint8(1), uint8(2), uint8(5), uint8(4), uint8(3), int8(1), int8(1), int8(0), uint8(1), false, false)
	f.Add(uint8(0), uint8(4), uint8(2), uint8(2), uint8(5), int8(2), int8(3), int8(2), uint8(2), true, true)
	f.Fuzz(func(t *testing.T, n, inC, l, outC, kern uint8, stride, dil, pad int8, groups uint8, causal, transposed bool) {
		d := func(v uint8) int { return int(v % 6) }
		x := z(d(n), d(inC), d(l))
		ctx := context.Background()
		var out *tensor.Tensor
		var err error
		if transposed {
			w := z(d(inC), d(outC), d(kern))
			out, err = device.ConvTranspose1d(ctx, x, w, nil, device.ConvTranspose1dOptions{
				Stride: int(stride), Dilation: int(dil), Padding: int(pad), Groups: int(groups % 3)})
		} else {
			g := max(int(groups%3), 1)
			w := z(d(outC), d(inC)/g, d(kern))
			out, err = device.Conv(ctx, x, w, nil, device.ConvOptions{
				Stride: []int{int(stride)}, Dilation: []int{int(dil)}, Padding: []int{int(pad)}, Groups: int(groups % 3), Causal: causal})
		}
		if err != nil {
			if !errors.Is(err, device.ErrShape) {
				t.Fatalf("error %v does not wrap ErrShape", err)
			}
			return
		}
		out.Release()
	})
}
