package nn

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// Activation names an MLP nonlinearity.
type Activation string

const (
	ActSiLU     Activation = "silu"
	ActGELU     Activation = "gelu"
	ActGELUTanh Activation = "gelu_tanh"
)

// Activate applies the activation.
func Activate(ctx context.Context, act Activation, x *tensor.Tensor) (*tensor.Tensor, error) {
	switch act {
	case ActSiLU:
		return device.SiLU(ctx, x)
	case ActGELU:
		return device.GELU(ctx, x)
	case ActGELUTanh:
		return device.GELUTanh(ctx, x)
	}
	return nil, fmt.Errorf("nn: unknown activation %q", act)
}

// MLPConfig describes a feed-forward block: down(act(gate(x)) · up(x)) when
// Gated (SwiGLU in Qwen2 with silu; T5 v1.1's gated GELU), else
// down(act(up(x))). Names default to the Hugging Face Qwen2 ones.
type MLPConfig struct {
	Dim, Hidden int
	Act         Activation
	Gated       bool
	Bias        bool
	// Weight names under the block's name.
	GateName, UpName, DownName string
}

// MLP is a feed-forward block.
type MLP struct {
	Name           string
	Cfg            MLPConfig
	Gate, Up, Down *Linear
}

// NewMLP builds the block's linear layers.
func NewMLP(src Source, name string, cfg MLPConfig) (*MLP, error) {
	if cfg.Act == "" {
		cfg.Act = ActSiLU
	}
	if cfg.GateName == "" {
		cfg.GateName = "gate_proj"
	}
	if cfg.UpName == "" {
		cfg.UpName = "up_proj"
	}
	if cfg.DownName == "" {
		cfg.DownName = "down_proj"
	}
	switch cfg.Act {
	case ActSiLU, ActGELU, ActGELUTanh:
	default:
		return nil, fmt.Errorf("%w: %s: unknown activation %q", ErrWeight, name, cfg.Act)
	}
	m := &MLP{Name: name, Cfg: cfg}
	var err error
	if cfg.Gated {
		if m.Gate, err = NewLinear(src, Join(name, cfg.GateName), cfg.Dim, cfg.Hidden, cfg.Bias); err != nil {
			return nil, err
		}
	}
	if m.Up, err = NewLinear(src, Join(name, cfg.UpName), cfg.Dim, cfg.Hidden, cfg.Bias); err != nil {
		return nil, err
	}
	if m.Down, err = NewLinear(src, Join(name, cfg.DownName), cfg.Hidden, cfg.Dim, cfg.Bias); err != nil {
		return nil, err
	}
	return m, nil
}

// Forward maps [..., Dim] to [..., Dim].
func (m *MLP) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "MLP", profiler.String("name", m.Name))
	defer span.End()
	up, err := m.Up.Forward(ctx, x)
	if err != nil {
		return nil, err
	}
	defer up.Release()
	var h *tensor.Tensor
	if m.Cfg.Gated {
		g, err := m.Gate.Forward(ctx, x)
		if err != nil {
			return nil, err
		}
		defer g.Release()
		if m.Cfg.Act == ActSiLU {
			h, err = device.SwiGLU(ctx, g, up)
		} else {
			var a *tensor.Tensor
			if a, err = Activate(ctx, m.Cfg.Act, g); err == nil {
				h, err = device.Mul(ctx, a, up)
				a.Release()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
	} else if h, err = Activate(ctx, m.Cfg.Act, up); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	defer h.Release()
	return m.Down.Forward(ctx, h)
}
