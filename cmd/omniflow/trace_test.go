package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

// pytorchTrace is shaped like a PyTorch profiler trace (object form, extra
// top-level keys, cpu_op "X" events nested on one thread, a GPU stream
// thread, metadata, a flow, an instant, a counter, and one B/E pair around
// everything). Times are µs after an epoch base, as Kineto writes them.
//
// Thread 4242/4242 (µs):
//
//	ProfilerStep#1 [90, 250]            B/E
//	  aten::linear [100, 150]
//	    aten::t     [102, 106]
//	    aten::addmm [110, 140]  flops 6e6
//	      aten::empty [111, 112]
//	  aten::relu   [160, 170]
//	  aten::linear [200, 240]
//	    aten::t     [201, 204]
//	    aten::addmm [205, 235]  flops 6e6
//
// Stream 0/7: sgemm [130, 138] and [220, 228].
const pytorchTrace = `{
  "schemaVersion": 1,
  "deviceProperties": [{"id": 0, "name": "NVIDIA H100"}],
  "traceEvents": [
    {"ph": "M", "name": "process_name", "pid": 4242, "tid": 0, "ts": 1700000000000000, "args": {"name": "python3"}},
    {"ph": "M", "name": "thread_name", "pid": 4242, "tid": 4242, "ts": 1700000000000000, "args": {"name": "thread 4242 (python3)"}},
    {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "ts": 1700000000000000, "args": {"name": "GPU 0"}},
    {"ph": "B", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 4242, "tid": 4242, "ts": 1700000000000090.000},
    {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "pid": 4242, "tid": 4242, "ts": 1700000000000100.000, "dur": 50.000,
     "args": {"External id": 1, "Input Dims": [[8, 512], [1024, 512], [1024]], "Input type": ["float", "float", "float"]}},
    {"ph": "X", "cat": "cpu_op", "name": "aten::t", "pid": 4242, "tid": 4242, "ts": 1700000000000102.000, "dur": 4.000, "args": {"External id": 2}},
    {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "pid": 4242, "tid": 4242, "ts": 1700000000000110.000, "dur": 30.000,
     "args": {"External id": 3, "flops": 6000000}},
    {"ph": "X", "cat": "cpu_op", "name": "aten::empty", "pid": 4242, "tid": 4242, "ts": 1700000000000111.000, "dur": 1.000, "args": {"External id": 4}},
    {"ph": "s", "id": 3, "pid": 4242, "tid": 4242, "ts": 1700000000000111.000, "cat": "ac2g", "name": "ac2g"},
    {"ph": "X", "cat": "kernel", "name": "sgemm", "pid": 0, "tid": 7, "ts": 1700000000000130.000, "dur": 8.000, "args": {"stream": 7, "correlation": 3}},
    {"ph": "f", "id": 3, "pid": 0, "tid": 7, "ts": 1700000000000130.000, "cat": "ac2g", "name": "ac2g", "bp": "e"},
    {"ph": "X", "cat": "cpu_op", "name": "aten::relu", "pid": 4242, "tid": 4242, "ts": 1700000000000160.000, "dur": 10.000},
    {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "pid": 4242, "tid": 4242, "ts": 1700000000000200.000, "dur": 40.000},
    {"ph": "X", "cat": "cpu_op", "name": "aten::t", "pid": 4242, "tid": 4242, "ts": 1700000000000201.000, "dur": 3.000},
    {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "pid": 4242, "tid": 4242, "ts": 1700000000000205.000, "dur": 30.000, "args": {"flops": 6000000}},
    {"ph": "X", "cat": "kernel", "name": "sgemm", "pid": 0, "tid": 7, "ts": 1700000000000220.000, "dur": 8.000},
    {"ph": "i", "s": "t", "name": "mark", "pid": 4242, "tid": 4242, "ts": 1700000000000245.000},
    {"ph": "C", "name": "memory", "pid": 4242, "tid": 4242, "ts": 1700000000000246.000, "args": {"allocated": 1024}},
    {"ph": "E", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 4242, "tid": 4242, "ts": 1700000000000250.000}
  ],
  "traceName": "worker0.pt.trace.json",
  "displayTimeUnit": "ms"
}`

type row = summaryRowJSON

func runTrace(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = realMain(context.Background(), append([]string{"trace"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, content string, compress bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	data := []byte(content)
	if compress {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func decodeRows(t *testing.T, s string) []row {
	t.Helper()
	var rows []row
	if err := json.Unmarshal([]byte(s), &rows); err != nil {
		t.Fatalf("--json output is not a JSON array: %v\n%s", err, s)
	}
	return rows
}

func TestSummarizePyTorchTrace(t *testing.T) {
	us := int64(time.Microsecond)
	// Worked out by hand from the tree in pytorchTrace's comment: self =
	// duration minus the direct children's durations on the same thread.
	want := map[string]row{
		"ProfilerStep#1": {Cat: "user_annotation", Calls: 1, TotalNS: 160 * us, SelfNS: (160 - 50 - 10 - 40) * us},
		"aten::linear":   {Cat: "cpu_op", Calls: 2, TotalNS: 90 * us, SelfNS: (50 - 4 - 30 + 40 - 3 - 30) * us},
		"aten::addmm":    {Cat: "cpu_op", Calls: 2, TotalNS: 60 * us, SelfNS: (30 - 1 + 30) * us, Flops: 12e6},
		"aten::t":        {Cat: "cpu_op", Calls: 2, TotalNS: 7 * us, SelfNS: 7 * us},
		"aten::empty":    {Cat: "cpu_op", Calls: 1, TotalNS: 1 * us, SelfNS: 1 * us},
		"aten::relu":     {Cat: "cpu_op", Calls: 1, TotalNS: 10 * us, SelfNS: 10 * us},
		"sgemm":          {Cat: "kernel", Calls: 2, TotalNS: 16 * us, SelfNS: 16 * us},
	}
	const selfTotal = (60 + 23 + 59 + 7 + 1 + 10 + 16) * 1000
	for _, compress := range []bool{false, true} {
		path := writeFile(t, "worker0.pt.trace.json", pytorchTrace, compress)
		code, out, errs := runTrace(t, "summarize", "--json", path)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		rows := decodeRows(t, out)
		if len(rows) != len(want) {
			t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
		}
		for _, r := range rows {
			w, ok := want[r.Name]
			if !ok || r.Cat != w.Cat || r.Calls != w.Calls || r.TotalNS != w.TotalNS || r.SelfNS != w.SelfNS || r.Flops != w.Flops {
				t.Errorf("%s: got %+v, want %+v", r.Name, r, w)
			}
			if want := float64(r.SelfNS) / selfTotal; r.Share < want-1e-12 || r.Share > want+1e-12 {
				t.Errorf("%s: share %v, want %v", r.Name, r.Share, want)
			}
		}
		// Sorted by self time: the step (60 µs) before addmm (59 µs).
		if rows[0].Name != "ProfilerStep#1" || rows[1].Name != "aten::addmm" {
			t.Errorf("order: %s, %s", rows[0].Name, rows[1].Name)
		}
		for _, r := range rows {
			if r.Name == "aten::addmm" && (r.GFLOPS < 199.999 || r.GFLOPS > 200.001) { // 12e6 FLOP in 60 µs
				t.Errorf("addmm GFLOP/s %v, want 200", r.GFLOPS)
			}
		}
	}

	path := writeFile(t, "worker0.pt.trace.json.gz", pytorchTrace, true)
	code, out, errs := runTrace(t, "summarize", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, s := range []string{"11 spans, wall 0.160 ms, self total 0.176 ms", "ProfilerStep#1", "aten::addmm", "200.00", "34.1%"} {
		if !strings.Contains(out, s) {
			t.Errorf("text output lacks %q:\n%s", s, out)
		}
	}
}

func TestSummarizeFlags(t *testing.T) {
	path := writeFile(t, "t.json", pytorchTrace, false)
	names := func(out string) []string {
		var n []string
		for _, r := range decodeRows(t, out) {
			n = append(n, r.Name)
		}
		return n
	}
	tests := []struct {
		args []string
		want string
	}{
		// Ties keep the summary's order: self time, largest first.
		{[]string{"--sort", "calls", "--top", "3"}, "[aten::addmm aten::linear sgemm]"},
		{[]string{"--sort=total", "--top=2"}, "[ProfilerStep#1 aten::linear]"},
		{[]string{"--sort", "mean", "--top", "1"}, "[ProfilerStep#1]"},
		{[]string{"--cat", "kernel"}, "[sgemm]"},
		{[]string{"--cat", "kernel, user_annotation"}, "[ProfilerStep#1 sgemm]"},
		{[]string{"--cat", "nothing"}, "[]"},
		{[]string{"--top", "0", "--cat", "cpu_op"}, "[aten::addmm aten::linear aten::relu aten::t aten::empty]"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			// Flags after FILE work as well as before it.
			for _, args := range [][]string{append(append([]string{"summarize", "--json"}, tt.args...), path), append([]string{"summarize", path, "--json"}, tt.args...)} {
				code, out, errs := runTrace(t, args...)
				if code != 0 {
					t.Fatalf("%v: exit %d: %s", args, code, errs)
				}
				if got := strings.Join(names(out), " "); "["+got+"]" != tt.want {
					t.Errorf("%v: rows [%s], want %s", args, got, tt.want)
				}
			}
		})
	}
	code, out, _ := runTrace(t, "summarize", "--top", "2", path)
	if code != 0 || !strings.Contains(out, "2 of 7 rows; --top 0 prints them all") {
		t.Errorf("text with --top: exit %d\n%s", code, out)
	}
}

func TestTraceCommandLine(t *testing.T) {
	good := writeFile(t, "t.json", pytorchTrace, false)
	bad := writeFile(t, "bad.json", `{"traceEvents":[{"ph":"X","ts":"soon","dur":1}]}`, false)
	truncated := writeFile(t, "trunc.json.gz", pytorchTrace[:len(pytorchTrace)/2], true)
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    string
		stderr    string
		noStdout  bool
		noStderr  bool
		useRealMn bool
	}{
		{name: "no subcommand", args: nil, code: 2, stderr: "Usage: omniflow trace", noStdout: true},
		{name: "help", args: []string{"-h"}, code: 0, stdout: "summarize FILE", noStderr: true},
		{name: "help via omniflow help", args: []string{"help", "trace"}, code: 0, stdout: "summarize FILE", noStderr: true, useRealMn: true},
		{name: "unknown subcommand", args: []string{"diffs"}, code: 2, stderr: `unknown subcommand "diffs"`, noStdout: true},
		{name: "summarize help", args: []string{"summarize", "-h"}, code: 0, stdout: "--sort KEY", noStderr: true},
		{name: "summarize --help after file", args: []string{"summarize", good, "--help"}, code: 0, stdout: "--top N", noStderr: true},
		{name: "missing FILE", args: []string{"summarize"}, code: 2, stderr: "missing FILE", noStdout: true},
		{name: "two files", args: []string{"summarize", good, good}, code: 2, stderr: "one FILE at a time", noStdout: true},
		{name: "bad flag", args: []string{"summarize", "--bogus", good}, code: 2, stderr: "flag provided but not defined: -bogus", noStdout: true},
		{name: "bad top", args: []string{"summarize", "--top", "x", good}, code: 2, stderr: `invalid value "x" for flag -top`, noStdout: true},
		{name: "negative top", args: []string{"summarize", "--top", "-1", good}, code: 2, stderr: "--top -1", noStdout: true},
		{name: "bad sort", args: []string{"summarize", "--sort", "name", good}, code: 2, stderr: `--sort "name": want self, total, calls or mean`, noStdout: true},
		{name: "missing file", args: []string{"summarize", "/nonexistent/trace.json"}, code: 1, stderr: "no such file", noStdout: true},
		{name: "malformed file", args: []string{"summarize", bad}, code: 1, stderr: `trace event 0 (byte offset 16): ts is the string "soon"`, noStdout: true},
		{name: "truncated file", args: []string{"summarize", truncated}, code: 1, stderr: "unexpected end of input", noStdout: true},
		{name: "file after --", args: []string{"summarize", "--json", "--", good}, code: 0, stdout: `"name": "sgemm"`, noStderr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var code int
			var out, errs string
			if tt.useRealMn {
				var o, e bytes.Buffer
				code = realMain(context.Background(), tt.args, &o, &e)
				out, errs = o.String(), e.String()
			} else {
				code, out, errs = runTrace(t, tt.args...)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			if !strings.Contains(out, tt.stdout) || !strings.Contains(errs, tt.stderr) {
				t.Errorf("stdout %q\nstderr %q\nwant %q and %q", out, errs, tt.stdout, tt.stderr)
			}
			if (tt.noStdout && out != "") || (tt.noStderr && errs != "") {
				t.Errorf("unexpected output: stdout %q stderr %q", out, errs)
			}
		})
	}
}

// TestSummarizeOurTrace summarizes a trace our sink wrote and checks the
// numbers against the profiler's own summary of the same session.
func TestSummarizeOurTrace(t *testing.T) {
	ctx := context.Background()
	p, err := profiler.New(profiler.WithDir(t.TempDir()), profiler.WithSink(chrome.New()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, req := range []string{"a", "b"} {
		for stage, name := range []string{"encode", "denoise", "decode"} {
			actx, act := p.Enter(ctx, profiler.Track{Stage: stage, StageName: name, Request: req}, name)
			for i := 0; i < 3; i++ {
				sctx, st := profiler.Step(actx, "step")
				_, k := profiler.StartKind(sctx, profiler.KindKernel, "matmul", profiler.Int("flops", 1<<20))
				busy(10 * time.Microsecond)
				k.End()
				st.End()
			}
			act.End(nil)
		}
	}
	res, err := p.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runTrace(t, "summarize", "--json", "--top", "0", filepath.Join(res.Dir, chrome.DefaultFileName))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rows := decodeRows(t, out)
	if len(rows) != len(res.Summary.Rows) {
		t.Fatalf("%d rows, profiler has %d", len(rows), len(res.Summary.Rows))
	}
	for i, r := range rows {
		w := res.Summary.Rows[i]
		if r.Cat != w.Cat || r.Name != w.Name || r.Calls != w.Calls || r.TotalNS != int64(w.Total) || r.SelfNS != int64(w.Self) || r.Flops != w.Flops {
			t.Errorf("row %d: %+v, profiler %+v", i, r, w)
		}
	}
	calls := map[string]int{}
	for _, r := range rows {
		calls[r.Cat+"/"+r.Name] = r.Calls
	}
	if calls["kernel/matmul"] != 18 || calls["iteration/step"] != 18 || calls["operator/denoise"] != 2 {
		t.Errorf("calls %v", calls)
	}
}

func busy(d time.Duration) {
	for t := time.Now(); time.Since(t) < d; {
	}
}
