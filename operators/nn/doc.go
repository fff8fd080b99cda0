// Package nn holds the layers models are built from: Linear, Embedding,
// RMSNorm, LayerNorm, GroupNorm, Attention (self and cross, grouped-query
// heads, rotary embeddings, a KV cache), MLP (GELU and SwiGLU), Conv (1-,
// 2- and 3-d, with a causal option) and ConvTranspose1d. Layers own their
// weights, which come from a Source — seeded random init (Random) or named
// tensors such as a safetensors file (Checkpoint) — at construction, so a
// missing, mis-shaped, non-float or non-finite weight is an error at load
// time naming the weight, and so is a configuration no weights could fit
// (ErrWeight). Weight names follow the Hugging
// Face layouts (q_proj, gate_proj, ...; configurable where models differ).
//
// Every layer's Forward records a module span (its type, with the layer's
// name as an attribute); its kernels record kernel spans below it. Outputs
// and intermediates come from the allocator of the context's CPU device
// (device.WithDevice); Forward releases every intermediate, on errors too.
//
//	lin, err := nn.NewLinear(nn.Checkpoint(file), "model.layers.0.mlp.up_proj", 896, 4864, false)
//	y, err := lin.Forward(ctx, x)
package nn
