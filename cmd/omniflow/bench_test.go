package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBench(t *testing.T) {
	t.Setenv("OMNIFLOW_PROFILER_DIR", "")
	t.Setenv("VLLM_TORCH_PROFILER_DIR", "")
	var out, errb bytes.Buffer
	code := realMain(context.Background(), []string{"bench", "--size", "small", "--time", "1ms", "--threads", "1", "--json", "matmul", "softmax"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rows []benchRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Kernel != "matmul" || rows[0].Calls < 1 || rows[0].GFLOPS <= 0 || rows[1].Kernel != "softmax" {
		t.Fatalf("rows %+v", rows)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "nope"}, `unknown kernel "nope"`},
		{[]string{"bench", "--size", "huge"}, `--size "huge"`},
		{[]string{"bench", "--threads", "0"}, `--threads "0"`},
	} {
		errb.Reset()
		if code := realMain(context.Background(), tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %s", tc.args, code, errb.String())
		}
	}
}

func TestBenchProfiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OMNIFLOW_PROFILER_DIR", dir)
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"bench", "--size", "small", "--time", "1ms", "--threads", "1", "rms_norm"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	sums, _ := filepath.Glob(filepath.Join(dir, "*_bench", "summary.txt"))
	if len(sums) != 1 {
		t.Fatalf("summaries %v (%s)", sums, errb.String())
	}
	b, _ := os.ReadFile(sums[0])
	if !strings.Contains(string(b), "rms_norm") {
		t.Errorf("summary lacks the kernel:\n%s", b)
	}
}
