// Package diffusion runs diffusion models as omniflow graphs, profiled end
// to end: Wan 2.2-like text-to-video and image-to-video, and Z-Image-like
// text-to-image. vLLM-Omni runs such a model as one stage with one profiler
// range around everything; here each phase is its own span by
// construction:
//
//	stage 0 "diffusion"
//	  encode        operator   T5/UMT5 text encoder (prompt and negative prompt in one batch)
//	  encode_image  operator   VAE encoder (image-to-video)
//	  denoise       operator   the loop:
//	    denoise.step  iteration  step, timestep, expert, guidance — counts toward VLLM_PROFILER_MAX_ITERS
//	      cfg.cond / cfg.uncond   Wan: two passes per guided step
//	      cfg.batched             Z-Image: cond and uncond as one batch of 2
//	        WanDiT / ZImageDiT → blocks → nn layers → kernels
//	      scheduler.step
//	  decode        operator   VAE decoder
//
// The graph engine makes the operator spans and the loop the step and pass
// spans; the models record only module spans (nn's layers and their own
// blocks). With VLLM_PROFILER_MAX_ITERS=N a session keeps encode (it runs
// before the first step, inside the window) and N steps, then stops and
// writes by itself, so a trace stays small at any size.
//
// What the pipelines implement, following diffusers' WanPipeline,
// WanImageToVideoPipeline (Wan 2.2 TI2V mode) and ZImagePipeline:
//
//   - Schedulers (package scheduler): flow UniPC with Wan's shift for Wan,
//     flow-matching Euler with shift and σ_min = 0 for Z-Image.
//   - Wan classifier-free guidance: two passes per step,
//     uncond + s·(cond − uncond), skipped (one pass) when s ≤ 1.
//   - Wan 2.2's two experts: the high-noise transformer runs while the
//     timestep t ≥ boundary_ratio·1000, then the low-noise one, each with
//     its own scale (GuidanceScale, GuidanceScale2). Whether a step is
//     guided is decided per step from its expert's scale (> 1); diffusers
//     decides once from guidance_scale, so GuidanceScale ≤ 1 with
//     GuidanceScale2 > 1 guides the low-noise steps here and no step there
//     (see Params.GuidanceScale).
//   - Every scheduler timestep is a denoise.step span. Z-Image's last
//     step (t = 0 once σ_min = 0) is zero-length: diffusers still runs the
//     transformer there and multiplies its output by dt = 0; here the call
//     is skipped (the latents are the same) and the step span carries
//     update = "skipped_zero_length" (StepSkipped), so the trace and
//     VLLM_PROFILER_MAX_ITERS count the same steps as the schedule.
//   - Z-Image guidance: one batched pass, pred = cond + s·(cond − uncond)
//     per sample; CFGTruncation drops guidance (to one unbatched pass) once
//     (1000 − t)/1000 exceeds it; CFGNormalization > 0 rescales pred so
//     ‖pred‖ ≤ CFGNormalization·‖cond‖. The model sees (1000 − t)/1000 and
//     its output is negated into the scheduler's velocity, as in Z-Image.
//   - Image-to-video (Wan 2.2 TI2V): the image, resized to the output size,
//     is VAE-encoded; its latent replaces the first latent frame before
//     every step and after every scheduler update, and the first frame's
//     tokens get timestep 0 (Input.CleanFirstFrame). Wan 2.2 I2V-A14B's
//     channel-concatenated conditioning is not implemented.
//
// Presets (Presets, LookupPreset) pair a model's architecture with its
// sampler and defaults. The tiny ones run in a second with seeded
// synthetic weights; the real ones (Wan2.2-T2V-A14B, Wan2.2-TI2V-5B,
// Z-Image-Turbo) have the published shapes and need a checkpoint
// directory (WithCheckpoint) — New estimates their weights' size and
// refuses synthetic weights beyond 4 GiB instead of allocating tens of GB.
//
//	pr, _ := diffusion.LookupPreset("tiny-wan2.2-t2v")
//	pl, err := diffusion.New(ctx, pr, diffusion.TextToVideo, diffusion.WithProfiler(prof))
//	p := pl.DefaultParams()
//	p.Prompt = "a fox running through snow"
//	res, err := pl.Generate(ctx, p)
//	paths, err := diffusion.WriteVideo("out/fox.gif", "out/frames", res.Video, 16)
package diffusion
