package main

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

func TestImageToVideoProfiled(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VLLM_TORCH_PROFILER_DIR", filepath.Join(dir, "profiles"))
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "")
	// A 40x30 input image: the pipeline resizes it to the output size.
	src := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := range 30 {
		for x := range 40 {
			src.Set(x, y, color.NRGBA{uint8(6 * x), uint8(8 * y), 90, 255})
		}
	}
	imgPath := filepath.Join(dir, "in.png")
	f, _ := os.Create(imgPath)
	if err := png.Encode(f, src); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out", "clip.gif")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--image", imgPath, "--num_inference_steps", "2", "--output", out}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	gf, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(gf)
	gf.Close()
	if err != nil || len(g.Image) != 5 || g.Config.Width != 32 || g.Config.Height != 32 {
		t.Fatalf("GIF: %v, %d frames %dx%d", err, len(g.Image), g.Config.Width, g.Config.Height)
	}
	sessions, _ := filepath.Glob(filepath.Join(dir, "profiles", "*_image_to_video"))
	if len(sessions) != 1 || !strings.Contains(stdout.String(), "profile: "+sessions[0]) {
		t.Fatalf("sessions %v, stdout %q", sessions, stdout.String())
	}
	tr := chrometest.Validate(t, filepath.Join(sessions[0], "trace.json.gz"))
	// Operators may be split where they wait for an input; modules are not.
	for _, c := range []struct {
		name     string
		min, max int
	}{{"encode", 1, 4}, {"encode_image", 1, 3}, {"denoise", 1, 5}, {"decode", 1, 2}, {"VAEEncoder", 1, 1}} {
		n := 0
		for _, e := range tr.Named(c.name) {
			if e.Ph == "X" {
				n++
			}
		}
		if n < c.min || n > c.max {
			t.Errorf("%d slices named %s, want %d to %d", n, c.name, c.min, c.max)
		}
	}
	if n := len(tr.Named("denoise.step")); n != 2 {
		t.Errorf("%d steps", n)
	}
}

func TestDefaultImage(t *testing.T) {
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "")
	t.Setenv("OMNIFLOW_PROFILER_DIR", "")
	out := filepath.Join(t.TempDir(), "v.gif")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--num_inference_steps", "1", "--output", out}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "wrote "+out) {
		t.Errorf("stdout %q", stdout.String())
	}
	if err := run(context.Background(), []string{"--image", "missing.png"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("a missing image was accepted")
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
		if code != c.want || (code != 0) != strings.HasPrefix(stderr.String(), "image_to_video: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d", c.args, code, stderr.String(), c.want)
		}
	}
}
