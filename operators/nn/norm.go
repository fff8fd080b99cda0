package nn

import (
	"context"
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// RMSNorm is x / √(mean(x²)+ε) · weight over the last axis (Qwen2, T5).
type RMSNorm struct {
	Name string
	W    *tensor.Tensor
	Eps  float32
}

// NewRMSNorm builds name.weight [dim] (init 1).
func NewRMSNorm(src Source, name string, dim int, eps float32) (*RMSNorm, error) {
	if err := checkNorm(name, dim, eps); err != nil {
		return nil, err
	}
	w, err := src.Tensor(Join(name, "weight"), []int{dim}, Ones)
	if err != nil {
		return nil, err
	}
	return &RMSNorm{Name: name, W: w, Eps: eps}, nil
}

// Forward normalizes the last axis of x.
func (n *RMSNorm) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "RMSNorm", profiler.String("name", n.Name))
	defer span.End()
	y, err := device.RMSNorm(ctx, x, n.W, n.Eps)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	return y, nil
}

// checkNorm rejects a norm over no elements, or an ε that is negative or
// not finite (the kernels add it to a variance under a square root).
func checkNorm(name string, dim int, eps float32) error {
	if dim <= 0 {
		return fmt.Errorf("%w: %s: norm over %d elements", ErrWeight, name, dim)
	}
	if !(eps >= 0) || math.IsInf(float64(eps), 0) {
		return fmt.Errorf("%w: %s: eps %v, want finite and >= 0", ErrWeight, name, eps)
	}
	return nil
}

// LayerNorm is (x − mean)/√(var+ε) · weight + bias over the last axis;
// without affine parameters W and B are nil.
type LayerNorm struct {
	Name string
	W, B *tensor.Tensor
	Eps  float32
}

// NewLayerNorm builds name.weight and name.bias [dim] when affine.
func NewLayerNorm(src Source, name string, dim int, eps float32, affine bool) (*LayerNorm, error) {
	if err := checkNorm(name, dim, eps); err != nil {
		return nil, err
	}
	n := &LayerNorm{Name: name, Eps: eps}
	if affine {
		var err error
		if n.W, err = src.Tensor(Join(name, "weight"), []int{dim}, Ones); err != nil {
			return nil, err
		}
		if n.B, err = src.Tensor(Join(name, "bias"), []int{dim}, Zeros); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Forward normalizes the last axis of x.
func (n *LayerNorm) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "LayerNorm", profiler.String("name", n.Name))
	defer span.End()
	y, err := device.LayerNorm(ctx, x, n.W, n.B, n.Eps)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	return y, nil
}

// GroupNorm normalizes [N, C, ...] over channel groups (VAE blocks).
type GroupNorm struct {
	Name   string
	Groups int
	W, B   *tensor.Tensor
	Eps    float32
}

// NewGroupNorm builds name.weight and name.bias [channels].
func NewGroupNorm(src Source, name string, groups, channels int, eps float32) (*GroupNorm, error) {
	if groups <= 0 || channels <= 0 || channels%groups != 0 {
		return nil, fmt.Errorf("%w: %s: %d channels do not split into %d groups", ErrWeight, name, channels, groups)
	}
	if err := checkNorm(name, channels, eps); err != nil {
		return nil, err
	}
	w, err := src.Tensor(Join(name, "weight"), []int{channels}, Ones)
	if err != nil {
		return nil, err
	}
	b, err := src.Tensor(Join(name, "bias"), []int{channels}, Zeros)
	if err != nil {
		return nil, err
	}
	return &GroupNorm{Name: name, Groups: groups, W: w, B: b, Eps: eps}, nil
}

// Forward normalizes x [N, C, ...].
func (n *GroupNorm) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "GroupNorm", profiler.String("name", n.Name))
	defer span.End()
	y, err := device.GroupNorm(ctx, x, n.Groups, n.W, n.B, n.Eps)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	return y, nil
}
