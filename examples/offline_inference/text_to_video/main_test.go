package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"image/gif"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

// session returns the one session folder under dir and checks its files.
func session(t *testing.T, dir, stdout string) (string, *chrometest.Trace) {
	t.Helper()
	sessions, _ := filepath.Glob(filepath.Join(dir, "*_text_to_video"))
	if len(sessions) != 1 {
		t.Fatalf("session folders %v (stdout %q)", sessions, stdout)
	}
	if !strings.Contains(stdout, "profile: "+sessions[0]) {
		t.Errorf("stdout %q does not name the session folder %s", stdout, sessions[0])
	}
	for _, f := range []string{"manifest.json", "summary.txt"} {
		if _, err := os.Stat(filepath.Join(sessions[0], f)); err != nil {
			t.Error(err)
		}
	}
	return sessions[0], chrometest.Validate(t, filepath.Join(sessions[0], "trace.json.gz"))
}

func iterations(tr *chrometest.Trace) int {
	n := 0
	for _, e := range tr.Slices() {
		if e.Cat == "iteration" {
			n++
		}
	}
	return n
}

func TestTextToVideoProfiled(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VLLM_TORCH_PROFILER_DIR", filepath.Join(dir, "profiles"))
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "")
	out := filepath.Join(dir, "out", "fox.gif")
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"--prompt", "a fox", "--num_inference_steps", "3", "--num_frames", "9",
		"--height", "32", "--width", "48", "--output", out}, &stdout, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(f)
	f.Close()
	if err != nil || len(g.Image) != 9 || g.Config.Width != 48 || g.Config.Height != 32 {
		t.Fatalf("GIF: %v, %d frames of %dx%d", err, len(g.Image), g.Config.Width, g.Config.Height)
	}
	frames, _ := filepath.Glob(filepath.Join(dir, "out", "fox_frames", "fox_*.png"))
	if len(frames) != 9 {
		t.Errorf("%d PNG frames", len(frames))
	}
	sess, tr := session(t, filepath.Join(dir, "profiles"), stdout.String())
	if n := iterations(tr); n != 3 || len(tr.Named("encode")) == 0 || len(tr.Named("decode")) == 0 {
		t.Errorf("%d iterations, %d encode, %d decode", n, len(tr.Named("encode")), len(tr.Named("decode")))
	}
	var m profiler.Manifest
	b, err := os.ReadFile(filepath.Join(sess, "manifest.json"))
	if err != nil || json.Unmarshal(b, &m) != nil {
		t.Fatal(err)
	}
	if len(m.Stages) != 1 || m.Stages[0].Name != "diffusion" || m.Stages[0].Iterations != 3 {
		t.Errorf("manifest stages %+v", m.Stages)
	}
}

// TestMaxIters: VLLM_PROFILER_MAX_ITERS=1 keeps the encoder and one step,
// and the run still completes and writes its video.
func TestMaxIters(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OMNIFLOW_PROFILER_DIR", dir)
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "")
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "1")
	var stdout bytes.Buffer
	out := filepath.Join(t.TempDir(), "v.gif")
	if err := run(context.Background(), []string{"--num_inference_steps", "4", "--output", out}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
	_, tr := session(t, dir, stdout.String())
	if n := iterations(tr); n != 1 || len(tr.Named("encode")) == 0 || len(tr.Named("T5Block")) == 0 {
		t.Errorf("%d iterations (want 1), %d encode slices (want some), %d T5Block", n, len(tr.Named("encode")), len(tr.Named("T5Block")))
	}
	if !strings.Contains(stdout.String(), "stopped by max_iters") {
		t.Errorf("stdout %q", stdout.String())
	}
}

func TestFlags(t *testing.T) {
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "")
	t.Setenv("OMNIFLOW_PROFILER_DIR", "")
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &bytes.Buffer{}, &stderr); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "--num_frames") && !strings.Contains(stderr.String(), "-num_frames") {
		t.Errorf("--help: %v\n%s", err, stderr.String())
	}
	for _, args := range [][]string{
		{"--num_inference_steps", "0"}, {"--height", "-32"}, {"--width", "33"}, {"--num_frames", "4"}, {"--guidance_scale", "-1"},
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
		if code != c.want || (code != 0) != strings.HasPrefix(stderr.String(), "text_to_video: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d", c.args, code, stderr.String(), c.want)
		}
	}
}
