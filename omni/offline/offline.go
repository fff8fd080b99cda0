// Package offline is the Qwen2.5-Omni-shaped end-to-end program behind
// examples/offline_inference/qwen2_5_omni/end2end and "omniflow run omni":
// flags, engine, one streamed request, output.txt and output.wav, and the
// profile when a folder is named.
package offline

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
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

// Options change where Main writes; the zero value is what the example
// uses.
type Options struct {
	// Command is the usage line's command (default
	// "go run ./examples/offline_inference/qwen2_5_omni/end2end").
	Command string
	// OutputDir is the default --output_dir (default "output_qwen2_5_omni").
	OutputDir string
	// ProfileDir is the default --profile_dir when the environment names
	// none ("" profiles only when it does).
	ProfileDir string
}

// Main runs the program with the command-line args: it parses and checks
// the flags, builds the engine (profiled when a profile folder is named),
// streams one request, writes output.txt and output.wav, and prints what
// it wrote and where the profile went. --help returns flag.ErrHelp after
// printing the usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...Options) error {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.OutputDir == "" {
		o.OutputDir = "output_qwen2_5_omni"
	}
	ec, envErr := profiler.ReadEnv(nil) // reported after --help
	profDir := ec.Dir
	if profDir == "" {
		profDir = o.ProfileDir
	}
	fs := flag.NewFlagSet("end2end", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs, o.Command) }
	prompt := fs.String("prompt", "Hello! Can you tell me what you hear and see?", "the user's text")
	audioPath := fs.String("audio", "", "a WAV file for the audio encoder (any rate; resampled to 16 kHz)")
	imagePath := fs.String("image", "", "a PNG or JPEG file for the vision encoder")
	maxTokens := fs.Int("max_tokens", 64, "text tokens to generate at most")
	streaming := fs.Bool("streaming", false, "hand the thinker's steps to the talker and every --chunk_frames codes to the vocoder as they come (else each stage waits for the previous one)")
	chunk := fs.Int("chunk_frames", omni.DefaultChunkFrames, "codec frames per vocoder chunk")
	outDir := fs.String("output_dir", o.OutputDir, "where output.txt and output.wav go")
	profileDir := fs.String("profile_dir", profDir, "profile into a session folder here (default: $VLLM_TORCH_PROFILER_DIR or $OMNIFLOW_PROFILER_DIR; empty: no profile)")
	stages := fs.String("profile_stages", "", "stages to profile when a profile directory is set, e.g. 0,2 (default: all)")
	seed := fs.Uint64("seed", 0, "sampling seed (per request; deterministic)")
	weightsSeed := fs.Uint64("weights_seed", 0, "seed of the synthetic weights")
	temperature := fs.Float64("temperature", 0, "thinker temperature (0: greedy)")
	topK := fs.Int("top_k", 0, "thinker top-k (0: off)")
	topP := fs.Float64("top_p", 0, "thinker top-p (0: off)")
	preset := fs.String("preset", "", "model shapes: "+strings.Join(omni.Presets(), ", ")+" (default tiny)")
	checkpoint := fs.String("checkpoint", "", "a Hugging Face Qwen2 checkpoint folder for the thinker")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{err}
	}
	if fs.NArg() > 0 {
		return &UsageError{fmt.Errorf("unexpected arguments %q (flags start with --)", fs.Args())}
	}
	if envErr != nil {
		return envErr
	}
	var selected []int
	if *stages != "" {
		for _, s := range strings.Split(*stages, ",") {
			id, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || id < 0 || id > 2 {
				return &UsageError{fmt.Errorf("--profile_stages %q: want stage ids 0 (thinker), 1 (talker), 2 (vocoder), comma-separated", *stages)}
			}
			selected = append(selected, id)
		}
	}

	prof, err := profiler.New(append(ec.Options(), profiler.WithDir(*profileDir),
		profiler.WithSink(chrome.New()), profiler.WithName("omni"))...)
	if err != nil {
		return err
	}
	eng, err := omni.New(ctx, omni.Config{Preset: *preset, Seed: *weightsSeed, CheckpointDir: *checkpoint,
		Streaming: *streaming, ChunkFrames: *chunk, Profiler: prof})
	if err != nil {
		return err
	}
	defer eng.Close(context.WithoutCancel(ctx))

	// Profile when a folder was named (--profile_dir, VLLM_TORCH_PROFILER_DIR
	// or OMNIFLOW_PROFILER_DIR).
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

func usage(fs *flag.FlagSet, command string) {
	if command == "" {
		command = "go run ./examples/offline_inference/qwen2_5_omni/end2end"
	}
	w := fs.Output()
	fmt.Fprintf(w, `end2end: a Qwen2.5-Omni-shaped thinker → talker → vocoder run: text and speech for a prompt
(with an optional WAV and image).

Usage: %s [flags]

Flags:
`, command)
	fs.PrintDefaults()
	fmt.Fprint(w, `
The default "tiny" preset runs with seeded synthetic weights: the text and
speech are gibberish, the stages, batching, hand-off and profiling are real.

Profiling: set VLLM_TORCH_PROFILER_DIR (or OMNIFLOW_PROFILER_DIR, or
--profile_dir) to a folder and the run writes a session there
(trace.json.gz for Perfetto, manifest.json, summary.txt) and prints its
path; --profile_stages 0,2 records the thinker and the vocoder only;
VLLM_PROFILER_MAX_ITERS=N records N iterations per stage, then stops.
`)
}

// UsageError is a command line Main could not parse; the caller may exit
// with status 2 for it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }
