package device

import (
	"context"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// LayerNorm normalizes the last axis of x to zero mean and unit variance,
// then scales by weight and adds bias ([D] each; nil means 1 and 0).
func LayerNorm(ctx context.Context, x, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	const name = "layer_norm"
	r, c, err := rows(name, x)
	if err != nil {
		return nil, err
	}
	if err := firstErr(checkLen(name, weight, c, "weight"), checkLen(name, bias, c, "bias"),
		floatOperands(name, operand{"weight", weight}, operand{"bias", bias}), checkEps(name, eps)); err != nil {
		return nil, err
	}
	return dispatch(ctx, name, cost{flops: 8 * int64(r*c), bytes: traffic(r*c, x, weight, bias)}, []*tensor.Tensor{x, weight},
		func(ctx context.Context, d LayerNormer) (*tensor.Tensor, error) {
			return d.LayerNorm(ctx, x, weight, bias, eps)
		},
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x, weight, bias)
			if err != nil {
				return nil, err
			}
			return k.output(x.Shape(), func(dst []float32) error {
				cpu.LayerNorm(k.cpu.Threads(), dst, in[0], r, c, in[1], in[2], eps)
				return nil
			})
		})
}

// RMSNorm scales the last axis of x by 1/√(mean(x²)+eps), then by weight
// ([D]; nil means 1).
func RMSNorm(ctx context.Context, x, weight *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	const name = "rms_norm"
	r, c, err := rows(name, x)
	if err != nil {
		return nil, err
	}
	if err := firstErr(checkLen(name, weight, c, "weight"), floatOperands(name, operand{"weight", weight}), checkEps(name, eps)); err != nil {
		return nil, err
	}
	return dispatch(ctx, name, cost{flops: 4 * int64(r*c), bytes: traffic(r*c, x, weight)}, []*tensor.Tensor{x, weight},
		func(ctx context.Context, d RMSNormer) (*tensor.Tensor, error) { return d.RMSNorm(ctx, x, weight, eps) },
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x, weight)
			if err != nil {
				return nil, err
			}
			return k.output(x.Shape(), func(dst []float32) error {
				cpu.RMSNorm(k.cpu.Threads(), dst, in[0], r, c, in[1], eps)
				return nil
			})
		})
}

// RMSNormChannels is RMSNorm over axis 1 of a channel-first x
// [N, C, spatial...]: at each image and position, the C values are scaled
// by 1/√(mean over channels of x² + eps), then channel c by weight[c]
// (C elements, any shape, such as Wan's [C, 1, 1, 1] gamma; nil means 1).
// It runs without transposing x to channel-last and back. eps = 0 gives
// NaN at a position whose channels are all zero. Wan's VAE RMS_norm,
// F.normalize(x, dim=1)·√C·γ, is this with eps = 1e-24/C (F.normalize
// clamps the norm at 1e-12). For a rank-2 x [N, C] it equals RMSNorm.
func RMSNormChannels(ctx context.Context, x, weight *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	const name = "rms_norm_channels"
	if err := present(name, operand{"x", x}); err != nil {
		return nil, err
	}
	if x.Rank() < 2 {
		return nil, shapeErr("%s: x: want [N, C, ...], got %v", name, x.Shape())
	}
	n, c := x.Dim(0), x.Dim(1)
	if err := firstErr(floatOperands(name, operand{"x", x}, operand{"weight", weight}), checkLen(name, weight, c, "weight"),
		checkEps(name, eps)); err != nil {
		return nil, err
	}
	spatial := prod(x.Shape()[2:])
	size := x.NumElements()
	return dispatch(ctx, name, cost{flops: 4 * int64(size), bytes: traffic(size, x, weight)}, []*tensor.Tensor{x, weight},
		func(ctx context.Context, d ChannelRMSNormer) (*tensor.Tensor, error) {
			return d.RMSNormChannels(ctx, x, weight, eps)
		},
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x, weight)
			if err != nil {
				return nil, err
			}
			return k.output(x.Shape(), func(dst []float32) error {
				cpu.RMSNormChannels(k.cpu.Threads(), dst, in[0], n, c, spatial, in[1], eps)
				return nil
			})
		})
}

// GroupNorm normalizes x [N, C, spatial...] over groups of C/groups
// channels and all spatial positions, then applies per-channel weight and
// bias ([C]; nil means 1 and 0).
func GroupNorm(ctx context.Context, x *tensor.Tensor, groups int, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	const name = "group_norm"
	if err := present(name, operand{"x", x}); err != nil {
		return nil, err
	}
	if x.Rank() < 2 {
		return nil, shapeErr("group_norm: x: want [N, C, ...], got %v", x.Shape())
	}
	n, c := x.Dim(0), x.Dim(1)
	if groups <= 0 || c%groups != 0 {
		return nil, shapeErr("group_norm: x %v: %d channels do not split into %d groups", x.Shape(), c, groups)
	}
	if err := firstErr(checkLen(name, weight, c, "weight"), checkLen(name, bias, c, "bias"),
		floatOperands(name, operand{"x", x}, operand{"weight", weight}, operand{"bias", bias}), checkEps(name, eps)); err != nil {
		return nil, err
	}
	spatial := prod(x.Shape()[2:])
	return dispatch(ctx, name, cost{flops: 8 * int64(x.NumElements()), bytes: traffic(x.NumElements(), x, weight, bias)}, []*tensor.Tensor{x, weight},
		func(ctx context.Context, d GroupNormer) (*tensor.Tensor, error) {
			return d.GroupNorm(ctx, x, groups, weight, bias, eps)
		},
		func(k *kernelCall) (*tensor.Tensor, error) {
			in, err := k.data(x, weight, bias)
			if err != nil {
				return nil, err
			}
			return k.output(x.Shape(), func(dst []float32) error {
				cpu.GroupNorm(k.cpu.Threads(), dst, in[0], n, c, spatial, groups, in[1], in[2], eps)
				return nil
			})
		})
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
