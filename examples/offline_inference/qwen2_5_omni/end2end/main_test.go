package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/operators/audio"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// inputs writes a 0.5 s 16 kHz chirp and a 60×40 PNG.
func inputs(t *testing.T, dir string) (wav, img string) {
	t.Helper()
	pcm := make([]float32, 8000)
	for i := range pcm {
		x := float64(i) / 16000
		pcm[i] = float32(0.4 * math.Sin(2*math.Pi*(300+800*x)*x))
	}
	wav = filepath.Join(dir, "in.wav")
	var buf bytes.Buffer
	if err := audio.WriteWAV(&buf, pcm, 16000, audio.PCM16); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wav, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m := image.NewRGBA(image.Rect(0, 0, 60, 40))
	for y := range 40 {
		for x := range 60 {
			m.Set(x, y, color.RGBA{uint8(4 * x), 90, uint8(6 * y), 255})
		}
	}
	buf.Reset()
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(dir, "in.png")
	if err := os.WriteFile(img, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return wav, img
}

func clearProfilerEnv(t *testing.T) {
	for _, v := range []string{"OMNIFLOW_PROFILER_DIR", "VLLM_TORCH_PROFILER_DIR", "OMNIFLOW_PROFILER_MAX_ITERS",
		"VLLM_PROFILER_MAX_ITERS", "OMNIFLOW_PROFILER_DELAY_ITERS", "VLLM_PROFILER_DELAY_ITERS"} {
		t.Setenv(v, "")
	}
}

// TestEnd2End runs the example with a WAV and a PNG and the profiler
// directory set: it writes the text and a 24 kHz WAV, reports the time to
// first audio, and leaves a complete session folder with the thinker and
// the vocoder only (--profile_stages 0,2).
func TestEnd2End(t *testing.T) {
	clearProfilerEnv(t)
	dir := t.TempDir()
	profiles := filepath.Join(dir, "profiles")
	t.Setenv("VLLM_TORCH_PROFILER_DIR", profiles)
	wav, img := inputs(t, dir)
	out := filepath.Join(dir, "out")
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"--prompt", "What is this?", "--audio", wav, "--image", img,
		"--max_tokens", "12", "--streaming", "--chunk_frames", "8", "--output_dir", out, "--profile_stages", "0,2"}, &stdout, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(out, "output.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), strings.TrimSuffix(string(text), "\n")) {
		t.Errorf("stdout %q lacks the text %q", stdout.String(), text)
	}
	f, err := os.Open(filepath.Join(out, "output.wav"))
	if err != nil {
		t.Fatal(err)
	}
	pcm, info, err := audio.ReadWAV(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// 12 text tokens → 2 codec tokens each plus the tail of 4 (or fewer if
	// the talker stops), 480 samples per codec token.
	if info.SampleRate != 24000 || len(pcm) == 0 || len(pcm)%480 != 0 || len(pcm) > 28*480 {
		t.Errorf("output.wav: %+v, %d samples", info, len(pcm))
	}
	if !regexp.MustCompile(`time to first audio [0-9.]+(µs|ms|s)`).MatchString(stdout.String()) {
		t.Errorf("no time to first audio in %q", stdout.String())
	}
	m := regexp.MustCompile(`profile: (\S+) `).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no session folder in %q", stdout.String())
	}
	session := m[1]
	if filepath.Dir(session) != profiles {
		t.Errorf("session %s is not under %s", session, profiles)
	}
	tr := chrometest.Validate(t, filepath.Join(session, "trace.json.gz"))
	stagesSeen := map[int64]int{}
	for _, e := range tr.Slices() {
		stagesSeen[e.Pid-2]++
	}
	if stagesSeen[0] == 0 || stagesSeen[1] != 0 || stagesSeen[2] == 0 {
		t.Errorf("spans per stage %v, want stages 0 and 2 only", stagesSeen)
	}
	var man profiler.Manifest
	data, err := os.ReadFile(filepath.Join(session, "manifest.json"))
	if err != nil || json.Unmarshal(data, &man) != nil {
		t.Fatalf("manifest: %v", err)
	}
	if man.SelectedAll || len(man.Files) < 3 || man.Meta["stages"] != "0,2" {
		t.Errorf("manifest: selected all %v, files %v, meta %v", man.SelectedAll, man.Files, man.Meta)
	}
}

// TestEnd2EndMaxIters: VLLM_PROFILER_MAX_ITERS=1 records one iteration per
// stage and stops by itself; the example still reports the session.
func TestEnd2EndMaxIters(t *testing.T) {
	clearProfilerEnv(t)
	dir := t.TempDir()
	t.Setenv("OMNIFLOW_PROFILER_DIR", dir)
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "1")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--max_tokens", "6", "--output_dir", t.TempDir()}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	sessions, _ := filepath.Glob(filepath.Join(dir, "*_omni"))
	if len(sessions) != 1 || !strings.Contains(stdout.String(), "stopped by max_iters") {
		t.Fatalf("sessions %v; stdout %q", sessions, stdout.String())
	}
	tr := chrometest.Validate(t, filepath.Join(sessions[0], "trace.json.gz"))
	iters := map[int64]int{}
	for _, e := range tr.Slices() {
		if e.Cat == "iteration" {
			iters[e.Pid-2]++
		}
	}
	if iters[0] != 1 || iters[1] != 1 || iters[2] != 1 {
		t.Errorf("iterations per stage %v, want one each", iters)
	}
}

func TestEnd2EndWithoutProfiling(t *testing.T) {
	clearProfilerEnv(t)
	out := t.TempDir()
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--max_tokens", "4", "--output_dir", out}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "profile:") {
		t.Errorf("profiled without a directory: %q", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(out, "output.wav")); err != nil {
		t.Error(err)
	}
}

func TestEnd2EndBadFlags(t *testing.T) {
	clearProfilerEnv(t)
	for _, args := range [][]string{
		{"--max_tokens", "0"},
		{"--profile_stages", "0,5"},
		{"--audio", "/nonexistent.wav"},
		{"--preset", "nope"},
		{"extra"},
	} {
		err := run(context.Background(), append(args, "--output_dir", t.TempDir()), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: %v", args, err)
		}
	}
}
