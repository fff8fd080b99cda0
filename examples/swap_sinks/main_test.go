package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

func TestSwapSinks(t *testing.T) {
	for _, sink := range []string{"chrome", "otel", "both"} {
		t.Run(sink, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
			dir := t.TempDir()
			var out bytes.Buffer
			if err := run(context.Background(), []string{"--sink", sink, "--profile_dir", dir}, &out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "top words: [the dog and]") {
				t.Errorf("output: %s", out.String())
			}
			traces, _ := filepath.Glob(filepath.Join(dir, "*", "trace.json.gz"))
			if (sink == "otel") != (len(traces) == 0) {
				t.Fatalf("sink %s wrote traces %v", sink, traces)
			}
			if len(traces) == 1 {
				tr := chrometest.Validate(t, traces[0])
				if len(tr.Flows) == 0 {
					t.Error("no flow arrows between the stages")
				}
			}
			if sink != "chrome" && !strings.Contains(out.String(), `"Name": "count"`) {
				t.Error("no OpenTelemetry span for the count operator on stdout")
			}
		})
	}
	if err := run(context.Background(), []string{"--sink", "nope"}, &bytes.Buffer{}); err == nil {
		t.Fatal("accepted --sink nope")
	}
}
