package profiler_test

import (
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReadEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    profiler.EnvConfig
		wantErr string // substring; the variable and its value must be named
	}{
		{"empty", nil, profiler.EnvConfig{}, ""},
		{"vllm names", map[string]string{"VLLM_TORCH_PROFILER_DIR": "./profiles", "VLLM_PROFILER_MAX_ITERS": "1", "VLLM_PROFILER_DELAY_ITERS": "3"},
			profiler.EnvConfig{Dir: "./profiles", MaxIters: 1, DelayIters: 3}, ""},
		{"omniflow names win", map[string]string{"VLLM_TORCH_PROFILER_DIR": "a", "OMNIFLOW_PROFILER_DIR": "b", "VLLM_PROFILER_MAX_ITERS": "9", "OMNIFLOW_PROFILER_MAX_ITERS": "2"},
			profiler.EnvConfig{Dir: "b", MaxIters: 2}, ""},
		{"shapes and cap", map[string]string{"OMNIFLOW_PROFILER_RECORD_SHAPES": "true", "OMNIFLOW_PROFILER_MAX_EVENTS": "5000"},
			profiler.EnvConfig{RecordShapes: true, MaxEvents: 5000}, ""},
		{"spaces trimmed", map[string]string{"OMNIFLOW_PROFILER_MAX_ITERS": " 4 "}, profiler.EnvConfig{MaxIters: 4}, ""},
		{"bad max iters", map[string]string{"VLLM_PROFILER_MAX_ITERS": "ten"}, profiler.EnvConfig{}, `VLLM_PROFILER_MAX_ITERS="ten"`},
		{"negative delay", map[string]string{"OMNIFLOW_PROFILER_DELAY_ITERS": "-1"}, profiler.EnvConfig{}, `OMNIFLOW_PROFILER_DELAY_ITERS="-1"`},
		{"bad bool", map[string]string{"OMNIFLOW_PROFILER_RECORD_SHAPES": "maybe"}, profiler.EnvConfig{}, `OMNIFLOW_PROFILER_RECORD_SHAPES="maybe"`},
		{"zero cap", map[string]string{"OMNIFLOW_PROFILER_MAX_EVENTS": "0"}, profiler.EnvConfig{}, `OMNIFLOW_PROFILER_MAX_EVENTS="0"`},
		{"overflow", map[string]string{"OMNIFLOW_PROFILER_MAX_ITERS": "99999999999999999999999"}, profiler.EnvConfig{}, "OMNIFLOW_PROFILER_MAX_ITERS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := profiler.ReadEnv(envOf(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v want %+v", got, tc.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VLLM_TORCH_PROFILER_DIR", dir)
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "1")
	p, err := profiler.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled() || p.Options().Dir != dir || p.Options().MaxIters != 1 {
		t.Fatalf("options %+v", p.Options())
	}
	// Explicit options come after the environment.
	p, err = profiler.FromEnv(profiler.WithMaxIters(5))
	if err != nil || p.Options().MaxIters != 5 {
		t.Fatalf("override: %v %+v", err, p.Options())
	}
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "x")
	if _, err := profiler.FromEnv(); err == nil {
		t.Fatal("bad value accepted")
	}
}

func FuzzReadEnv(f *testing.F) {
	for _, s := range []string{"1", "0", "-3", "true", "abc", " 7", "1e3", "99999999999999999999"} {
		f.Add(s, s, s, s)
	}
	f.Fuzz(func(t *testing.T, iters, delay, shapes, events string) {
		env := map[string]string{
			"VLLM_PROFILER_MAX_ITERS":         iters,
			"OMNIFLOW_PROFILER_DELAY_ITERS":   delay,
			"OMNIFLOW_PROFILER_RECORD_SHAPES": shapes,
			"OMNIFLOW_PROFILER_MAX_EVENTS":    events,
		}
		c, err := profiler.ReadEnv(envOf(env))
		if err != nil {
			if !strings.Contains(err.Error(), "PROFILER_") {
				t.Fatalf("error does not name the variable: %v", err)
			}
			return
		}
		if c.MaxIters < 0 || c.DelayIters < 0 || c.MaxEvents < 0 {
			t.Fatalf("negative value accepted: %+v", c)
		}
		if _, err := profiler.New(c.Options()...); err != nil {
			t.Fatalf("accepted env gives invalid options: %v", err)
		}
	})
}
