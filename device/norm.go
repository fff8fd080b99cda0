package device

import (
	"context"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// optF32 returns the float32 data of an optional parameter tensor of n
// elements (nil for nil).
func optF32(k *kernelCall, t *tensor.Tensor, n int, what string) ([]float32, func(), error) {
	if t == nil {
		return nil, func() {}, nil
	}
	if t.NumElements() != n {
		return nil, nil, shapeErr("%s: %s has %d elements, want %d", k.name, what, t.NumElements(), n)
	}
	tf, r, err := float32s(k.ctx, t)
	if err != nil {
		return nil, nil, err
	}
	return tf.Float32s(), r, nil
}

// LayerNorm normalizes the last axis of x to zero mean and unit variance,
// then scales by weight and adds bias ([D] each; nil means 1 and 0).
func LayerNorm(ctx context.Context, x, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	if x.Rank() < 1 {
		return nil, shapeErr("layer_norm: want rank >= 1")
	}
	cols := x.Dim(-1)
	rows := x.NumElements() / max(cols, 1)
	k := begin(ctx, "layer_norm", cost{flops: 8 * int64(rows*cols), bytes: bytes32(2*rows*cols, 2*cols)}, x, weight)
	defer k.end()
	w, rw, err := optF32(k, weight, cols, "weight")
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rw()
	b, rb, err := optF32(k, bias, cols, "bias")
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rb()
	xf, rx, err := float32s(k.ctx, x)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rx()
	out, err := k.alloc(x.Shape()...)
	if err != nil {
		return nil, k.wrap(err)
	}
	cpu.LayerNorm(k.cpu.Threads(), out.Float32s(), xf.Float32s(), rows, cols, w, b, eps)
	return k.finish(out, nil)
}

// RMSNorm scales the last axis of x by 1/√(mean(x²)+eps), then by weight
// ([D]; nil means 1).
func RMSNorm(ctx context.Context, x, weight *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	if x.Rank() < 1 {
		return nil, shapeErr("rms_norm: want rank >= 1")
	}
	cols := x.Dim(-1)
	rows := x.NumElements() / max(cols, 1)
	k := begin(ctx, "rms_norm", cost{flops: 4 * int64(rows*cols), bytes: bytes32(2*rows*cols, cols)}, x, weight)
	defer k.end()
	w, rw, err := optF32(k, weight, cols, "weight")
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rw()
	xf, rx, err := float32s(k.ctx, x)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rx()
	out, err := k.alloc(x.Shape()...)
	if err != nil {
		return nil, k.wrap(err)
	}
	cpu.RMSNorm(k.cpu.Threads(), out.Float32s(), xf.Float32s(), rows, cols, w, eps)
	return k.finish(out, nil)
}

// GroupNorm normalizes x [N, C, spatial...] over groups of C/groups
// channels and all spatial positions, then applies per-channel weight and
// bias ([C]; nil means 1 and 0).
func GroupNorm(ctx context.Context, x *tensor.Tensor, groups int, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	if x.Rank() < 2 {
		return nil, shapeErr("group_norm: want [N, C, ...], got %v", x.Shape())
	}
	n, c := x.Dim(0), x.Dim(1)
	if groups <= 0 || c%groups != 0 {
		return nil, shapeErr("group_norm: %d channels do not split into %d groups", c, groups)
	}
	spatial := x.NumElements() / max(n*c, 1)
	k := begin(ctx, "group_norm", cost{flops: 8 * int64(x.NumElements()), bytes: bytes32(2*x.NumElements(), 2*c)}, x, weight)
	defer k.end()
	w, rw, err := optF32(k, weight, c, "weight")
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rw()
	b, rb, err := optF32(k, bias, c, "bias")
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rb()
	xf, rx, err := float32s(k.ctx, x)
	if err != nil {
		return nil, k.wrap(err)
	}
	defer rx()
	out, err := k.alloc(x.Shape()...)
	if err != nil {
		return nil, k.wrap(err)
	}
	cpu.GroupNorm(k.cpu.Threads(), out.Float32s(), xf.Float32s(), n, c, spatial, groups, w, b, eps)
	return k.finish(out, nil)
}
