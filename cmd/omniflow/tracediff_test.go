package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

// diffTraceA and diffTraceB are two runs of one step on one thread, times
// in µs:
//
//	A: step [0, 100]          B: step [0, 90]
//	     matmul [10, 40]           matmul [10, 30]
//	     relu   [50, 60]           matmul [40, 50]
//	     old    [70, 75]           relu   [55, 75]
//	                               fresh  [80, 88]
//
// Self times (duration minus the nested spans'), A → B:
// step 55 → 32, matmul 30 → 30 (1 call → 2), relu 10 → 20,
// old 5 → none, fresh none → 8. Self totals 100 and 90.
const diffTraceA = `{"traceEvents": [
  {"ph": "X", "cat": "operator", "name": "step", "pid": 1, "tid": 1, "ts": 0, "dur": 100},
  {"ph": "X", "cat": "kernel", "name": "matmul", "pid": 1, "tid": 1, "ts": 10, "dur": 30},
  {"ph": "X", "cat": "kernel", "name": "relu", "pid": 1, "tid": 1, "ts": 50, "dur": 10},
  {"ph": "X", "cat": "kernel", "name": "old", "pid": 1, "tid": 1, "ts": 70, "dur": 5}
]}`

// diffTraceB is in the array form, to join traces of both forms.
const diffTraceB = `[
  {"ph": "X", "cat": "operator", "name": "step", "pid": 1, "tid": 1, "ts": 0, "dur": 90},
  {"ph": "X", "cat": "kernel", "name": "matmul", "pid": 1, "tid": 1, "ts": 10, "dur": 20},
  {"ph": "X", "cat": "kernel", "name": "matmul", "pid": 1, "tid": 1, "ts": 40, "dur": 10},
  {"ph": "X", "cat": "kernel", "name": "relu", "pid": 1, "tid": 1, "ts": 55, "dur": 20},
  {"ph": "X", "cat": "kernel", "name": "fresh", "pid": 1, "tid": 1, "ts": 80, "dur": 8}
]`

func diffFiles(t *testing.T) (a, b string) {
	t.Helper()
	return writeFile(t, "a.json", diffTraceA, false), writeFile(t, "b.json.gz", diffTraceB, true)
}

func decodeDiff(t *testing.T, s string) diffJSON {
	t.Helper()
	var d diffJSON
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("--json output is not a JSON object: %v\n%s", err, s)
	}
	return d
}

// diffKey is a row's name with the calls on each side ("-" for none),
// delta and ratio: one string to compare with the tables below.
func diffKey(r diffRowJSON) string {
	calls := func(s *diffSideJSON) string {
		if s == nil {
			return "-"
		}
		return fmt.Sprint(s.Calls)
	}
	ratio := "-"
	if r.Ratio != nil {
		ratio = fmt.Sprintf("%.4f", *r.Ratio)
	}
	return fmt.Sprintf("%s %s/%s %d %s", r.Name, calls(r.A), calls(r.B), r.Delta, ratio)
}

func TestTraceDiffMetrics(t *testing.T) {
	a, b := diffFiles(t)
	us := int64(time.Microsecond)
	// Worked out by hand from diffTraceA's comment; ratios are B/A, "-"
	// where a side is missing. Ties in |delta| go by category, then name.
	tests := []struct {
		metric string
		unit   string
		want   []string
	}{
		{"self", "ns", []string{
			fmt.Sprintf("step 1/1 %d %.4f", -23*us, 32.0/55),
			fmt.Sprintf("relu 1/1 %d 2.0000", 10*us),
			fmt.Sprintf("fresh -/1 %d -", 8*us),
			fmt.Sprintf("old 1/- %d -", -5*us),
			"matmul 1/2 0 1.0000",
		}},
		{"total", "ns", []string{
			fmt.Sprintf("relu 1/1 %d 2.0000", 10*us), // kernel before operator
			fmt.Sprintf("step 1/1 %d 0.9000", -10*us),
			fmt.Sprintf("fresh -/1 %d -", 8*us),
			fmt.Sprintf("old 1/- %d -", -5*us),
			"matmul 1/2 0 1.0000",
		}},
		{"mean", "ns", []string{
			fmt.Sprintf("matmul 1/2 %d 0.5000", -15*us), // 30 µs → 15 µs a call
			fmt.Sprintf("relu 1/1 %d 2.0000", 10*us),
			fmt.Sprintf("step 1/1 %d 0.9000", -10*us),
			fmt.Sprintf("fresh -/1 %d -", 8*us),
			fmt.Sprintf("old 1/- %d -", -5*us),
		}},
		{"calls", "calls", []string{
			"fresh -/1 1 -",
			"matmul 1/2 1 2.0000",
			"old 1/- -1 -",
			"relu 1/1 0 1.0000",
			"step 1/1 0 1.0000",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			code, out, errs := runTrace(t, "diff", "--json", "--metric", tt.metric, a, b)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			d := decodeDiff(t, out)
			if d.Metric != tt.metric || d.Unit != tt.unit {
				t.Errorf("metric %q unit %q, want %q %q", d.Metric, d.Unit, tt.metric, tt.unit)
			}
			var got []string
			for _, r := range d.Rows {
				got = append(got, diffKey(r))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestTraceDiffJSON(t *testing.T) {
	a, b := diffFiles(t)
	us := int64(time.Microsecond)
	code, out, errs := runTrace(t, "diff", a, "--json", b) // flags between the files work too
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	d := decodeDiff(t, out)
	wantA := diffFileJSON{File: a, Spans: 4, WallNS: 100 * us, SelfTotalNS: 100 * us}
	wantB := diffFileJSON{File: b, Spans: 5, WallNS: 90 * us, SelfTotalNS: 90 * us}
	if d.A != wantA || d.B != wantB {
		t.Errorf("headers %+v %+v, want %+v %+v", d.A, d.B, wantA, wantB)
	}
	rows := map[string]diffRowJSON{}
	for _, r := range d.Rows {
		rows[r.Cat+"/"+r.Name] = r
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5: %s", len(rows), out)
	}
	// Every metric of both sides is there, whichever --metric sorts.
	mm := rows["kernel/matmul"]
	if mm.A == nil || mm.B == nil ||
		*mm.A != (diffSideJSON{Calls: 1, TotalNS: 30 * us, SelfNS: 30 * us, MeanNS: 30 * us}) ||
		*mm.B != (diffSideJSON{Calls: 2, TotalNS: 30 * us, SelfNS: 30 * us, MeanNS: 15 * us}) {
		t.Errorf("matmul %+v %+v", mm.A, mm.B)
	}
	if r := rows["kernel/old"]; r.A == nil || r.B != nil || r.Ratio != nil || r.A.SelfNS != 5*us || r.Delta != -5*us {
		t.Errorf("old (A only): %+v", r)
	}
	if r := rows["kernel/fresh"]; r.A != nil || r.B == nil || r.Ratio != nil || r.B.SelfNS != 8*us || r.Delta != 8*us {
		t.Errorf("fresh (B only): %+v", r)
	}
	// Missing sides are null, not zero, so that no row looks like it ran
	// in 0 ns.
	if !strings.Contains(out, `"a": null`) || !strings.Contains(out, `"b": null`) || !strings.Contains(out, `"ratio": null`) {
		t.Errorf("missing sides are not null:\n%s", out)
	}
}

func TestTraceDiffFlags(t *testing.T) {
	a, b := diffFiles(t)
	names := func(out string) string {
		var n []string
		for _, r := range decodeDiff(t, out).Rows {
			n = append(n, r.Name)
		}
		return "[" + strings.Join(n, " ") + "]"
	}
	tests := []struct {
		args []string
		want string
	}{
		{nil, "[step relu fresh old matmul]"},
		{[]string{"--top", "2"}, "[step relu]"},
		{[]string{"--top=0"}, "[step relu fresh old matmul]"},
		{[]string{"--cat", "kernel"}, "[relu fresh old matmul]"},
		{[]string{"--cat", "operator, kernel", "--top", "3"}, "[step relu fresh]"},
		{[]string{"--cat", "nothing"}, "[]"},
		{[]string{"--metric=calls", "--top", "3"}, "[fresh matmul old]"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for _, args := range [][]string{
				append(append([]string{"diff", "--json"}, tt.args...), a, b),
				append([]string{"diff", a, b, "--json"}, tt.args...),
			} {
				code, out, errs := runTrace(t, args...)
				if code != 0 {
					t.Fatalf("%v: exit %d: %s", args, code, errs)
				}
				if got := names(out); got != tt.want {
					t.Errorf("%v: rows %s, want %s", args, got, tt.want)
				}
			}
		})
	}
}

func TestTraceDiffText(t *testing.T) {
	a, b := diffFiles(t)
	code, out, errs := runTrace(t, "diff", "--top", "4", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(out, "\n")
	want := []string{
		"A " + a + ": 4 spans, self total 0.100 ms (hand-offs excluded)",
		"B " + b + ": 5 spans, self total 0.090 ms (-0.010 ms, 0.90x)",
		"",
	}
	if len(lines) < len(want) || strings.Join(lines[:len(want)], "\n") != strings.Join(want, "\n") {
		t.Fatalf("header:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	// Rows in order of |delta|; "-" stands for the missing side.
	rowWords := [][]string{
		{"kind", "name", "calls", "A", "calls", "B", "self", "A", "ms", "self", "B", "ms", "delta", "ms", "ratio"},
		{"operator", "step", "1", "1", "0.055", "0.032", "-0.023", "0.58x"},
		{"kernel", "relu", "1", "1", "0.010", "0.020", "+0.010", "2.00x"},
		{"kernel", "fresh", "-", "1", "-", "0.008", "+0.008", "-"},
		{"kernel", "old", "1", "-", "0.005", "-", "-0.005", "-"},
	}
	for i, w := range rowWords {
		if got := strings.Fields(lines[len(want)+i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d: %q, want %q", len(want)+i, got, w)
		}
	}
	if !strings.Contains(out, "\n4 of 5 rows; --top 0 prints them all\n") {
		t.Errorf("no --top note:\n%s", out)
	}

	code, out, _ = runTrace(t, "diff", "--metric", "calls", a, b)
	if code != 0 || !strings.Contains(out, "calls A  calls B  delta  ratio") || strings.Contains(out, "rows; --top") {
		t.Errorf("--metric calls: exit %d\n%s", code, out)
	}
	if f := strings.Fields(strings.Split(out, "\n")[4]); strings.Join(f, " ") != "kernel fresh - 1 +1 -" {
		t.Errorf("--metric calls first row %q", f)
	}
}

func TestTraceDiffCommandLine(t *testing.T) {
	a, b := diffFiles(t)
	corrupt := writeFile(t, "corrupt.json", `{"traceEvents":[{"ph":"X","name":"k","ts":1,"dur":`, false)
	notTrace := writeFile(t, "bad.json", `{"traceEvents":[{"ph":"X","ts":"soon","dur":1}]}`, false)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "trace help lists diff", args: []string{"-h"}, code: 0, stdout: "diff BASE NEW"},
		{name: "help", args: []string{"diff", "-h"}, code: 0, stdout: "Usage: omniflow trace diff [flags] BASE NEW"},
		{name: "help after files", args: []string{"diff", a, b, "--help"}, code: 0, stdout: "--metric M"},
		{name: "no files", args: []string{"diff"}, code: 2, stderr: "want two files, BASE and NEW; got 0"},
		{name: "one file", args: []string{"diff", a}, code: 2, stderr: "want two files, BASE and NEW; got 1: " + a},
		{name: "three files", args: []string{"diff", a, b, a}, code: 2, stderr: "got 3"},
		{name: "unknown flag", args: []string{"diff", "--sort", "self", a, b}, code: 2, stderr: "flag provided but not defined: -sort"},
		{name: "unknown metric", args: []string{"diff", "--metric", "share", a, b}, code: 2, stderr: `--metric "share": want self, total, mean or calls`},
		{name: "bad top", args: []string{"diff", "--top", "x", a, b}, code: 2, stderr: `invalid value "x" for flag -top`},
		{name: "negative top", args: []string{"diff", "--top", "-3", a, b}, code: 2, stderr: "--top -3"},
		{name: "missing BASE", args: []string{"diff", "/nonexistent/a.json", b}, code: 1, stderr: "/nonexistent/a.json: no such file"},
		{name: "corrupt NEW", args: []string{"diff", a, corrupt}, code: 1, stderr: corrupt + ": "},
		{name: "malformed BASE", args: []string{"diff", "--json", notTrace, b}, code: 1, stderr: notTrace + `: chrome: trace event 0 (byte offset 16): ts is the string "soon"`},
		{name: "files after --", args: []string{"diff", "--json", "--", a, b}, code: 0, stdout: `"name": "fresh"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runTrace(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			// Output goes to one stream only: help and results to stdout,
			// mistakes to stderr.
			if tt.code == 0 && (!strings.Contains(out, tt.stdout) || errs != "") {
				t.Errorf("stdout %q\nstderr %q\nwant stdout to hold %q", out, errs, tt.stdout)
			}
			if tt.code != 0 && (!strings.Contains(errs, tt.stderr) || out != "") {
				t.Errorf("stdout %q\nstderr %q\nwant stderr to hold %q", out, errs, tt.stderr)
			}
			if tt.code == 2 && !strings.Contains(errs, diffUsageText) {
				t.Errorf("a command-line mistake does not print the usage:\n%s", errs)
			}
		})
	}
}

// TestTraceDiffOurTraces diffs traces our sink wrote: a session against
// itself changes nothing, and a session with one more kernel shows it on
// the new side only.
func TestTraceDiffOurTraces(t *testing.T) {
	session := func(extra bool) string {
		ctx := context.Background()
		p, err := profiler.New(profiler.WithDir(t.TempDir()), profiler.WithSink(chrome.New()))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		actx, act := p.Enter(ctx, profiler.Track{Stage: 0, StageName: "denoise", Request: "a"}, "denoise")
		for i := 0; i < 3; i++ {
			sctx, st := profiler.Step(actx, "step")
			_, k := profiler.StartKind(sctx, profiler.KindKernel, "matmul")
			busy(10 * time.Microsecond)
			k.End()
			if extra {
				_, k := profiler.StartKind(sctx, profiler.KindKernel, "softmax")
				busy(10 * time.Microsecond)
				k.End()
			}
			st.End()
		}
		act.End(nil)
		res, err := p.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(res.Dir, chrome.DefaultFileName)
	}
	base, more := session(false), session(true)

	code, out, errs := runTrace(t, "diff", "--json", "--top", "0", base, base)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	d := decodeDiff(t, out)
	if len(d.Rows) == 0 || d.A.Spans != d.B.Spans || d.A.SelfTotalNS != d.B.SelfTotalNS {
		t.Fatalf("self-diff: %s", out)
	}
	for _, r := range d.Rows {
		if r.A == nil || r.B == nil || *r.A != *r.B || r.Delta != 0 || (r.Ratio != nil && *r.Ratio != 1) {
			t.Errorf("self-diff row %+v", r)
		}
	}

	code, out, errs = runTrace(t, "diff", "--json", "--cat", "kernel", "--metric", "calls", base, more)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	d = decodeDiff(t, out)
	if len(d.Rows) != 2 {
		t.Fatalf("kernel rows: %s", out)
	}
	if got := diffKey(d.Rows[0]) + ", " + diffKey(d.Rows[1]); got != "softmax -/3 3 -, matmul 3/3 0 1.0000" {
		t.Errorf("kernel rows %s", got)
	}
	if d.B.Spans != d.A.Spans+3 {
		t.Errorf("spans %d → %d, want 3 more", d.A.Spans, d.B.Spans)
	}
}
