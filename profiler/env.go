package profiler

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Environment variables read by FromEnv. Each OMNIFLOW_ name has a vLLM
// alias, so a vLLM-Omni user's environment works unchanged; when both are
// set the OMNIFLOW_ one wins.
var envVars = []struct{ name, alias string }{
	{"OMNIFLOW_PROFILER_DIR", "VLLM_TORCH_PROFILER_DIR"},
	{"OMNIFLOW_PROFILER_MAX_ITERS", "VLLM_PROFILER_MAX_ITERS"},
	{"OMNIFLOW_PROFILER_DELAY_ITERS", "VLLM_PROFILER_DELAY_ITERS"},
	{"OMNIFLOW_PROFILER_RECORD_SHAPES", "VLLM_TORCH_PROFILER_RECORD_SHAPES"},
	{"OMNIFLOW_PROFILER_MAX_EVENTS", ""},
}

// EnvConfig is what the environment asks of the profiler.
type EnvConfig struct {
	Dir          string
	MaxIters     int
	DelayIters   int
	RecordShapes bool
	MaxEvents    int // 0: the default
}

// ReadEnv parses the profiler's environment variables with getenv (os.Getenv
// when nil). A bad value is an error naming the variable and the value.
func ReadEnv(getenv func(string) string) (EnvConfig, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(i int) (string, string) {
		v := envVars[i]
		if s := strings.TrimSpace(getenv(v.name)); s != "" {
			return v.name, s
		}
		if v.alias != "" {
			if s := strings.TrimSpace(getenv(v.alias)); s != "" {
				return v.alias, s
			}
		}
		return "", ""
	}
	var c EnvConfig
	_, c.Dir = get(0)
	var err error
	if c.MaxIters, err = envInt(get(1)); err != nil {
		return c, err
	}
	if c.DelayIters, err = envInt(get(2)); err != nil {
		return c, err
	}
	if name, v := get(3); v != "" {
		switch strings.ToLower(v) {
		case "1", "true", "yes", "on":
			c.RecordShapes = true
		case "0", "false", "no", "off":
		default:
			return c, fmt.Errorf("profiler: %s=%q: want 1/0, true/false, yes/no or on/off", name, v)
		}
	}
	if name, v := get(4); v != "" {
		if c.MaxEvents, err = envInt(name, v); err != nil {
			return c, err
		}
		if c.MaxEvents == 0 {
			return c, fmt.Errorf("profiler: %s=%q: want a positive integer", name, v)
		}
	}
	return c, nil
}

func envInt(name, v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("profiler: %s=%q: want a non-negative integer", name, v)
	}
	return n, nil
}

// FromEnv returns a profiler configured by the environment
// (OMNIFLOW_PROFILER_DIR or VLLM_TORCH_PROFILER_DIR, ..._MAX_ITERS,
// ..._DELAY_ITERS, OMNIFLOW_PROFILER_RECORD_SHAPES,
// OMNIFLOW_PROFILER_MAX_EVENTS). opts come after the environment, so they
// add sinks and can override it:
//
//	p, err := profiler.FromEnv(profiler.WithSink(chrome.New()))
//	if p.Enabled() { p.Start(ctx) }
//
// Enabled reports whether a directory was set.
func FromEnv(opts ...Option) (*Profiler, error) {
	ec, err := ReadEnv(nil)
	if err != nil {
		return nil, err
	}
	return New(append(ec.Options(), opts...)...)
}

// Options turns the environment's settings into profiler options.
func (c EnvConfig) Options() []Option {
	o := []Option{WithDir(c.Dir), WithMaxIters(c.MaxIters), WithDelayIters(c.DelayIters), WithRecordShapes(c.RecordShapes)}
	if c.MaxEvents > 0 {
		o = append(o, WithMaxEvents(c.MaxEvents))
	}
	return o
}
