// Package scheduler holds the samplers of the diffusion denoise loop: given
// the model's output at one step, each advances the latent to the next noise
// level. They follow diffusers' definitions, schedule quirks included, so a
// pipeline ported from diffusers or vLLM-Omni gets the same timesteps and
// the same updates:
//
//   - FlowMatchEuler: diffusers' FlowMatchEulerDiscreteScheduler, the Euler
//     step of flow matching (Z-Image, Flux, SD3): x ← x + (σᵢ₊₁ − σᵢ)·v.
//   - FlowUniPC: diffusers' UniPCMultistepScheduler with flow sigmas and
//     flow prediction (Wan 2.x): the UniP predictor and UniC corrector of
//     Zhao et al. 2023 with B(h) = h or eʰ − 1.
//   - DDIM: diffusers' DDIMScheduler (Song et al. 2021) for ε-, v- and
//     x₀-predicting models, deterministic (η = 0) or with seeded noise.
//
// Latents are flat []float32 slices; the model output has the same length as
// the sample, and Step updates the sample in place. A scheduler value serves
// one generation: New... with a config, SetTimesteps(n), then Step(i) for
// i = 0 … n−1. Multistep state (UniPC's history) lives in the value, so
// requests never share one. Nothing here is global; noise comes from a
// NoiseSource the caller seeds.
//
// The denoise-loop operator (package diffusion) calls a Scheduler once per
// iteration:
//
//	s, err := scheduler.NewFlowUniPC(scheduler.WanFlowUniPCConfig(5.0))
//	if err != nil { ... }
//	if err := s.SetTimesteps(50); err != nil { ... }
//	for i, t := range s.Timesteps() {
//		v := model(latent, t)                  // the DiT's velocity at timestep t
//		if err := s.Step(v, latent, i); err != nil { ... }
//	}
//
// Schedules are computed in float64 the way NumPy computes them (linspace,
// arange, round half to even) and stored in float32 where diffusers stores
// float32 tensors, so in the common paths timesteps and sigmas should agree
// with diffusers' to the float32 bit. That is by construction, not by a
// diffusers run (none is available to these tests): the tests re-derive every
// schedule and update from the published formulas in float64 and pin a few
// values worked by hand. Step coefficients are float64, latents float32.
// Where diffusers' arithmetic gives NaN or an extra step on an edge case, the
// doc comment of the type says what is done instead.
package scheduler
