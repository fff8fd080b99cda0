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
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/omniflow-go/omniflow/omni"
	"github.com/omniflow-go/omniflow/profiler"
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
	fs := flag.NewFlagSet("end2end", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prompt := fs.String("prompt", "Hello! Can you tell me what you hear and see?", "the user's text")
	audioPath := fs.String("audio", "", "a WAV file for the audio encoder (any rate; resampled to 16 kHz)")
	imagePath := fs.String("image", "", "a PNG or JPEG file for the vision encoder")
	maxTokens := fs.Int("max_tokens", 64, "text tokens to generate at most")
	streaming := fs.Bool("streaming", false, "hand the thinker's steps to the talker and every --chunk_frames codes to the vocoder as they come (else each stage waits for the previous one)")
	chunk := fs.Int("chunk_frames", omni.DefaultChunkFrames, "codec frames per vocoder chunk")
	outDir := fs.String("output_dir", "output_qwen2_5_omni", "where output.txt and output.wav go")
	stages := fs.String("profile_stages", "", "stages to profile when a profile directory is set, e.g. 0,2 (default: all)")
	seed := fs.Uint64("seed", 0, "sampling seed (per request; deterministic)")
	weightsSeed := fs.Uint64("weights_seed", 0, "seed of the synthetic weights")
	temperature := fs.Float64("temperature", 0, "thinker temperature (0: greedy)")
	topK := fs.Int("top_k", 0, "thinker top-k (0: off)")
	topP := fs.Float64("top_p", 0, "thinker top-p (0: off)")
	preset := fs.String("preset", "", "model shapes: "+strings.Join(omni.Presets(), ", ")+" (default tiny)")
	checkpoint := fs.String("checkpoint", "", "a Hugging Face Qwen2 checkpoint folder for the thinker")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var selected []int
	if *stages != "" {
		for _, s := range strings.Split(*stages, ",") {
			id, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || id < 0 || id > 2 {
				return fmt.Errorf("--profile_stages %q: want stage ids 0 (thinker), 1 (talker), 2 (vocoder), comma-separated", *stages)
			}
			selected = append(selected, id)
		}
	}

	eng, err := omni.New(ctx, omni.Config{Preset: *preset, Seed: *weightsSeed, CheckpointDir: *checkpoint,
		Streaming: *streaming, ChunkFrames: *chunk})
	if err != nil {
		return err
	}
	defer eng.Close(context.WithoutCancel(ctx))

	// Profile when the environment asks for it (VLLM_TORCH_PROFILER_DIR or
	// OMNIFLOW_PROFILER_DIR): the engine's profiler comes from it.
	prof := eng.Profiler()
	if prof.Enabled() {
		if err := eng.StartProfile(ctx, selected...); err != nil {
			return err
		}
	}

	params := omni.SamplingParams{Temperature: float32(*temperature), TopK: *topK, TopP: float32(*topP),
		Seed: *seed, MaxTokens: *maxTokens}
	st, err := eng.Stream(ctx, omni.Prompt{Text: *prompt, AudioPath: *audioPath, ImagePath: *imagePath}, params)
	if err != nil {
		return err
	}
	defer st.Close()
	mode := "whole"
	if *streaming {
		mode = "streaming"
	}
	fmt.Fprintf(stdout, "request %s (%s hand-off)\n", st.ID(), mode)
	chunks := 0
	for {
		c, err := st.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if c.Text != "" {
			fmt.Fprint(stdout, c.Text)
		}
		if len(c.Audio) > 0 {
			chunks++
		}
	}
	res := st.Result()
	fmt.Fprintln(stdout)

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	txt := filepath.Join(*outDir, "output.txt")
	if err := os.WriteFile(txt, []byte(res.Text+"\n"), 0o644); err != nil {
		return err
	}
	wav := filepath.Join(*outDir, "output.wav")
	if err := writeWAV(wav, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "text: %d prompt tokens, %d generated (%s), first token after %v\n",
		res.PromptTokens, len(res.TokenIDs), res.FinishReason, res.TimeToFirstToken.Round(time.Microsecond))
	fmt.Fprintf(stdout, "audio: %.2f s at %d Hz from %d codec tokens in %d chunks; time to first audio %v (thinker done after %v, all done after %v)\n",
		res.AudioDuration().Seconds(), res.SampleRate, len(res.CodecTokens), chunks,
		res.TimeToFirstAudio.Round(time.Microsecond), res.ThinkerTime.Round(time.Microsecond), res.Latency.Round(time.Microsecond))
	fmt.Fprintln(stdout, "wrote", txt)
	fmt.Fprintln(stdout, "wrote", wav)

	if prof.Enabled() {
		pr, err := eng.StopProfile(ctx)
		switch {
		case errors.Is(err, profiler.ErrNotStarted):
			// Collected already: nothing to report.
		case err != nil:
			return err
		default:
			fmt.Fprintf(stdout, "profile: %s (%d events, %d dropped, stopped by %s)\n", pr.Dir, pr.Events, pr.Dropped, pr.Reason)
		}
	}
	return eng.Close(ctx)
}

func writeWAV(path string, res omni.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := res.WriteWAV(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
