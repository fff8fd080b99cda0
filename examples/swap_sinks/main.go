// Command swap_sinks runs one pipeline and sends its profile to the Chrome
// trace sink, to OpenTelemetry, or to both, chosen by --sink. Swapping a
// sink is one line: the profiler.WithSink option.
//
//	go run ./examples/swap_sinks --sink chrome   # <dir>/<session>/trace.json.gz
//	go run ./examples/swap_sinks --sink otel     # spans on stdout, or OTLP
//	go run ./examples/swap_sinks --sink both
//
// OpenTelemetry goes to stdout unless OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; then it goes over OTLP,
// gRPC when OTEL_EXPORTER_OTLP_PROTOCOL=grpc and HTTP/protobuf otherwise,
// configured by the standard OTEL_* variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/omniflow-go/omniflow/graph"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return // -h printed the usage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "swap_sinks:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("swap_sinks", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: swap_sinks [flags]

Runs one pipeline and sends its profile to the Chrome trace sink, to
OpenTelemetry (stdout, or OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set), or
to both.

Flags:
`)
		fs.PrintDefaults()
	}
	which := fs.String("sink", "chrome", "where the profile goes: chrome, otel or both")
	dir := fs.String("profile_dir", "", "profile directory for the Chrome sink (default: $OMNIFLOW_PROFILER_DIR, $VLLM_TORCH_PROFILER_DIR, or ./profiles)")
	text := fs.String("text", "the quick brown fox jumps over the lazy dog and the dog sleeps", "text to analyse")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env, err := profiler.ReadEnv(nil)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = env.Dir
	}
	if *dir == "" {
		*dir = "profiles"
	}

	var opts []profiler.Option
	var tp *sdktrace.TracerProvider
	switch *which {
	case "chrome":
		opts = append(opts, profiler.WithSink(chrome.New())) // <- the one line
	case "otel", "both":
		if tp, err = tracerProvider(ctx, stdout); err != nil {
			return err
		}
		opts = append(opts, profiler.WithSink(otelsink.New(tp))) // <- the one line
		if *which == "both" {
			opts = append(opts, profiler.WithSink(chrome.New()))
		}
	default:
		return fmt.Errorf("--sink %q: want chrome, otel or both", *which)
	}
	if *which == "otel" {
		opts = append(opts, profiler.WithDir("")) // spans only, no session folder
	} else {
		opts = append(opts, profiler.WithDir(*dir))
	}
	prof, err := profiler.New(append(env.Options(), opts...)...)
	if err != nil {
		return err
	}

	plan, err := buildPipeline(prof)
	if err != nil {
		return err
	}
	if err := prof.Start(ctx, profiler.Name("swap_sinks")); err != nil {
		return err
	}
	res, runErr := plan.Run(ctx, graph.Feeds{"text": *text})
	out, stopErr := prof.Stop(ctx)
	if errors.Is(stopErr, profiler.ErrNotStarted) {
		stopErr = nil // stopped by itself (max iterations) and already collected
	}
	if tp != nil {
		stopErr = errors.Join(stopErr, tp.Shutdown(ctx))
	}
	if runErr != nil {
		return runErr
	}
	fmt.Fprintf(stdout, "top words: %v\n", res["top"])
	for _, f := range out.Files {
		fmt.Fprintln(stdout, "wrote", f)
	}
	return stopErr
}

// tracerProvider exports to OTLP when the standard variables name an
// endpoint, else to stdout.
func tracerProvider(ctx context.Context, stdout io.Writer) (*sdktrace.TracerProvider, error) {
	var exp sdktrace.SpanExporter
	var err error
	switch {
	case os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(stdout), stdouttrace.WithPrettyPrint())
	case os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") == "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("opentelemetry exporter: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("omniflow-swap-sinks"))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// buildPipeline: split text into words (stage 0), count them in rounds of
// 4 words, one iteration each (stage 1), rank them (stage 2).
func buildPipeline(prof *profiler.Profiler) (*graph.Plan, error) {
	g := graph.New("word_stats")
	text := g.Input("text", graph.Text())
	split := g.Add("split", graph.OperatorFunc(graph.Contract{Name: "split",
		Inputs:  []graph.Port{graph.In("text", graph.Text())},
		Outputs: []graph.Port{graph.StreamOut("words", graph.Text())}},
		func(ctx context.Context, io *graph.IO) error {
			s, err := graph.Get[string](io, "text")
			if err != nil {
				return err
			}
			for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) }) {
				if err := io.Send("words", w); err != nil {
					return err
				}
			}
			return nil
		}), graph.Stage(0, "split"))
	count := g.Add("count", graph.OperatorFunc(graph.Contract{Name: "count", Loop: true,
		Inputs:  []graph.Port{graph.StreamIn("words", graph.Text())},
		Outputs: []graph.Port{graph.Out("counts", graph.Any())}},
		func(ctx context.Context, io *graph.IO) error {
			counts := map[string]int{}
			round := make([]string, 0, 4)
			for done := false; !done; {
				// Receive outside the iteration: a stage records while it
				// works, not while it waits for the next word.
				round = round[:0]
				for len(round) < cap(round) {
					w, err := graph.Recv[string](io, "words")
					if errors.Is(err, graph.EOF) {
						done = true
						break
					}
					if err != nil {
						return err
					}
					round = append(round, w)
				}
				if len(round) == 0 {
					break
				}
				_, step := profiler.Step(ctx, "count.round", profiler.Int("words", len(round)))
				for _, w := range round {
					counts[w]++
				}
				step.End()
			}
			return io.Put("counts", counts)
		}), graph.Stage(1, "count"))
	rank := g.Add("rank", graph.OperatorFunc(graph.Contract{Name: "rank",
		Inputs:  []graph.Port{graph.In("counts", graph.Any())},
		Outputs: []graph.Port{graph.Out("top", graph.Any())}},
		func(ctx context.Context, io *graph.IO) error {
			counts, err := graph.Get[map[string]int](io, "counts")
			if err != nil {
				return err
			}
			words := make([]string, 0, len(counts))
			for w := range counts {
				words = append(words, w)
			}
			sort.Slice(words, func(i, j int) bool {
				if counts[words[i]] != counts[words[j]] {
					return counts[words[i]] > counts[words[j]]
				}
				return words[i] < words[j]
			})
			return io.Put("top", words[:min(3, len(words))])
		}), graph.Stage(2, "rank"))
	for _, e := range [][2]graph.PortRef{{text, split.In("text")}, {split.Out("words"), count.In("words")}, {count.Out("counts"), rank.In("counts")}} {
		if err := g.Connect(e[0], e[1]); err != nil {
			return nil, err
		}
	}
	if err := g.Output("top", rank.Out("top")); err != nil {
		return nil, err
	}
	return g.Build(graph.WithProfiler(prof))
}
