package nn

import (
	"context"
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// Linear is y = x·Wᵀ + b with W [out, in] (the Hugging Face layout).
type Linear struct {
	Name    string
	W, B    *tensor.Tensor // B is nil without bias
	In, Out int
}

// NewLinear builds name.weight [out, in] and, with bias, name.bias [out].
// Random init follows PyTorch's default scale, U(±1/√in).
func NewLinear(src Source, name string, in, out int, bias bool) (*Linear, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("%w: %s: linear %d -> %d", ErrWeight, name, in, out)
	}
	bound := 1 / math.Sqrt(float64(in))
	w, err := src.Tensor(Join(name, "weight"), []int{out, in}, Uniform(bound))
	if err != nil {
		return nil, err
	}
	l := &Linear{Name: name, W: w, In: in, Out: out}
	if bias {
		if l.B, err = src.Tensor(Join(name, "bias"), []int{out}, Uniform(bound)); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Forward maps x [..., in] to [..., out].
func (l *Linear) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "Linear", profiler.String("name", l.Name))
	defer span.End()
	y, err := device.Linear(ctx, x, l.W, l.B)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.Name, err)
	}
	return y, nil
}
