package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/omniflow-go/omniflow/diffusion/offline"
	omnioffline "github.com/omniflow-go/omniflow/omni/offline"
)

const runUsageText = `Usage: omniflow run [PIPELINE] [flags]

Runs a pipeline with built-in defaults (seeded synthetic weights, nothing
downloaded), writes its outputs under out/ and profiles it: the session
folder (trace.json.gz for Perfetto, manifest.json, summary.txt) goes to
$VLLM_TORCH_PROFILER_DIR or $OMNIFLOW_PROFILER_DIR when set, else to
out/profiles. --profile_dir "" turns profiling off.

Pipelines:
%s
Run 'omniflow run PIPELINE -h' for a pipeline's flags.

Examples:
  omniflow run
  omniflow run omni --prompt "Hello!" --streaming --profile_stages 0,2
  VLLM_PROFILER_MAX_ITERS=2 omniflow run text_to_video --num_frames 9
  omniflow run t2i --height 64 --width 64 --output out/fox.png
`

// runOutDir is where "omniflow run" writes outputs and, by default,
// profiles.
const runOutDir = "out"

// pipeline is one runnable pipeline of "omniflow run".
type pipeline struct {
	name    string
	aliases []string
	summary string
	main    func(ctx context.Context, command string, args []string, stdout, stderr io.Writer) error
}

func diffusionPipeline(ex offline.Example, aliases ...string) pipeline {
	return pipeline{ex.Name, aliases, ex.Summary, func(ctx context.Context, command string, args []string, stdout, stderr io.Writer) error {
		return offline.Main(ctx, ex, args, stdout, stderr, offline.Options{
			Command: command, OutputDir: runOutDir, ProfileDir: filepath.Join(runOutDir, "profiles")})
	}}
}

// pipelines maps names to constructors; the first is the default.
func pipelines() []pipeline {
	return []pipeline{
		{"omni", []string{"qwen2_5_omni"}, "thinker → talker → vocoder: text and speech for a prompt (Qwen2.5-Omni-shaped)",
			func(ctx context.Context, command string, args []string, stdout, stderr io.Writer) error {
				return omnioffline.Main(ctx, args, stdout, stderr, omnioffline.Options{
					Command: command, OutputDir: filepath.Join(runOutDir, "omni"), ProfileDir: filepath.Join(runOutDir, "profiles")})
			}},
		diffusionPipeline(offline.TextToImage, "t2i"),
		diffusionPipeline(offline.TextToVideo, "t2v"),
		diffusionPipeline(offline.ImageToVideo, "i2v"),
	}
}

func pipelineList() string {
	var b strings.Builder
	for i, p := range pipelines() {
		names := strings.Join(append([]string{p.name}, p.aliases...), ", ")
		def := ""
		if i == 0 {
			def = " (default)"
		}
		fmt.Fprintf(&b, "  %-24s %s%s\n", names, p.summary, def)
	}
	return b.String()
}

// runMain runs "omniflow run". Exit codes: 0 done, 1 the run failed, 2 the
// command line is wrong.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ps := pipelines()
	p := ps[0]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		found := false
		for _, q := range ps {
			if args[0] == q.name || containsString(q.aliases, args[0]) {
				p, found = q, true
				break
			}
		}
		if !found {
			fmt.Fprintf(stderr, "omniflow run: unknown pipeline %q\n\n", args[0])
			fmt.Fprintf(stderr, runUsageText, pipelineList())
			return 2
		}
		args = args[1:]
	} else if len(args) > 0 && isHelp(args[0]) && len(args) == 1 {
		fmt.Fprintf(stdout, runUsageText, pipelineList())
		return 0
	}
	err := p.main(ctx, "omniflow run "+p.name, args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(stderr, "omniflow run %s: %v\n", p.name, err)
	var du *offline.UsageError
	var ou *omnioffline.UsageError
	if errors.As(err, &du) || errors.As(err, &ou) {
		return 2
	}
	return 1
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
