package omni

import (
	"context"
	"fmt"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/tensor"
)

// talkerModel is stage 1: a Qwen2-style decoder over codec tokens whose
// input at every position is thinker_to_talker_proj(conditioning) +
// embed_tokens(codec token), where the conditioning is a thinker hidden
// state plus the thinker's embedding of the token at that position (what
// Qwen2.5-Omni's thinker hands its talker). Weight names are under
// "talker": model.*, codec_head, thinker_to_talker_proj, and
// text_eos_embed (the conditioning once the text is covered; our own).
type talkerModel struct {
	cfg     TalkerConfig
	dec     *decoder
	proj    *nn.Linear
	textEOS []float32 // [thinker width]
}

func newTalker(src nn.Source, cfg TalkerConfig, thinkerWidth int) (*talkerModel, error) {
	dec, err := newDecoder(src, "talker", "talker.model", "talker.codec_head", cfg.DecoderConfig)
	if err != nil {
		return nil, err
	}
	t := &talkerModel{cfg: cfg, dec: dec}
	if t.proj, err = nn.NewLinear(src, "talker.thinker_to_talker_proj", thinkerWidth, cfg.Hidden, true); err != nil {
		return nil, err
	}
	eos, err := src.Tensor("talker.text_eos_embed", []int{thinkerWidth}, nn.Normal(0.02))
	if err != nil {
		return nil, err
	}
	t.textEOS = eos.Float32s()
	return t, nil
}

// inputs returns the decoder input rows proj(conds) + embed(codes) for
// conds [len(codes), thinker width], the rows of segs.
func (t *talkerModel) inputs(ctx context.Context, conds []float32, codes []int32, segs []segment) (*tensor.Tensor, error) {
	c, err := tensor.FromFloat32(conds, 1, len(codes), len(conds)/len(codes))
	if err != nil {
		return nil, err
	}
	p, err := groupedLinear(ctx, t.proj, c, rowGroups(segs))
	if err != nil {
		return nil, err
	}
	defer p.Release()
	e, err := t.dec.embedIDs(ctx, codes)
	if err != nil {
		return nil, err
	}
	defer e.Release()
	pr, err := p.Reshape(len(codes), t.cfg.Hidden)
	if err != nil {
		return nil, err
	}
	defer pr.Release()
	return device.Add(ctx, pr, e)
}

// thinkerModel is stage 0: the Qwen2 decoder and the encoders feeding its
// input sequence.
type thinkerModel struct {
	dec    *decoder
	audio  *audioEncoder
	vision *visionEncoder
}

// embedPrompt returns the prompt's input rows [len(ids), Hidden]: token
// embeddings, with each placeholder span replaced by its encoder output.
func (t *thinkerModel) embedPrompt(ctx context.Context, r *request) (*tensor.Tensor, error) {
	x, err := t.dec.embedIDs(ctx, r.ids)
	if err != nil {
		return nil, err
	}
	xd := x.Float32s()
	dim := t.dec.cfg.Hidden
	put := func(span spanRef, emb *tensor.Tensor) error {
		defer emb.Release()
		if emb.Dim(0) != span.n || emb.Dim(1) != dim {
			return fmt.Errorf("omni: %s encoder gave %v for a span of %d tokens", span.kind, emb.Shape(), span.n)
		}
		copy(xd[span.start*dim:(span.start+span.n)*dim], emb.Float32s())
		return nil
	}
	if r.mel != nil {
		emb, err := t.audio.forward(ctx, r.mel)
		if err == nil {
			err = put(r.audioSpan, emb)
		}
		if err != nil {
			x.Release()
			return nil, err
		}
	}
	if r.patches != nil {
		emb, err := t.vision.forward(ctx, r.patches)
		if err == nil {
			err = put(r.imageSpan, emb)
		}
		if err != nil {
			x.Release()
			return nil, err
		}
	}
	return x, nil
}

// spanRef locates a placeholder span in a prompt.
type spanRef struct {
	kind     string
	start, n int
}
