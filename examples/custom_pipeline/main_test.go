package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

func TestCustomPipelineProfilesIntoEnvDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VLLM_TORCH_PROFILER_DIR", filepath.Join(dir, "profiles"))
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "")
	var out bytes.Buffer
	err := run(context.Background(), []string{"--requests", "2", "--iters", "5", "--output_dir", filepath.Join(dir, "out")}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		f, err := os.Open(filepath.Join(dir, "out", "request-"+string(rune('0'+i))+".png"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() != dim || img.Bounds().Dy() != 5 {
			t.Fatalf("image %d: %v %v", i, img.Bounds(), err)
		}
	}
	sessions, _ := filepath.Glob(filepath.Join(dir, "profiles", "*_custom_pipeline"))
	if len(sessions) != 1 {
		t.Fatalf("session folders %v (stdout %s)", sessions, out.String())
	}
	tr := chrometest.Validate(t, filepath.Join(sessions[0], "trace.json.gz"))
	if len(tr.Flows) == 0 {
		t.Error("no flow arrows")
	}
	var m profiler.Manifest
	b, err := os.ReadFile(filepath.Join(sessions[0], "manifest.json"))
	if err != nil || json.Unmarshal(b, &m) != nil {
		t.Fatal(err)
	}
	if len(m.Stages) != 3 || m.Stages[1].Iterations != 10 || m.RequestsTotal != 2 {
		t.Errorf("manifest stages %+v requests %d", m.Stages, m.RequestsTotal)
	}
}

func TestCustomPipelineMaxIters(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OMNIFLOW_PROFILER_DIR", dir)
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "1")
	if err := run(context.Background(), []string{"--requests", "1", "--iters", "8", "--output_dir", t.TempDir()}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	sessions, _ := filepath.Glob(filepath.Join(dir, "*_custom_pipeline"))
	if len(sessions) != 1 {
		t.Fatalf("sessions %v", sessions)
	}
	tr := chrometest.Validate(t, filepath.Join(sessions[0], "trace.json.gz"))
	iters := 0
	for _, e := range tr.Events {
		if e.Ph == "X" && e.Cat == "iteration" {
			iters++
		}
	}
	if iters != 1 {
		t.Errorf("%d iterations recorded, want 1", iters)
	}
}

func TestBadFlags(t *testing.T) {
	if err := run(context.Background(), []string{"--requests", "0"}, &bytes.Buffer{}); err == nil {
		t.Fatal("accepted --requests 0")
	}
}
