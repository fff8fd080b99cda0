package omni

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// encoderLayer is a pre-norm transformer layer with bidirectional
// attention and a GELU MLP (Whisper's and Qwen2-VL's vision blocks).
type encoderLayer struct {
	norm1, norm2 *nn.LayerNorm
	attn         *nn.Attention
	mlp          *nn.MLP
}

func newEncoderLayer(src nn.Source, name string, dim, heads, ffn int, attnNames [4]string, norms [2]string, mlpNames [2]string) (encoderLayer, error) {
	var l encoderLayer
	var err error
	if l.norm1, err = nn.NewLayerNorm(src, nn.Join(name, norms[0]), dim, 1e-5, true); err != nil {
		return l, err
	}
	if l.attn, err = nn.NewAttention(src, nn.Join(name, attnNames[0]), nn.AttentionConfig{
		Dim: dim, Heads: heads, QKVBias: true, OutBias: true,
		QName: attnNames[1], KName: attnNames[2], VName: "v_proj", OName: attnNames[3],
	}); err != nil {
		return l, err
	}
	if l.norm2, err = nn.NewLayerNorm(src, nn.Join(name, norms[1]), dim, 1e-5, true); err != nil {
		return l, err
	}
	if l.mlp, err = nn.NewMLP(src, name, nn.MLPConfig{Dim: dim, Hidden: ffn, Act: nn.ActGELU, Bias: true,
		UpName: mlpNames[0], DownName: mlpNames[1]}); err != nil {
		return l, err
	}
	return l, nil
}

// forward maps x [1, T, dim] to [1, T, dim].
func (l *encoderLayer) forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	h, err := l.norm1.Forward(ctx, x)
	if err != nil {
		return nil, err
	}
	a, err := l.attn.Forward(ctx, h, nn.AttendOptions{})
	h.Release()
	if err != nil {
		return nil, err
	}
	r, err := device.Add(ctx, x, a)
	a.Release()
	if err != nil {
		return nil, err
	}
	h, err = l.norm2.Forward(ctx, r)
	if err != nil {
		r.Release()
		return nil, err
	}
	m, err := l.mlp.Forward(ctx, h)
	h.Release()
	if err != nil {
		r.Release()
		return nil, err
	}
	out, err := device.Add(ctx, r, m)
	r.Release()
	m.Release()
	return out, err
}

// audioEncoder is the audio tower. Weight names follow Qwen2.5-Omni's
// audio_tower (conv1, conv2, layers.N.self_attn.{q,k,v,out}_proj,
// self_attn_layer_norm, fc1, fc2, final_layer_norm, ln_post, proj); its
// positions are Whisper's fixed sinusoids.
type audioEncoder struct {
	cfg          AudioEncoderConfig
	conv1, conv2 *nn.Conv
	layers       []encoderLayer
	lnPost       *nn.LayerNorm
	proj         *nn.Linear
	pos          []float32 // [MaxFrames/2+1, Dim] sinusoids
}

func newAudioEncoder(src nn.Source, cfg AudioEncoderConfig, out int) (*audioEncoder, error) {
	e := &audioEncoder{cfg: cfg}
	var err error
	p := "audio_tower"
	if e.conv1, err = nn.NewConv(src, nn.Join(p, "conv1"), nn.ConvConfig{In: cfg.Mels, Out: cfg.Dim, Kernel: []int{3}, Bias: true,
		Opt: device.ConvOptions{Padding: []int{1}}}); err != nil {
		return nil, err
	}
	if e.conv2, err = nn.NewConv(src, nn.Join(p, "conv2"), nn.ConvConfig{In: cfg.Dim, Out: cfg.Dim, Kernel: []int{3}, Bias: true,
		Opt: device.ConvOptions{Padding: []int{1}, Stride: []int{2}}}); err != nil {
		return nil, err
	}
	for i := range cfg.Layers {
		l, err := newEncoderLayer(src, nn.Join(p, "layers", strconv.Itoa(i)), cfg.Dim, cfg.Heads, cfg.FFN,
			[4]string{"self_attn", "q_proj", "k_proj", "out_proj"}, [2]string{"self_attn_layer_norm", "final_layer_norm"}, [2]string{"fc1", "fc2"})
		if err != nil {
			return nil, err
		}
		e.layers = append(e.layers, l)
	}
	if e.lnPost, err = nn.NewLayerNorm(src, nn.Join(p, "ln_post"), cfg.Dim, 1e-5, true); err != nil {
		return nil, err
	}
	if e.proj, err = nn.NewLinear(src, nn.Join(p, "proj"), cfg.Dim, out, true); err != nil {
		return nil, err
	}
	e.pos = sinusoids(cfg.MaxFrames/2+1, cfg.Dim)
	return e, nil
}

// sinusoids is Whisper's positional table: sin over the first half of the
// channels, cos over the second, timescales from 1 to 10000.
func sinusoids(length, channels int) []float32 {
	out := make([]float32, length*channels)
	half := channels / 2
	if half < 2 {
		return out
	}
	inc := math.Log(10000) / float64(half-1)
	for t := range length {
		for i := range half {
			a := float64(t) * math.Exp(-inc*float64(i))
			out[t*channels+i] = float32(math.Sin(a))
			out[t*channels+half+i] = float32(math.Cos(a))
		}
	}
	return out
}

// tokens returns how many embeddings a clip of frames log-mel frames
// becomes (tokenize.AudioPlaceholderCount).
func (e *audioEncoder) tokens(frames int) int {
	in := (frames-1)/2 + 1
	if frames <= 0 || in < 2 {
		return 0
	}
	return (in-2)/2 + 1
}

// forward encodes a log-mel spectrogram [Mels, frames] into
// [tokens(frames), out] embeddings.
func (e *audioEncoder) forward(ctx context.Context, mel *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "audio_encoder", profiler.Int("frames", mel.Dim(1)))
	defer span.End()
	if mel.Rank() != 2 || mel.Dim(0) != e.cfg.Mels {
		return nil, fmt.Errorf("omni: audio encoder: log-mel %v, want [%d, frames]", mel.Shape(), e.cfg.Mels)
	}
	frames := mel.Dim(1)
	if frames > e.cfg.MaxFrames || e.tokens(frames) < 1 {
		return nil, fmt.Errorf("omni: audio encoder: %d log-mel frames, want 4..%d", frames, e.cfg.MaxFrames)
	}
	x, err := mel.Reshape(1, e.cfg.Mels, frames)
	if err != nil {
		return nil, err
	}
	h, err := e.conv1.Forward(ctx, x)
	x.Release()
	if err != nil {
		return nil, err
	}
	g, err := device.GELU(ctx, h)
	h.Release()
	if err != nil {
		return nil, err
	}
	h, err = e.conv2.Forward(ctx, g)
	g.Release()
	if err != nil {
		return nil, err
	}
	g, err = device.GELU(ctx, h)
	h.Release()
	if err != nil {
		return nil, err
	}
	// [1, Dim, T] → [1, T, Dim], plus positions.
	t := g.Dim(2)
	tr, err := g.Transpose(1, 2)
	g.Release()
	if err != nil {
		return nil, err
	}
	seq, err := tr.Contiguous()
	tr.Release()
	if err != nil {
		return nil, err
	}
	sd := seq.Float32s()
	for i, p := range e.pos[:t*e.cfg.Dim] {
		sd[i] += p
	}
	for i := range e.layers {
		next, err := e.layers[i].forward(ctx, seq)
		seq.Release()
		if err != nil {
			return nil, fmt.Errorf("omni: audio encoder layer %d: %w", i, err)
		}
		seq = next
	}
	// Average pool ×2 over time (kernel 2, stride 2; an odd last frame is dropped).
	n := e.tokens(frames)
	pooled, err := tensor.New(tensor.Float32, []int{1, n, e.cfg.Dim})
	if err != nil {
		seq.Release()
		return nil, err
	}
	sd, pd := seq.Float32s(), pooled.Float32s()
	d := e.cfg.Dim
	for i := range n {
		a, b := sd[2*i*d:(2*i+1)*d], sd[(2*i+1)*d:(2*i+2)*d]
		for j := range d {
			pd[i*d+j] = (a[j] + b[j]) / 2
		}
	}
	seq.Release()
	ln, err := e.lnPost.Forward(ctx, pooled)
	pooled.Release()
	if err != nil {
		return nil, err
	}
	out, err := e.proj.Forward(ctx, ln)
	ln.Release()
	if err != nil {
		return nil, err
	}
	defer out.Release()
	return out.Reshape(n, out.Dim(2))
}

// visionEncoder is the vision tower. Weight names follow Qwen2.5-Omni's
// visual module where the structure matches (patch_embed.proj,
// blocks.N.{norm1,norm2}, merger.ln_q, merger.mlp.{0,2}); the attention
// uses separate q/k/v projections and the MLP fc1/fc2, and there are no
// rotary vision positions (see the package documentation).
type visionEncoder struct {
	cfg    VisionEncoderConfig
	patch  *nn.Linear
	layers []encoderLayer
	lnQ    *nn.LayerNorm
	m0, m2 *nn.Linear
}

func newVisionEncoder(src nn.Source, cfg VisionEncoderConfig, out int) (*visionEncoder, error) {
	e := &visionEncoder{cfg: cfg}
	var err error
	p := "visual"
	if e.patch, err = nn.NewLinear(src, nn.Join(p, "patch_embed.proj"), cfg.PatchDim(), cfg.Dim, false); err != nil {
		return nil, err
	}
	for i := range cfg.Layers {
		l, err := newEncoderLayer(src, nn.Join(p, "blocks", strconv.Itoa(i)), cfg.Dim, cfg.Heads, cfg.FFN,
			[4]string{"attn", "q_proj", "k_proj", "proj"}, [2]string{"norm1", "norm2"}, [2]string{"mlp.fc1", "mlp.fc2"})
		if err != nil {
			return nil, err
		}
		e.layers = append(e.layers, l)
	}
	if e.lnQ, err = nn.NewLayerNorm(src, nn.Join(p, "merger.ln_q"), cfg.Dim, 1e-6, true); err != nil {
		return nil, err
	}
	md := cfg.Dim * cfg.Merge * cfg.Merge
	if e.m0, err = nn.NewLinear(src, nn.Join(p, "merger.mlp.0"), md, md, true); err != nil {
		return nil, err
	}
	if e.m2, err = nn.NewLinear(src, nn.Join(p, "merger.mlp.2"), md, out, true); err != nil {
		return nil, err
	}
	return e, nil
}

// forward encodes patches [n, PatchDim] (Qwen2-VL's order: each Merge²
// consecutive rows form one square) into [n/Merge², out] embeddings.
func (e *visionEncoder) forward(ctx context.Context, patches *tensor.Tensor) (*tensor.Tensor, error) {
	ctx, span := profiler.Start(ctx, "vision_encoder", profiler.Int("patches", patches.Dim(0)))
	defer span.End()
	m2 := e.cfg.Merge * e.cfg.Merge
	if patches.Rank() != 2 || patches.Dim(1) != e.cfg.PatchDim() || patches.Dim(0)%m2 != 0 || patches.Dim(0) == 0 {
		return nil, fmt.Errorf("omni: vision encoder: patches %v, want [k·%d, %d]", patches.Shape(), m2, e.cfg.PatchDim())
	}
	n := patches.Dim(0)
	x, err := patches.Reshape(1, n, e.cfg.PatchDim())
	if err != nil {
		return nil, err
	}
	h, err := e.patch.Forward(ctx, x)
	x.Release()
	if err != nil {
		return nil, err
	}
	for i := range e.layers {
		next, err := e.layers[i].forward(ctx, h)
		h.Release()
		if err != nil {
			return nil, fmt.Errorf("omni: vision encoder block %d: %w", i, err)
		}
		h = next
	}
	ln, err := e.lnQ.Forward(ctx, h)
	h.Release()
	if err != nil {
		return nil, err
	}
	merged, err := ln.Reshape(1, n/m2, m2*e.cfg.Dim)
	ln.Release()
	if err != nil {
		return nil, err
	}
	a, err := e.m0.Forward(ctx, merged)
	merged.Release()
	if err != nil {
		return nil, err
	}
	g, err := device.GELU(ctx, a)
	a.Release()
	if err != nil {
		return nil, err
	}
	out, err := e.m2.Forward(ctx, g)
	g.Release()
	if err != nil {
		return nil, err
	}
	defer out.Release()
	return out.Reshape(n/m2, out.Dim(2))
}
