// Package offline is the command-line front end the diffusion examples
// share (examples/offline_inference/text_to_video, image_to_video and
// text_to_image, laid out like vLLM-Omni's): flags named as vLLM-Omni's
// scripts name them, validation with messages a user can act on, the
// preset list in --help, a progress bar on stderr when it is a terminal,
// output writing, and profiling by environment:
//
//	VLLM_TORCH_PROFILER_DIR=./profiles VLLM_PROFILER_MAX_ITERS=2 \
//	    go run ./examples/offline_inference/text_to_video --prompt "a fox in the snow"
//
// profiles by itself (OMNIFLOW_PROFILER_DIR works too), records encode and
// two denoise steps, stops on its own, and prints the session folder.
package offline
