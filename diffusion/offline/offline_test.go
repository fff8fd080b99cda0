package offline

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omniflow-go/omniflow/diffusion"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestProgressBarRendering(t *testing.T) {
	var b bytes.Buffer
	bar := &ProgressBar{W: &b, Width: 8}
	bar.Update(diffusion.Progress{Step: 1, Steps: 4, Timestep: 999, Expert: diffusion.ExpertHigh, Guided: true, Elapsed: 50 * time.Millisecond})
	bar.Update(diffusion.Progress{Step: 3, Steps: 4, Timestep: 800.25, Expert: diffusion.ExpertLow, Elapsed: 1500 * time.Millisecond})
	bar.Update(diffusion.Progress{Step: 4, Steps: 4, Timestep: 0, Expert: diffusion.ExpertSingle, Skipped: true, Elapsed: 1501 * time.Millisecond})
	want := "\rdenoise [##......] 1/4  t= 999.0  high_noise cfg     0.05s" +
		"\rdenoise [######..] 3/4  t= 800.2  low_noise  -       1.50s" +
		"\rdenoise [########] 4/4  t=   0.0  single     skip    1.50s\n"
	if b.String() != want {
		t.Errorf("bar:\n%q\nwant\n%q", b.String(), want)
	}
	if IsTerminal(&b) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
}

func TestMainForcedProgress(t *testing.T) {
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "")
	t.Setenv("OMNIFLOW_PROFILER_DIR", "")
	var out, errb bytes.Buffer
	on := true
	dir := t.TempDir()
	err := Main(context.Background(), TextToImage, []string{"--num_inference_steps", "3", "--output", filepath.Join(dir, "x.png")}, &out, &errb, Options{Progress: &on})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(errb.String(), "\rdenoise ["); got != 3 || !strings.HasSuffix(errb.String(), "\n") {
		t.Errorf("stderr %q: want 3 bar updates ending in a newline", errb.String())
	}
	// The third of Z-Image's 3 steps is zero-length (t = 0): drawn, marked skip.
	if last := errb.String()[strings.LastIndex(errb.String(), "\r"):]; !strings.Contains(last, "3/3") || !strings.Contains(last, " skip ") {
		t.Errorf("last bar update %q: want step 3/3 marked skip", last)
	}
	if !strings.Contains(out.String(), "wrote "+filepath.Join(dir, "x.png")+" (32x32)") || strings.Contains(out.String(), "profile:") {
		t.Errorf("stdout %q", out.String())
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	ctx := context.Background()
	var errb bytes.Buffer
	if err := Main(ctx, TextToVideo, []string{"--help"}, &bytes.Buffer{}, &errb); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--num_inference_steps", "-num_frames", "-guidance_scale_2", "tiny-wan2.2-t2v", "Wan2.2-T2V-A14B",
		"VLLM_TORCH_PROFILER_DIR", "VLLM_PROFILER_MAX_ITERS", "--checkpoint"} {
		if !strings.Contains(errb.String(), strings.TrimPrefix(want, "-")) {
			t.Errorf("--help does not mention %s:\n%s", want, errb.String())
		}
	}
	for _, c := range []struct {
		ex   Example
		args []string
		want string
	}{
		{TextToVideo, []string{"--num_inference_steps", "0"}, "inference steps"},
		{TextToVideo, []string{"--height", "-16"}, "positive"},
		{TextToVideo, []string{"--width", "20"}, "multiples of 16"},
		{TextToVideo, []string{"--num_frames", "6"}, "1 + 4·k"},
		{TextToVideo, []string{"--model", "tiny-z-image"}, "does not do t2v"},
		{TextToVideo, []string{"--model", "sd15"}, "unknown preset"},
		{TextToVideo, []string{"--output", "x.png"}, ".gif"},
		{TextToVideo, []string{"--fps", "0"}, "--fps"},
		{TextToVideo, []string{"--model", "Wan2.2-T2V-A14B"}, "checkpoint"},
		{TextToImage, []string{"--cfg_truncation", "2"}, "truncation"},
		{TextToImage, []string{"stray"}, "unexpected arguments"},
		{ImageToVideo, []string{"--image", "/nonexistent.png"}, "--image"},
	} {
		err := Main(ctx, c.ex, c.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want an error mentioning %q", c.ex.Name, c.args, err, c.want)
		}
	}
}

// TestExitCode: --help exits 0, a command line that does not parse 2 (as
// omniflow run does), any other failure 1.
func TestExitCode(t *testing.T) {
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "")
	t.Setenv("OMNIFLOW_PROFILER_DIR", "")
	ctx := context.Background()
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, 0},
		{[]string{"--no_such_flag"}, 2},
		{[]string{"--num_inference_steps", "many"}, 2},
		{[]string{"stray"}, 2},
		{[]string{"--num_inference_steps", "0"}, 1}, // parses; the value is refused
		{[]string{"--model", "sd15"}, 1},
	} {
		err := Main(ctx, TextToImage, c.args, &bytes.Buffer{}, &bytes.Buffer{})
		if got := ExitCode(err); got != c.want {
			t.Errorf("%v: exit %d (%v), want %d", c.args, got, err, c.want)
		}
	}
	if ExitCode(nil) != 0 || ExitCode(fmt.Errorf("wrapped: %w", &UsageError{errors.New("bad")})) != 2 {
		t.Error("nil or a wrapped UsageError")
	}
}
