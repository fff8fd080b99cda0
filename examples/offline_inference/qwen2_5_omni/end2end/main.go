// Command end2end runs a Qwen2.5-Omni-shaped pipeline end to end, as
// vLLM-Omni's examples/offline_inference/qwen2_5_omni/end2end.py does:
// the thinker (stage 0) reads the prompt, an optional WAV and an optional
// image, and writes text; the talker (stage 1) turns the thinker's hidden
// states into codec tokens; the vocoder (stage 2) turns those into 24 kHz
// speech. It writes the text to stdout and output.txt, the speech to
// output.wav, and prints the time to first audio.
//
//	go run ./examples/offline_inference/qwen2_5_omni/end2end --prompt "Hello!" --max_tokens 32 --streaming
//
// The models run with seeded synthetic weights by default (the "tiny"
// preset), so the text and the speech are gibberish: that is expected —
// the stages, shapes, batching, hand-off and profiling are real, the
// weights are not. With --checkpoint pointing at a Hugging Face Qwen2
// checkpoint (config.json, model.safetensors, tokenizer.json) the thinker
// is that model and its text is real; the talker and vocoder stay
// synthetic.
//
// With VLLM_TORCH_PROFILER_DIR (or OMNIFLOW_PROFILER_DIR) set it profiles
// itself and prints the session folder; --profile_stages 0,2 records only
// the thinker and the vocoder; VLLM_PROFILER_MAX_ITERS=N records N
// iterations per stage and stops by itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/omniflow-go/omniflow/omni/offline"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "end2end:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return offline.Main(ctx, args, stdout, stderr)
}
