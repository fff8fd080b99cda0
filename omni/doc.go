// Package omni serves omni-modal models of the Qwen2.5-Omni / Qwen3-Omni
// shape — the pipeline vLLM-Omni serves — as three stages with the
// profiler built in:
//
//   - stage 0, thinker: a Qwen2 decoder (RMSNorm, rotate-half RoPE, GQA
//     attention with q/k/v biases and a KV cache, SwiGLU MLP, tied or
//     untied embeddings) whose input sequence takes the outputs of an
//     audio encoder (WAV → Whisper log-mel → conv + transformer) and an
//     image encoder (Qwen2-VL patches → patch embedding + transformer →
//     2×2 merger) in place of the <|AUDIO|> and <|IMAGE|> placeholders of
//     the Qwen2.5-Omni chat template. It writes text, and hands the talker
//     each position's final hidden state plus its token embedding.
//   - stage 1, talker: a smaller Qwen2-style decoder over codec tokens,
//     conditioned on those hidden states (CodesPerText codec tokens per
//     text token), ending at its stop token.
//   - stage 2, vocoder (code2wav): codec embeddings → a causal HiFi-GAN
//     stack (8·5·4·3 = 480× upsampling: 50 Hz codes to 24 kHz PCM),
//     decoded in chunks of ChunkFrames codes with enough left context
//     that chunked and whole decoding agree (no clicks at the seams).
//
// In code:
//
//	e, err := omni.New(ctx, omni.Config{Streaming: true})
//	defer e.Close(ctx)
//	res, err := e.Generate(ctx, []omni.Prompt{{Text: "Hi!", AudioPath: "q.wav"}}, omni.DefaultSamplingParams())
//	// res[0].Text, res[0].Audio (24 kHz), res[0].TimeToFirstAudio
//
// # The engine
//
// Continuous batching does not fit a graph node's per-request Run, so the
// engine is its own: New starts three goroutines — the thinker loop, the
// talker loop and the vocoder — joined by bounded queues (a slow stage
// back-pressures the one before it), and Close stops them (none outlives
// it). Each decoder loop takes newly arrived requests between iterations
// and runs one batched forward per iteration over every active request:
// the prompts of new ones (prefill) and one token of the others (decode).
// Norms and elementwise kernels run over all rows, projections and MLPs
// over row groups, RoPE and attention per request against its own KV
// cache; then each request samples from its own seeded generator. Row
// groups keep every row on the same matrix-multiply path alone or
// batched, so a request's output does not depend on its batch, bit for
// bit. Requests finish on a stop token or string, max tokens, or their
// context's cancellation, and leave between iterations.
//
// Hand-off is streaming (Config.Streaming: the thinker hands every step to
// the talker, the talker every ChunkFrames codes to the vocoder) or whole
// (each stage waits for the previous one to finish the request). Both give
// the same output; streaming gives the first audio earlier
// (Result.TimeToFirstAudio, measured by the engine on the wall clock).
// Generate and Stream are safe to call from many goroutines at once.
//
// # Profiling
//
// The engine's profiler (Config.Profiler, or profiler.FromEnv with a
// Chrome sink) records one session file with a process track per stage
// ("stage 0: thinker", "stage 1: talker", "stage 2: vocoder"). On each
// stage, lane 0 holds the loop's work and nothing else: the loop's
// activation, whose slices (thinker.schedule, ...) are its scheduling —
// admitting, dropping and handing over requests — and which is paused
// while the loop waits for input, so a waiting stage records nothing; and
// between them one iteration span per batched forward (thinker.step,
// talker.step) or vocoder chunk (vocoder.chunk) — the unit
// VLLM_PROFILER_MAX_ITERS counts — with the batch size and prefill and
// decode token counts, and below it layers and kernels. (The iterations
// are not inside the activation's slices: a slice open at a stop is cut
// at the stop, and spans still running inside it would then overlap its
// end.) Each request's own work in an iteration (its
// prompt embedding and encoders, its sampling, its vocoder chunk) is a
// span there carrying its id; the first one per stage is an operator
// slice, which the Chrome sink joins with flow arrows, so each request has
// arrows thinker → talker → vocoder. An iteration that is not recorded
// (the session started while it ran) records nothing of its work either.
// Hand-offs (request → thinker, thinker → talker, talker → vocoder) are
// spans on the receiving stage from the send to the end of the copy into
// the request's state there, with their sizes, on lanes from 1000 up that
// never partly overlap; inside each, on its lane, a "queue" span (the wait
// in the queue) and a "copy" span (taking it in) show the two apart.
//
// StartProfile(ctx, stages...) selects stages by id (all three by default,
// named so that a MAX_ITERS session stops once each has recorded its
// window); StopProfile returns the complete files. Profiling is a control
// path apart from the stage loops: spans never block them, and stopping
// never delays or drops a generation result.
//
// # Weights and sizes
//
// Every stage runs with seeded synthetic weights by default, at the "tiny"
// preset's sizes; "small" is larger, and the Qwen2.5-Omni 3B/7B presets
// have the published shapes but are refused at random init with a memory
// estimate. With Config.CheckpointDir (config.json + safetensors in the
// Hugging Face Qwen2 layout, or Qwen2.5-Omni's thinker.* names) the
// thinker is that model — checked against a float64 reference forward
// pass in the tests — and the other stages stay synthetic. Synthetic
// weights make gibberish text and noise-like speech: the shapes, batching,
// hand-off and profiling are real, the weights are not.
//
// # Simplifications
//
// The thinker's positions are one-dimensional (Qwen2.5-Omni uses
// multimodal 3-D RoPE over text, audio time and image rows/columns); the
// vision encoder has no rotary positions and uses LayerNorm with separate
// q/k/v projections; the audio encoder has no chunked attention window;
// the talker's conditioning is our own simple alignment (codec step j
// reads text token j/CodesPerText, then a learned end-of-text vector); the
// vocoder is a HiFi-GAN generator on codec embeddings where Qwen2.5-Omni
// runs a flow-matching DiT to mel and BigVGAN. Only the thinker loads
// from a checkpoint.
package omni
