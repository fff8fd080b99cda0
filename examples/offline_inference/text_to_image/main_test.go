package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/diffusion"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

func TestTextToImageProfiled(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VLLM_TORCH_PROFILER_DIR", filepath.Join(dir, "profiles"))
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "")
	out := filepath.Join(dir, "img.png")
	var stdout bytes.Buffer
	args := []string{"--prompt", "a lighthouse", "--height", "48", "--width", "64", "--num_inference_steps", "3",
		"--guidance_scale", "3", "--flow_shift", "1", "--cfg_truncation", "0.4", "--cfg_normalization", "1", "--output", out}
	if err := run(context.Background(), args, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
		t.Fatalf("PNG: %v %v, want 64x48", err, img)
	}
	sessions, _ := filepath.Glob(filepath.Join(dir, "profiles", "*_text_to_image"))
	if len(sessions) != 1 || !strings.Contains(stdout.String(), "profile: "+sessions[0]) {
		t.Fatalf("sessions %v, stdout %q", sessions, stdout.String())
	}
	tr := chrometest.Validate(t, filepath.Join(sessions[0], "trace.json.gz"))
	// 3 Euler steps with σ_min = 0 and shift 1, at t = 1000, 500, 0:
	// (1000−t)/1000 = 0 and 0.5, so truncation at 0.4 leaves one batched
	// pass and one plain one; the third step is zero-length, a step span
	// marked skipped with no model call.
	if b, c := len(tr.Named("cfg.batched")), len(tr.Named("cfg.cond")); b != 1 || c != 1 {
		t.Errorf("%d batched and %d cond passes, want 1 and 1", b, c)
	}
	stepEvs := tr.Named("denoise.step")
	if len(stepEvs) != 3 || len(tr.Named("ZImageDiT")) != 2 {
		t.Fatalf("%d steps, %d model calls; want 3 and 2", len(stepEvs), len(tr.Named("ZImageDiT")))
	}
	skipped := 0
	for _, e := range stepEvs {
		if e.Args["update"] == diffusion.StepSkipped {
			skipped++
			if fmt.Sprint(e.Args["step"]) != "2" || fmt.Sprint(e.Args["timestep"]) != "0" {
				t.Errorf("skipped step args %v, want step 2 at t = 0", e.Args)
			}
		}
	}
	if skipped != 1 {
		t.Errorf("%d steps marked %s, want 1", skipped, diffusion.StepSkipped)
	}
}

func TestBadFlags(t *testing.T) {
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "")
	t.Setenv("OMNIFLOW_PROFILER_DIR", "")
	for _, args := range [][]string{
		{"--num_inference_steps", "0"}, {"--height", "0"}, {"--width", "24"}, {"--cfg_normalization", "-1"}, {"--output", "x.gif"},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestExitStatus: a flag that does not parse exits 2 with the message on
// stderr, a refused value 1, --help 0 and silently.
func TestExitStatus(t *testing.T) {
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "")
	t.Setenv("OMNIFLOW_PROFILER_DIR", "")
	for _, c := range []struct {
		args []string
		want int
	}{{[]string{"--no_such_flag"}, 2}, {[]string{"--num_inference_steps", "0"}, 1}, {[]string{"--help"}, 0}} {
		var stderr bytes.Buffer
		code := report(run(context.Background(), c.args, &bytes.Buffer{}, &bytes.Buffer{}), &stderr)
		if code != c.want || (code != 0) != strings.HasPrefix(stderr.String(), "text_to_image: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d", c.args, code, stderr.String(), c.want)
		}
	}
}
