package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/serve"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

// lockedBuffer is a bytes.Buffer safe to write from serveMain while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveEnv sets the profiler's variables for the test: dir as
// OMNIFLOW_PROFILER_DIR, the others unset.
func serveEnv(t *testing.T, dir string) {
	t.Helper()
	for _, v := range []string{"VLLM_TORCH_PROFILER_DIR", "OMNIFLOW_PROFILER_MAX_ITERS", "VLLM_PROFILER_MAX_ITERS",
		"OMNIFLOW_PROFILER_DELAY_ITERS", "VLLM_PROFILER_DELAY_ITERS", "OMNIFLOW_PROFILER_RECORD_SHAPES",
		"VLLM_TORCH_PROFILER_RECORD_SHAPES", "OMNIFLOW_PROFILER_MAX_EVENTS"} {
		t.Setenv(v, "")
	}
	t.Setenv("OMNIFLOW_PROFILER_DIR", dir)
}

var listeningRE = regexp.MustCompile(`listening on (http://\S+)\n`)

// TestServe runs "omniflow serve" on a free port: health, a generation
// and a stream, a profile started and stopped over HTTP, a second one
// left running — which the interrupt stops, so its files are complete —
// and nothing left running after serveMain returns.
func TestServe(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	serveEnv(t, dir)
	t.Setenv("VLLM_TORCH_PROFILER_DIR", filepath.Join(dir, "not-this-one")) // OMNIFLOW_ wins
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- serveMain(ctx, []string{"--addr", "127.0.0.1:0", "--streaming", "--chunk_frames", "6", "--max_batch", "4"}, &stdout, &stderr)
	}()
	var base string
	for deadline := time.Now().Add(time.Minute); base == ""; {
		if m := listeningRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case code := <-exit:
			t.Fatalf("exit %d before listening: %s%s", code, stdout.String(), stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			<-exit
			t.Fatalf("not listening after a minute: %s%s", stdout.String(), stderr.String())
		}
	}
	for _, want := range []string{base + "/v1/generate -d '{\"prompt\"", base + "/start_profile", base + "/stop_profile", "profiles go to " + dir} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	call := func(method, path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	if code, body := call("GET", "/health", ""); code != 200 || body != "ok\n" {
		t.Fatalf("health: %d %q", code, body)
	}
	if code, body := call("POST", "/start_profile", `{"name":"first"}`); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	code, body := call("POST", "/v1/generate", `{"prompt":"Hello!","max_tokens":5,"ignore_eos":true}`, "X-Request-Id", "cli-1")
	var res serve.OmniResponse
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || res.ID != "cli-1" || res.CompletionTokens != 5 || res.AudioSeconds <= 0 {
		t.Fatalf("generate: %d %s (%v)", code, body, err)
	}
	code, body = call("POST", "/stop_profile", "")
	var stop serve.StopResponse
	if err := json.Unmarshal([]byte(body), &stop); code != 200 || err != nil || !strings.HasPrefix(stop.Dir, dir) {
		t.Fatalf("stop: %d %s (%v)", code, body, err)
	}
	for _, f := range stop.Files {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	traceHas(t, filepath.Join(stop.Dir, chrome.DefaultFileName), "cli-1")

	// A second profile, left running: the interrupt completes it.
	if code, body := call("POST", "/start_profile", `{"name":"second","stages":[0,2]}`); code != 200 {
		t.Fatalf("second start: %d %s", code, body)
	}
	code, body = call("POST", "/v1/generate", `{"prompt":"again","max_tokens":4,"stream":true}`, "X-Request-Id", "cli-2")
	if lines := strings.Split(strings.TrimSpace(body), "\n"); code != 200 || len(lines) < 2 || !strings.Contains(lines[len(lines)-1], `"done":true`) {
		t.Fatalf("stream: %d %s", code, body)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("serveMain still running a minute after the interrupt")
	}
	m := regexp.MustCompile(`profile: (\S+) \(\d+ events`).FindStringSubmatch(stdout.String())
	if m == nil || !strings.HasPrefix(m[1], dir) || m[1] == stop.Dir {
		t.Fatalf("no second profile folder in stdout:\n%s", stdout.String())
	}
	traceHas(t, filepath.Join(m[1], chrome.DefaultFileName), "cli-2")
	if stderr.String() != "" {
		t.Errorf("stderr: %s", stderr.String())
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(base, "http://")); err == nil {
		t.Error("still listening after exit")
	}
}

// traceHas checks that the trace at path is complete and follows request
// id from stage to stage.
func traceHas(t *testing.T, path, id string) {
	t.Helper()
	tr := chrometest.Validate(t, path)
	if !slices.ContainsFunc(tr.Flows, func(f chrometest.Flow) bool { return f.Name == "request "+id }) {
		t.Errorf("%s: no flow arrows for request %s", path, id)
	}
}

// TestServeCommandLine: -h prints the usage; a bad flag or environment is
// exit 2 naming it; an address in use is exit 1 naming it.
func TestServeCommandLine(t *testing.T) {
	serveEnv(t, "")
	var out, errb bytes.Buffer
	if code := serveMain(context.Background(), []string{"-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage: omniflow serve") ||
		!strings.Contains(out.String(), "--profile_dir DIR") {
		t.Fatalf("-h: exit %d, stdout %q", code, out.String())
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--nope"}, "", "-nope"},
		{[]string{"--chunk_frames", "0"}, "", "--chunk_frames 0"},
		{[]string{"--chunk_frames", "x"}, "", "-chunk_frames"},
		{[]string{"--max_batch", "-1"}, "", "--max_batch -1"},
		{[]string{"--preset", "huge"}, "", `--preset "huge"`},
		{[]string{"--addr", ""}, "", "--addr is empty"},
		{[]string{"--profile_dir", ""}, "", "--profile_dir is empty"},
		{[]string{"--weights_seed", "-3"}, "", "-weights_seed"},
		{[]string{"serve"}, "", "unexpected arguments"},
		{nil, "many", `VLLM_PROFILER_MAX_ITERS="many"`},
	} {
		t.Setenv("VLLM_PROFILER_MAX_ITERS", tc.env)
		out.Reset()
		errb.Reset()
		if code := serveMain(context.Background(), tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) ||
			!strings.Contains(errb.String(), "Usage: omniflow serve") {
			t.Errorf("%q (MAX_ITERS %q): exit %d, stderr %s", tc.args, tc.env, code, errb.String())
		}
	}
	t.Setenv("VLLM_PROFILER_MAX_ITERS", "")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errb.Reset()
	if code := serveMain(context.Background(), []string{"--addr", ln.Addr().String(), "--profile_dir", t.TempDir()}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), ln.Addr().String()) || !strings.Contains(errb.String(), "address already in use") {
		t.Errorf("busy address: exit %d, stderr %s", code, errb.String())
	}
}

// TestServeUsageLines: every flag the command parses is in its usage.
func TestServeUsageLines(t *testing.T) {
	serveEnv(t, "")
	var out, errb bytes.Buffer
	serveMain(context.Background(), []string{"--help"}, &out, &errb)
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	flags := map[string]bool{}
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasPrefix(f[0], "--") {
			flags[f[0]] = true
		}
	}
	for _, f := range []string{"--addr", "--preset", "--checkpoint", "--streaming", "--chunk_frames", "--max_batch", "--weights_seed", "--profile_dir"} {
		if !flags[f] {
			t.Errorf("usage lacks %s:\n%s", f, out.String())
		}
	}
}

// TestServeCutsOffLongRequests: a stream still running when the drain
// runs out of time is cut off, and serveMain returns with nothing of it
// left running.
func TestServeCutsOffLongRequests(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	serveEnv(t, t.TempDir())
	defer func(d time.Duration) { serveShutdownTimeout = d }(serveShutdownTimeout)
	serveShutdownTimeout = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	exit := make(chan int, 1)
	go func() { exit <- serveMain(ctx, []string{"--addr", "127.0.0.1:0"}, &stdout, &stderr) }()
	var base string
	for deadline := time.Now().Add(time.Minute); base == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := listeningRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("exit %d, not listening: %s%s", <-exit, stdout.String(), stderr.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post(base+"/v1/generate", "application/json",
		strings.NewReader(`{"prompt":"go on","max_tokens":3000,"ignore_eos":true,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("serveMain still running a minute after the interrupt")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("shutdown took %v", el)
	}
	if !strings.Contains(stderr.String(), "cut off") {
		t.Errorf("stderr: %q", stderr.String())
	}
	rest, _ := io.ReadAll(br)
	if strings.Contains(string(rest), `"done":true`) {
		t.Error("the cut-off stream finished anyway")
	}
}
