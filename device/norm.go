package device

import (
	"context"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/tensor"
)

// LayerNorm normalizes the last axis of x to zero mean and unit variance,
// then scales by weight and adds bias ([D] each; nil means 1 and 0).
func LayerNorm(ctx context.Context, x, weight, bias *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	r, c, err := rows("layer_norm", x)
	if err != nil {
		return nil, err
	}
	if err := firstErr(checkLen("layer_norm", weight, c, "weight"), checkLen("layer_norm", bias, c, "bias")); err != nil {
		return nil, err
	}
	k := begin(ctx, "layer_norm", cost{flops: 8 * int64(r*c), bytes: bytes32(2*r*c, 2*c)}, x, weight)
	defer k.end()
	in, err := k.data(x, weight, bias)
	if err != nil {
		return nil, err
	}
	return k.output(x.Shape(), func(dst []float32) error {
		cpu.LayerNorm(k.cpu.Threads(), dst, in[0], r, c, in[1], in[2], eps)
		return nil
	})
}

// RMSNorm scales the last axis of x by 1/√(mean(x²)+eps), then by weight
// ([D]; nil means 1).
func RMSNorm(ctx context.Context, x, weight *tensor.Tensor, eps float32) (*tensor.Tensor, error) {
	r, c, err := rows("rms_norm", x)
	if err != nil {
		return nil, err
	}
	if err := checkLen("rms_norm", weight, c, "weight"); err != nil {
		return nil, err
	}
	k := begin(ctx, "rms_norm", cost{flops: 4 * int64(r*c), bytes: bytes32(2*r*c, c)}, x, weight)
	defer k.end()
	in, err := k.data(x, weight)
	if err != nil {
		return nil, err
	}
	return k.output(x.Shape(), func(dst []float32) error {
		cpu.RMSNorm(k.cpu.Threads(), dst, in[0], r, c, in[1], eps)
		return nil
	})
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
	if err := firstErr(checkLen("group_norm", weight, c, "weight"), checkLen("group_norm", bias, c, "bias")); err != nil {
		return nil, err
	}
	spatial := x.NumElements() / max(n*c, 1)
	k := begin(ctx, "group_norm", cost{flops: 8 * int64(x.NumElements()), bytes: bytes32(2*x.NumElements(), 2*c)}, x, weight)
	defer k.end()
	in, err := k.data(x, weight, bias)
	if err != nil {
		return nil, err
	}
	return k.output(x.Shape(), func(dst []float32) error {
		cpu.GroupNorm(k.cpu.Threads(), dst, in[0], n, c, spatial, groups, in[1], in[2], eps)
		return nil
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
