// Command image_to_video animates an image, guided by a prompt, with a Wan
// 2.2 TI2V-style pipeline (the image's latent conditions the first latent
// frame), run as one profiled graph: encode and encode_image → denoise (an
// iteration span per step, a span per guidance pass) → decode, all on the
// stage "diffusion".
//
//	go run ./examples/offline_inference/image_to_video --image photo.png --prompt "the cat turns its head"
//
// Without --image it animates a built-in test pattern.
//
// With VLLM_TORCH_PROFILER_DIR (or OMNIFLOW_PROFILER_DIR) set it profiles
// itself and prints the session folder; VLLM_PROFILER_MAX_ITERS=N keeps the
// text encoder and N denoise steps. --help lists the flags and presets.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/omniflow-go/omniflow/diffusion/offline"
)

func main() {
	os.Exit(report(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// report prints err (if any but --help) and returns the exit status: 2 for
// a command line that does not parse, 1 for other errors.
func report(err error, stderr io.Writer) int {
	if code := offline.ExitCode(err); code != 0 {
		fmt.Fprintln(stderr, "image_to_video:", err)
		return code
	}
	return 0
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return offline.Main(ctx, offline.ImageToVideo, args, stdout, stderr)
}
