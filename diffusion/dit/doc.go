// Package dit holds the diffusion transformers (DiTs) that denoise latents:
// a Wan 2.x-style video DiT with 3D patchify and cross-attention to the
// text, and a Z-Image-style single-stream image DiT with 2D patchify. Both
// share the pieces in this package: sinusoidal timestep embeddings,
// patchify/unpatchify, multi-axis rotary tables and adaLN modulation.
//
// Wan (WanModel of Wan 2.1/2.2; weight names as in its checkpoints):
//
//	latent [B, C, F, H, W] → patch_embedding (Conv3d, kernel = stride = patch)
//	t → sinusoidal(freq_dim) → time_embedding (Linear, SiLU, Linear) = e
//	  → time_projection (SiLU, Linear) = e0, 6 modulation vectors
//	text → text_embedding (Linear, GELU-tanh, Linear)
//	N × block: (shift, scale, gate)×2 = modulation + e0
//	      x += gate₁ · self_attn(LN(x)·(1+scale₁)+shift₁)  q/k RMSNorm, 3D RoPE
//	      x += cross_attn(LN₃(x), text)                       q/k RMSNorm
//	      x += gate₂ · ffn(LN(x)·(1+scale₂)+shift₂)           GELU-tanh
//	head: LN(x)·(1+scale)+shift with (shift, scale) = head.modulation + e,
//	      Linear to patch·C, unpatchify → [B, C, F, H, W]
//
// The 3D RoPE splits each head's rotary pairs over time, height and width
// (c − 2⌊c/3⌋, ⌊c/3⌋, ⌊c/3⌋ of c = head_dim/2 pairs, θ = 10000, pairs
// interleaved as Wan's complex multiplication has them). Wan 2.2 TI2V's
// first-frame conditioning is Input.CleanFirstFrame: the tokens of latent
// frame 0 get timestep 0, so e and e0 are per token.
//
// Z-Image (ZImageTransformer2DModel, S3-DiT; diffusers' weight names):
//
//	latent [B, C, H, W] → patchify (1, p, p) → all_x_embedder (Linear)
//	t·t_scale → sinusoidal(256) → t_embedder (Linear, SiLU, Linear) = c
//	caption → cap_embedder (RMSNorm, Linear)
//	noise_refiner (modulated blocks) on the image tokens,
//	context_refiner (unmodulated blocks) on the caption tokens,
//	then N modulated blocks over the single stream [image; caption]:
//	      (scale₁, gate₁, scale₂, gate₂) = adaLN_modulation(c), gates tanh'd
//	      x += gate₁ · norm₂(attn(norm₁(x)·(1+scale₁)))   per-head QK norm, 3-axis RoPE
//	      x += gate₂ · norm₂'(ffn(norm₁'(x)·(1+scale₂)))  SwiGLU
//	final layer: LN(x)·(1+Linear(SiLU(c))), Linear to p²·C, unpatchify
//
// Caption positions are (1+j, 0, 0) and image positions (L_cap+1+f, h, w)
// on axes of (32, 48, 48) dims with θ = 256, as in Z-Image. Z-Image cuts
// each caption to its real tokens and pads both sequences to multiples of
// 32 with learned pad tokens (x_pad_token, cap_pad_token); here the
// sequences keep their lengths, caption padding is masked out of attention
// instead, and the pad-token weights are not read.
//
// Models record module spans (WanDiT, WanBlock, ZImageDiT, ZImageBlock and
// nn's layers); the denoise loop wraps each call in its step and CFG spans.
package dit
