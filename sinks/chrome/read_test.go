package chrome_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

func gz(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// pytorchTrace is shaped like the PyTorch profiler's output: the object
// form with extra keys, cpu_op "X" events nested on one thread, a GPU
// kernel on a stream thread with a string tid, flops in args, metadata,
// flows and an instant, and one B/E pair. ts values are absolute epoch
// microseconds with three decimals, as Kineto writes them.
const pytorchTrace = `{
  "schemaVersion": 1,
  "deviceProperties": [{"id": 0, "name": "H100", "totalGlobalMem": 85000000000}],
  "distributedInfo": {"backend": "nccl", "rank": 0},
  "traceEvents": [
    {"ph": "M", "name": "process_name", "pid": 4242, "tid": 0, "args": {"name": "python"}},
    {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "pid": 4242, "tid": 4242,
     "ts": 1700000000000100.000, "dur": 50.5, "args": {"External id": 1, "Input Dims": [[2, 3], [4, 3]]}},
    {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "pid": 4242, "tid": 4242,
     "ts": 1700000000000110.250, "dur": 30.25, "args": {"External id": 2, "flops": 48}},
    {"ph": "X", "cat": "cpu_op", "name": "aten::t", "pid": 4242, "tid": 4242,
     "ts": "1700000000000102", "dur": "4", "args": {"External id": 3}},
    {"ph": "X", "cat": "kernel", "name": "sgemm", "pid": 0, "tid": "stream 7",
     "ts": 1700000000000130, "dur": 12, "args": {"FLOPs": 1e6, "bytes": 2048, "stream": 7}},
    {"ph": "s", "id": 2, "pid": 4242, "tid": 4242, "ts": 1700000000000111, "cat": "ac2g", "name": "ac2g"},
    {"ph": "f", "id": 2, "pid": 0, "tid": "stream 7", "ts": 1700000000000130, "cat": "ac2g", "name": "ac2g", "bp": "e"},
    {"ph": "i", "s": "t", "name": "mark", "pid": 4242, "tid": 4242, "ts": 1700000000000200},
    {"ph": "B", "cat": "user_annotation", "name": "step#0", "pid": 4242, "tid": 4243, "ts": 1700000000000000},
    {"ph": "E", "pid": 4242, "tid": 4243, "ts": 1700000000000300.5}
  ],
  "traceName": "worker0.pt.trace.json"
}`

func TestReadIntervals(t *testing.T) {
	const base = int64(1700000000000000) * 1000 // ns
	want := []profiler.Interval{
		{Track: 4242<<32 | 4242, Name: "aten::linear", Cat: "cpu_op", Start: base + 100_000, End: base + 150_500},
		{Track: 4242<<32 | 4242, Name: "aten::addmm", Cat: "cpu_op", Start: base + 110_250, End: base + 140_500, Flops: 48},
		{Track: 4242<<32 | 4242, Name: "aten::t", Cat: "cpu_op", Start: base + 102_000, End: base + 106_000},
		{Track: 1 << 63, Name: "sgemm", Cat: "kernel", Start: base + 130_000, End: base + 142_000, Flops: 1e6, Bytes: 2048},
		{Track: 4242<<32 | 4243, Name: "step#0", Cat: "user_annotation", Start: base, End: base + 300_500},
	}
	for _, tt := range []struct{ name, in string }{{"json", pytorchTrace}, {"gzip", gz(t, pytorchTrace)}} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chrome.ReadIntervals(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d intervals %+v, want %d", len(got), got, len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("interval %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestReadIntervalsForms(t *testing.T) {
	x := `{"ph":"X","name":"a","pid":1,"tid":2,"ts":1,"dur":2}`
	tests := []struct {
		name, in string
		n        int
	}{
		{"bare array", `[` + x + `,` + x + `]`, 2},
		{"bare array without ]", `[` + x + `,` + x, 2},
		{"bare array without ], trailing comma", "[" + x + ",\n" + x + ",\n", 2},
		{"empty array", `[]`, 0},
		{"empty events", `{"traceEvents":[]}`, 0},
		{"events after other keys", `{"otherData":{"a":[1,{"b":2}]},"traceEvents":[` + x + `],"displayTimeUnit":"ns"}`, 1},
		{"X without dur is skipped", `[{"ph":"X","name":"a","ts":1}]`, 0},
		{"null event is skipped", `[null,` + x + `]`, 1},
		{"E without B is skipped", `[{"ph":"E","ts":1,"pid":1,"tid":1}]`, 0},
		{"B never closed is dropped", `[{"ph":"B","name":"a","ts":1,"pid":1,"tid":1}]`, 0},
		{"B/E nest per thread", `[{"ph":"B","name":"o","ts":1,"pid":1,"tid":1},{"ph":"B","name":"p","ts":1,"pid":1,"tid":2},` +
			`{"ph":"B","name":"i","ts":2,"pid":1,"tid":1},{"ph":"E","ts":3,"pid":1,"tid":1},{"ph":"E","ts":4,"pid":1,"tid":2},{"ph":"E","ts":5,"pid":1,"tid":1}]`, 3},
		{"args of any shape", `[{"ph":"X","name":"a","ts":1,"dur":1,"args":"x"},{"ph":"X","name":"b","ts":1,"dur":1,"args":{"flops":"many"}}]`, 2},
		{"numeric name and float pid", `[{"ph":"X","name":7,"pid":1.5,"ts":1,"dur":1}]`, 1},
		{"escaped name", `[{"ph":"X","name":"a\"b\u00e9","ts":1,"dur":1}]`, 1},
		{"leading whitespace and BOM-free", " \n\t" + `{"traceEvents":[]}` + "\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ivs, err := chrome.ReadIntervals(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(ivs) != tt.n {
				t.Fatalf("%d intervals %+v, want %d", len(ivs), ivs, tt.n)
			}
			for _, iv := range ivs {
				if iv.End < iv.Start {
					t.Errorf("interval ends before it starts: %+v", iv)
				}
			}
		})
	}
	ivs, _ := chrome.ReadIntervals(strings.NewReader(`[{"ph":"B","name":"o","ts":1,"pid":1,"tid":1},{"ph":"B","name":"i","ts":2,"pid":1,"tid":1},` +
		`{"ph":"E","ts":3,"pid":1,"tid":1},{"ph":"E","ts":5.5,"pid":1,"tid":1}]`))
	if len(ivs) != 2 || ivs[0].Name != "i" || ivs[0].End != 3000 || ivs[1].Name != "o" || ivs[1].Start != 1000 || ivs[1].End != 5500 {
		t.Errorf("B/E matching: %+v", ivs)
	}
	// Only top-level numeric args count.
	ivs, _ = chrome.ReadIntervals(strings.NewReader(`[{"ph":"X","ts":1,"dur":1,"args":` +
		`{"note":"\"flops\": 5, \\","inner":{"flops":7,"x":[{"bytes":1}]},"bytes":[1], "FLOPs" : 2e3 ,"flops":"3"}}]`))
	if len(ivs) != 1 || ivs[0].Flops != 2000 || ivs[0].Bytes != 0 {
		t.Errorf("args: %+v", ivs)
	}
	ivs, _ = chrome.ReadIntervals(strings.NewReader(`[{"ph":"X","name":"a\"b\u00e9","ts":1.0004,"dur":0.0006}]`))
	if len(ivs) != 1 || ivs[0].Name != "a\"bé" || ivs[0].Start != 1000 || ivs[0].End != 1001 {
		t.Errorf("name and rounding: %+v", ivs)
	}
}

func TestReadIntervalsErrors(t *testing.T) {
	valid := gz(t, pytorchTrace)
	corrupt := []byte(valid)
	corrupt[len(corrupt)/2] ^= 0xff
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty input"},
		{"not JSON", "hello", "invalid JSON"},
		{"a number", "42", "is a number, not a trace"},
		{"object without events", `{"foo":1}`, "no traceEvents"},
		{"events not an array", `{"traceEvents":{}}`, "traceEvents is an object, want an array"},
		{"truncated object", `{"traceEvents":[{"ph":"X","ts":1,"dur":2},`, "unexpected end of input"},
		{"truncated event", `[{"ph":"X","ts":1,"du`, "unexpected end of input"},
		{"truncated object after events", `{"traceEvents":[]`, "unexpected end of input"},
		{"event not an object", `[{"ph":"X","ts":1,"dur":1},42]`, "trace event 1"},
		{"ts an object", `[{"ph":"X","ts":{},"dur":1}]`, "ts is an object, want a number"},
		{"ts a word", `[{"ph":"X","ts":"soon","dur":1}]`, `ts is the string "soon"`},
		{"dur a bool", `[{"ph":"X","ts":1,"dur":true}]`, "dur is a boolean"},
		{"ph a number", `[{"ph":1}]`, "ph is a number, want a string"},
		{"pid an array", `[{"ph":"X","pid":[1],"ts":1,"dur":1}]`, "pid is an array"},
		{"X without ts", `[{"ph":"X","dur":1}]`, `"X" event without ts`},
		{"negative dur", `[{"ph":"X","name":"mm","ts":5,"dur":-2}]`, `"X" event "mm" with a negative dur (-2000 ns)`},
		{"ts out of range", `[{"ph":"X","ts":1e300,"dur":1}]`, "out of range"},
		{"ts+dur overflow", `[{"ph":"X","ts":9000000000000000,"dur":9000000000000000}]`, "out of range"},
		{"garbage after", `{"traceEvents":[]} x`, "after the end of the trace"},
		{"second value after", `[] []`, "data after the end"},
		{"syntax error names the event", `[{"ph":"X","ts":1,"dur":1},{"ph":"X",,}]`, "trace event 1 (byte offset"},
		{"corrupt gzip", string(corrupt), "reading the input: gzip: invalid checksum"},
		{"truncated gzip", valid[:len(valid)-10], "reading the input: unexpected EOF"},
		{"bad gzip header", "\x1f\x8b\x00garbage", "gzip header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ivs, err := chrome.ReadIntervals(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadIntervals: %v, want an error containing %q", err, tt.want)
			}
			if ivs != nil {
				t.Errorf("intervals with an error: %+v", ivs)
			}
		})
	}
	if _, err := chrome.ReadIntervalsFile("/nonexistent/trace.json"); err == nil {
		t.Error("no error for a missing file")
	}
}

// sinkTrace writes a small trace with our sink and returns the file's bytes.
func sinkTrace(tb testing.TB) []byte {
	tb.Helper()
	dir := tb.TempDir()
	in := info(dir)
	s, err := chrome.New().Open(context.Background(), in)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Export(context.Background(), benchBatch(in, 0)[:24]); err != nil {
		tb.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(s.(*chrome.Sink).Path())
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func FuzzReadIntervals(f *testing.F) {
	ours := sinkTrace(f)
	zr, err := gzip.NewReader(bytes.NewReader(ours))
	if err != nil {
		f.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ours)
	f.Add(plain)
	f.Add([]byte(pytorchTrace))
	f.Add([]byte(gz(f, pytorchTrace)))
	f.Add([]byte(`[{"ph":"B","ts":"1","pid":"a"},{"ph":"E","ts":0.5,"pid":"a"}`))
	f.Add([]byte(`{"traceEvents":[{"ph":"X","ts":1e3,"dur":-1,"args":{"FLOPs":1e400}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ivs, err := chrome.ReadIntervals(bytes.NewReader(data))
		if err != nil {
			if ivs != nil {
				t.Fatal("intervals returned with an error")
			}
			return
		}
		for _, iv := range ivs {
			if iv.End < iv.Start {
				t.Fatalf("interval ends before it starts: %+v", iv)
			}
		}
		profiler.Summarize(ivs) // must not panic either
	})
}
