package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/operators/audio"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

// clearProfilerEnv unsets every profiler variable for the test.
func clearProfilerEnv(t *testing.T) {
	t.Helper()
	for _, v := range []string{"OMNIFLOW_PROFILER_DIR", "VLLM_TORCH_PROFILER_DIR", "OMNIFLOW_PROFILER_MAX_ITERS",
		"VLLM_PROFILER_MAX_ITERS", "OMNIFLOW_PROFILER_DELAY_ITERS", "VLLM_PROFILER_DELAY_ITERS",
		"OMNIFLOW_PROFILER_RECORD_SHAPES", "OMNIFLOW_PROFILER_MAX_EVENTS"} {
		t.Setenv(v, "")
	}
}

// The main job: "omniflow run" with no pipeline runs omni with its
// defaults, writes the text and the speech under out/omni and a complete
// session folder under out/profiles with all three stages.
func TestRunDefaultWritesOutputsAndProfile(t *testing.T) {
	clearProfilerEnv(t)
	t.Chdir(t.TempDir())
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"run", "--max_tokens", "6"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	f, err := os.Open(filepath.Join("out", "omni", "output.wav"))
	if err != nil {
		t.Fatal(err)
	}
	pcm, info, err := audio.ReadWAV(f)
	f.Close()
	if err != nil || info.SampleRate != 24000 || len(pcm) == 0 {
		t.Fatalf("output.wav: %d samples at %d Hz, %v", len(pcm), info.SampleRate, err)
	}
	if b, err := os.ReadFile(filepath.Join("out", "omni", "output.txt")); err != nil || len(b) == 0 {
		t.Fatalf("output.txt: %q %v", b, err)
	}
	sessions, _ := filepath.Glob(filepath.Join("out", "profiles", "*_omni"))
	if len(sessions) != 1 || !strings.Contains(out.String(), "profile: "+sessions[0]) {
		t.Fatalf("sessions %v, stdout %q", sessions, out.String())
	}
	tr := chrometest.Validate(t, filepath.Join(sessions[0], "trace.json.gz"))
	procs := map[string]bool{}
	for _, e := range tr.Phase("M") {
		if e.Name == "process_name" {
			name, _ := e.Args["name"].(string)
			procs[name] = true
		}
	}
	for _, want := range []string{"stage 0: thinker", "stage 1: talker", "stage 2: vocoder"} {
		if !procs[want] {
			t.Errorf("trace lacks the process %q (has %v)", want, procs)
		}
	}
}

// The environment's folder wins over out/profiles, and its iteration
// window applies; --profile_dir "" turns profiling off.
func TestRunDiffusionProfileDir(t *testing.T) {
	clearProfilerEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "envprofiles")
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "1")
	var out, errb bytes.Buffer
	args := []string{"run", "t2i", "--height", "32", "--width", "48", "--num_inference_steps", "3"}
	if code := realMain(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	f, err := os.Open(filepath.Join("out", "text_to_image.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() != 48 || img.Bounds().Dy() != 32 {
		t.Fatalf("PNG: %v, want 48x32", err)
	}
	sessions, _ := filepath.Glob(filepath.Join("envprofiles", "*_text_to_image"))
	if len(sessions) != 1 {
		t.Fatalf("sessions %v; stdout %q", sessions, out.String())
	}
	if _, err := os.Stat(filepath.Join("out", "profiles")); !os.IsNotExist(err) {
		t.Errorf("out/profiles written although the environment named a folder: %v", err)
	}
	tr := chrometest.Validate(t, filepath.Join(sessions[0], "trace.json.gz"))
	if n := len(tr.Named("denoise.step")); n != 1 {
		t.Errorf("%d denoise steps recorded with MAX_ITERS=1, want 1", n)
	}

	out.Reset()
	args = []string{"run", "text_to_image", "--height", "32", "--width", "32", "--num_inference_steps", "2",
		"--profile_dir", "", "--output", "plain.png"}
	if code := realMain(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), "profile:") {
		t.Errorf("profiled with --profile_dir \"\": %s", out.String())
	}
	if all, _ := filepath.Glob(filepath.Join("envprofiles", "*")); len(all) != 1 {
		t.Errorf("sessions after an unprofiled run: %v", all)
	}
	if _, err := os.Stat("plain.png"); err != nil {
		t.Error(err)
	}
}

func TestRunCommandLine(t *testing.T) {
	clearProfilerEnv(t)
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		args   []string
		code   int
		stream string // "out" or "err"
		want   string
	}{
		{[]string{"run", "-h"}, 0, "out", "text_to_video, t2v"},
		{[]string{"help", "run"}, 0, "out", "Pipelines:"},
		{[]string{"run", "omni", "-h"}, 0, "err", "--profile_stages"},
		{[]string{"run", "i2v", "--help"}, 0, "err", "-image string"},
		{[]string{"run", "nope"}, 2, "err", `unknown pipeline "nope"`},
		{[]string{"run", "omni", "--bogus"}, 2, "err", "-bogus"},
		{[]string{"run", "omni", "extra"}, 2, "err", `unexpected arguments ["extra"]`},
		{[]string{"run", "omni", "--profile_stages", "0,7"}, 2, "err", `--profile_stages "0,7"`},
		{[]string{"run", "t2v", "--num_frames", "0"}, 1, "err", "frames"},
	} {
		var out, errb bytes.Buffer
		code := realMain(context.Background(), tc.args, &out, &errb)
		got := errb.String()
		if tc.stream == "out" {
			got = out.String()
		}
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("%v: exit %d (want %d), %s %q lacks %q", tc.args, code, tc.code, tc.stream, got, tc.want)
		}
	}
	// A bad environment value is named, with the variable.
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "lots")
	var errb bytes.Buffer
	if code := realMain(context.Background(), []string{"run", "--max_tokens", "2"}, &bytes.Buffer{}, &errb); code != 1 ||
		!strings.Contains(errb.String(), "VLLM_PROFILER_MAX_ITERS") || !strings.Contains(errb.String(), "lots") {
		t.Errorf("bad MAX_ITERS: exit %d, %q", code, errb.String())
	}
	if _, err := os.Stat("out"); !os.IsNotExist(err) {
		t.Errorf("failed runs wrote out/: %v", err)
	}
}
