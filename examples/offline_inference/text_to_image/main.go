// Command text_to_image generates an image from a prompt with a
// Z-Image-style pipeline (single-stream DiT, guidance batched into one
// pass), run as one profiled graph: encode → denoise (an iteration span per
// step, a span per pass) → decode, all on the stage "diffusion".
//
//	go run ./examples/offline_inference/text_to_image --prompt "a lighthouse at dusk" --height 64 --width 64
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
		fmt.Fprintln(stderr, "text_to_image:", err)
		return code
	}
	return 0
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return offline.Main(ctx, offline.TextToImage, args, stdout, stderr)
}
