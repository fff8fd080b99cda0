// Package textenc is the text encoder of the diffusion pipelines: a
// T5/UMT5-style transformer encoder (the umt5-xxl encoder of Wan 2.x) over
// omniflow's byte-level tokenizer, with a padding mask.
//
// The architecture is Hugging Face's T5EncoderModel / UMT5EncoderModel:
//
//	ids → shared (embedding)
//	    → N × [ RMSNorm → self-attention with T5 relative position bias
//	            (bucketed, bidirectional) and the key padding mask → +x
//	            RMSNorm → gated-GELU FFN wo(gelu_tanh(wi_0 x) · wi_1 x) → +x ]
//	    → final RMSNorm
//
// T5 attention does not scale its scores by 1/√d (the scale is folded into
// the initialization). UMT5 gives every layer its own relative attention
// bias table; T5 shares the first layer's (Config.PerLayerBias). Weight
// names are Hugging Face's (shared.weight,
// encoder.block.{i}.layer.0.SelfAttention.q.weight, ...), so a converted
// checkpoint loads through nn.Checkpoint.
//
// Prompts are tokenized bytewise (UTF-8 bytes are ids 0..255, then <pad>,
// </s> and <unk>), end with </s>, and are truncated or padded to
// Config.TextLen as Wan's pipeline pads to 512. As in Wan, the states of
// padding positions are set to zero in the output; the mask says which
// positions are real.
//
//	enc, err := textenc.New(nn.Random(1), textenc.Tiny())
//	out, err := enc.Encode(ctx, []string{"a fox in the snow", ""})
//	// out.States [2, TextLen, Dim], out.Mask [2*TextLen], out.Lens
//
// The encoder records module spans (T5Block, T5Attention and nn's layers);
// the operator span around it comes from the graph engine.
package textenc
