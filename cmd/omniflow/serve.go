package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/omniflow-go/omniflow/omni"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/serve"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

const serveUsageText = `Usage: omniflow serve [flags]

Serves the thinker → talker → vocoder engine (Qwen2.5-Omni-shaped, seeded
synthetic weights unless --checkpoint) over HTTP until interrupted:

  POST /v1/generate    {"prompt": "...", "max_tokens": 32, "stream": true, ...}
                       JSON, or with "stream": true NDJSON lines as the text
                       and audio come; "return_audio": true adds the speech
  POST /start_profile  {"stages": [0,2], "name": "..."} (stages default: all)
  POST /stop_profile   ends the profile, answers with its files
  GET  /health, GET /metrics

Profiles go to a session folder under --profile_dir; the profiler's
environment (VLLM_PROFILER_MAX_ITERS, ..._DELAY_ITERS, ..._RECORD_SHAPES,
OMNIFLOW_PROFILER_MAX_EVENTS) still applies. On interrupt the server
drains its requests (10 s at most), stops a running profile so its files
are complete, and exits.

Flags:
  --addr A           host:port to listen on (default 127.0.0.1:8000; port 0
                     picks a free one)
  --preset P         model shapes: %s (default tiny)
  --checkpoint DIR   a Hugging Face Qwen2 checkpoint folder for the thinker
  --streaming        hand each thinker step to the talker and every
                     --chunk_frames codes to the vocoder as they come
  --chunk_frames N   codec frames per vocoder chunk (default %d)
  --max_batch N      requests each decoder loop serves per iteration
                     (default 8)
  --weights_seed S   seed of the synthetic weights (default 0)
  --profile_dir DIR  where profiles go (default $OMNIFLOW_PROFILER_DIR, else
                     $VLLM_TORCH_PROFILER_DIR, else "profiles")

Examples:
  omniflow serve --streaming
  VLLM_PROFILER_MAX_ITERS=20 omniflow serve --addr :8000 --profile_dir /tmp/profiles
`

// serveShutdownTimeout bounds how long an interrupted server waits for the
// requests in flight before it cuts them off (a variable for the tests).
var serveShutdownTimeout = 10 * time.Second

// serveMain runs "omniflow serve" until ctx is cancelled. Exit codes: 0
// stopped by ctx, 1 the server failed (address in use, engine), 2 the
// command line is wrong.
func serveMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := fmt.Sprintf(serveUsageText, strings.Join(omni.Presets(), ", "), omni.DefaultChunkFrames)
	ec, envErr := profiler.ReadEnv(nil) // reported after -h
	defDir := ec.Dir
	if defDir == "" {
		defDir = "profiles"
	}
	fs := flag.NewFlagSet("omniflow serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:8000", "")
	preset := fs.String("preset", "", "")
	checkpoint := fs.String("checkpoint", "", "")
	streaming := fs.Bool("streaming", false, "")
	chunk := fs.Int("chunk_frames", omni.DefaultChunkFrames, "")
	maxBatch := fs.Int("max_batch", 8, "")
	weightsSeed := fs.Uint64("weights_seed", 0, "")
	profileDir := fs.String("profile_dir", defDir, "")
	usageErr := usageFailer("serve", usage, stderr)
	if code, done := parseFlags(fs, args, usage, stdout, usageErr); done {
		return code
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected arguments %q (flags start with --)", fs.Args())
	case *addr == "":
		return usageErr("--addr is empty: want host:port")
	case *preset != "" && !slices.Contains(omni.Presets(), strings.ToLower(*preset)):
		return usageErr("--preset %q: want one of %s", *preset, strings.Join(omni.Presets(), ", "))
	case *chunk < 1:
		return usageErr("--chunk_frames %d: want at least 1", *chunk)
	case *maxBatch < 1:
		return usageErr("--max_batch %d: want at least 1", *maxBatch)
	case *profileDir == "":
		return usageErr("--profile_dir is empty: /start_profile needs a folder")
	}
	if envErr != nil {
		return usageErr("%v", envErr)
	}

	fail := func(err error) int {
		fmt.Fprintf(stderr, "omniflow serve: %v\n", err)
		return 1
	}
	prof, err := profiler.New(append(ec.Options(), profiler.WithDir(*profileDir),
		profiler.WithSink(chrome.New()), profiler.WithName("serve"))...)
	if err != nil {
		return fail(err)
	}
	// Listen before building the engine: a busy address fails at once.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fail(err)
	}
	defer ln.Close()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := omni.New(ctx, omni.Config{Preset: *preset, CheckpointDir: *checkpoint, Seed: *weightsSeed,
		Streaming: *streaming, ChunkFrames: *chunk, MaxBatch: *maxBatch, Profiler: prof, Logger: log})
	if err != nil {
		return fail(err)
	}

	mode := "whole"
	if *streaming {
		mode = "streaming"
	}
	model := *preset
	if model == "" {
		model = "tiny"
	}
	if *checkpoint != "" {
		model = *checkpoint
	}
	// A /start_profile without stages records all three, so that with
	// MAX_ITERS it waits for each of them to record its window.
	defaults := serve.WithProfileDefaults([]int{omni.StageThinker, omni.StageTalker, omni.StageVocoder},
		map[string]string{"model": model, "handoff": mode, "chunk_frames": strconv.Itoa(*chunk)})
	gate := &requestGate{next: serve.New(prof, serve.WithLogger(log), defaults,
		serve.WithEndpoint("POST /v1/generate", serve.OmniGenerate(eng)))}
	// Requests live under base, cancelled when a drain runs out of time.
	base, cutOff := context.WithCancel(context.WithoutCancel(ctx))
	defer cutOff()
	hs := &http.Server{Handler: gate, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return base }}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	url := "http://" + curlHost(ln.Addr())
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	fmt.Fprintf(stdout, "engine: %s, %s hand-off, %d-frame vocoder chunks, batches of up to %d; profiles go to %s\n",
		model, mode, *chunk, *maxBatch, *profileDir)
	fmt.Fprintf(stdout, "  curl -s %s/v1/generate -d '{\"prompt\":\"Hello!\",\"max_tokens\":32}'\n", url)
	fmt.Fprintf(stdout, "  curl -sN %s/v1/generate -d '{\"prompt\":\"Hello!\",\"max_tokens\":32,\"stream\":true}'\n", url)
	fmt.Fprintf(stdout, "  curl -s -X POST %s/start_profile -d '{\"stages\":[0,1,2]}'\n", url)
	fmt.Fprintf(stdout, "  curl -s -X POST %s/stop_profile\n", url)

	code, serving := 0, true
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "shutting down")
	case err := <-served:
		code, serving = fail(fmt.Errorf("serving: %w", err)), false
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serveShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "omniflow serve: requests still running after %v are cut off\n", serveShutdownTimeout)
		cutOff()
		hs.Close()
	}
	if serving {
		<-served // http.ErrServerClosed
	}
	gate.closeAndWait() // no handler outlives serveMain

	// The requests are done: a profile still running has them all.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serveShutdownTimeout)
	defer cancel()
	pr, err := prof.Stop(stopCtx)
	switch {
	case errors.Is(err, profiler.ErrNotStarted):
	case err != nil:
		code = fail(fmt.Errorf("stopping the profile: %w", err))
	default:
		fmt.Fprintf(stdout, "profile: %s (%d events, %d dropped, stopped by %s)\n", pr.Dir, pr.Events, pr.Dropped, pr.Reason)
	}
	if err := eng.Close(stopCtx); err != nil {
		code = fail(fmt.Errorf("closing the engine: %w", err))
	}
	return code
}

// curlHost is addr as a client reaches it: an unspecified host (":8000",
// "0.0.0.0:8000") is localhost.
func curlHost(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// requestGate counts the handlers running so that shutdown can wait for
// every one of them, even those a timed-out drain cut off (http.Server's
// Close does not wait for its handlers); once closed it turns new
// requests away.
type requestGate struct {
	next    http.Handler
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

func (g *requestGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	g.running.Add(1)
	g.mu.Unlock()
	defer g.running.Done()
	g.next.ServeHTTP(w, r)
}

func (g *requestGate) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.running.Wait()
}
