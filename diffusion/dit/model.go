package dit

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
)

// Input is one forward pass.
type Input struct {
	// Latent is [B, C, F, H, W] for Wan, [B, C, H, W] for Z-Image.
	Latent *tensor.Tensor
	// Timesteps [B] are the model's timestep inputs: the scheduler's
	// timestep for Wan; for Z-Image the pipeline's (1000 − t)/1000, which
	// the model multiplies by t_scale.
	Timesteps []float64
	// CleanFirstFrame (Wan 2.2 TI2V) gives the tokens of latent frame 0
	// timestep 0: that frame holds the clean conditioning image.
	CleanFirstFrame bool
	// Context [B, L, TextDim] is the text encoder's output.
	Context *tensor.Tensor
	// ContextMask [B*L] marks real text tokens (nil: all are real). Wan
	// attends to the zero-padded context without a mask, as Wan does;
	// Z-Image masks the padding.
	ContextMask []bool
}

// Model is a denoiser: it maps a noisy latent, its timestep and the text
// to the model output (a velocity for these flow-matching models) of the
// latent's shape.
type Model interface {
	Config() Config
	Forward(ctx context.Context, in Input) (*tensor.Tensor, error)
}

// New builds the model cfg describes, asking src for every weight by name.
func New(src nn.Source, cfg Config) (Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	switch cfg.Family {
	case ZImage:
		return newZImage(src, cfg)
	default:
		return newWan(src, cfg)
	}
}

func checkInput(cfg Config, in Input, rank int) error {
	if in.Latent == nil || in.Latent.Rank() != rank || in.Latent.Dim(1) != cfg.InChannels {
		var s []int
		if in.Latent != nil {
			s = in.Latent.Shape()
		}
		return fmt.Errorf("%w: latent %v, want rank %d with %d channels", device.ErrShape, s, rank, cfg.InChannels)
	}
	b := in.Latent.Dim(0)
	if len(in.Timesteps) != b {
		return fmt.Errorf("%w: %d timesteps for a batch of %d", device.ErrShape, len(in.Timesteps), b)
	}
	if in.Context == nil || in.Context.Rank() != 3 || in.Context.Dim(0) != b || in.Context.Dim(2) != cfg.TextDim {
		var s []int
		if in.Context != nil {
			s = in.Context.Shape()
		}
		return fmt.Errorf("%w: context %v, want [%d, L, %d]", device.ErrShape, s, b, cfg.TextDim)
	}
	if in.ContextMask != nil && len(in.ContextMask) != b*in.Context.Dim(1) {
		return fmt.Errorf("%w: context mask of %d for context %v", device.ErrShape, len(in.ContextMask), in.Context.Shape())
	}
	return nil
}

// sequential runs layers in order, releasing intermediate results.
func sequential(ctx context.Context, x *tensor.Tensor, fs ...func(context.Context, *tensor.Tensor) (*tensor.Tensor, error)) (*tensor.Tensor, error) {
	cur := x
	for _, f := range fs {
		y, err := f(ctx, cur)
		if cur != x {
			cur.Release()
		}
		if err != nil {
			return nil, err
		}
		cur = y
	}
	if cur == x {
		x.Retain()
	}
	return cur, nil
}

func act(a nn.Activation) func(context.Context, *tensor.Tensor) (*tensor.Tensor, error) {
	return func(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) { return nn.Activate(ctx, a, x) }
}

func silu(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) { return device.SiLU(ctx, x) }
