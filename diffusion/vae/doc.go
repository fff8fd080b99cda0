// Package vae holds the variational autoencoders of the diffusion
// pipelines: a decoder from latents to pixels, and for image-to-video an
// encoder from pixels to latents.
//
// Two layouts are implemented, each with its checkpoints' weight names:
//
//   - KindWan: Wan 2.1's video VAE (WanVAE_), 3D and causal in time. Every
//     3×3×3 convolution is a CausalConv3d: time is padded by two frames in
//     front only, so output frame t never depends on input frames after t.
//     Norms are Wan's RMS_norm over channels. The decoder is
//     conv2 (1×1×1) → conv1 → middle (residual, attention, residual) →
//     upsamples (residual blocks; per level a Resample: nearest ×2 in space
//     then a 3×3 conv halving the channels, and on the temporal levels a
//     causal time_conv doubling the frames) → RMS_norm → SiLU → conv to RGB,
//     clamped to [−1, 1]. The encoder mirrors it (downsamples with a zero
//     pad on the right/bottom and a stride-2 conv; stride-2 time_convs) and
//     ends in conv1 (1×1×1); its mean, normalized by the per-channel latent
//     mean and std, (μ − mean)/std, is the latent, and the decoder first
//     maps its input back to z·std + mean — what diffusers' Wan pipelines
//     do around the VAE. Wan21 and Wan22 carry the published statistics
//     (16 and 48 channels). Latent frames map to 1 + 4(F−1) frames:
//     the first latent frame decodes to one frame, every later one to four.
//   - KindKL: diffusers' AutoencoderKL decoder (the Flux VAE Z-Image uses),
//     2D: conv_in → mid_block (resnet, attention, resnet) → up_blocks
//     (resnets, nearest ×2 + conv) → GroupNorm → SiLU → conv_out. Latents
//     are unscaled as latents/scaling_factor + shift_factor first.
//
// Wan decodes in temporal chunks of one latent frame with a cache of each
// causal conv's last two input frames (and the first chunk skipping the
// time_convs). Here the whole clip is decoded at once, which is the same
// computation: a causal conv over the whole clip equals the chunked conv
// with that cache, and the first frame's special case becomes "frame 0
// passes the time_conv unchanged and the rest are convolved with zero
// history" — what the chunked code does. At real sizes the activations of
// a whole clip are large; chunking is a memory optimization left out here.
//
// Wan 2.2's VAE (48 channels, 16× in space) is approximated by the Wan 2.1
// layout with Config.PixelPatch = 2: the decoder's output is unshuffled
// from 2×2 pixel patches and the encoder's input shuffled into them, as Wan
// 2.2's VAE does; its different residual and up/down blocks are not
// reproduced.
//
// Modules record module spans (VAEResBlock, VAEAttention, VAEResample,
// RMSNorm and nn's convs and norms), under which package device records
// the kernel spans (Wan's RMSNorm is one rms_norm_channels kernel); the
// operator spans come from the graph engine.
package vae
