package chrome

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

func TestAppendMicros(t *testing.T) {
	tests := []struct {
		ns   int64
		want string
	}{
		{0, "0"}, {1, "0.001"}, {10, "0.01"}, {100, "0.1"}, {999, "0.999"}, {1000, "1"},
		{1230, "1.23"}, {1_000_500, "1000.5"}, {1_234_567, "1234.567"}, {1_000_000, "1000"},
		{math.MaxInt64, "9223372036854775.807"},
	}
	for _, tt := range tests {
		if got := string(appendMicros(nil, tt.ns)); got != tt.want {
			t.Errorf("appendMicros(%d) = %s, want %s", tt.ns, got, tt.want)
		}
		if tt.ns < 1<<53 { // and back, exactly
			if got, err := parseMicros([]byte(tt.want)); err != nil || got != tt.ns {
				t.Errorf("parseMicros(%s) = %d, %v; want %d", tt.want, got, err, tt.ns)
			}
		}
	}
}

func TestParseMicros(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"-1.5", -1500}, {"1.0004", 1000}, {"1.0005", 1001}, {"2.25", 2250},
		{"1700000000000010.123", 1700000000000010123}, {"1e3", 1_000_000}, {"1.5E-3", 2},
		{"9223372036854774.807", 9223372036854774807},
	}
	for _, tt := range tests {
		if got, err := parseMicros([]byte(tt.in)); err != nil || got != tt.want {
			t.Errorf("parseMicros(%s) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"9223372036854775.808", "1e300", "-1e300"} {
		if got, err := parseMicros([]byte(in)); err == nil {
			t.Errorf("parseMicros(%s) = %d, want an error", in, got)
		}
	}
}

// FuzzEventArgs checks the args scanner against encoding/json.
func FuzzEventArgs(f *testing.F) {
	f.Add([]byte(`{"flops":1,"bytes":2}`))
	f.Add([]byte(`{"a":"\"flops\":3","flops":[1],"FLOPs":2.5e3,"b":{"bytes":1}}`))
	f.Add([]byte(`{"flops":1,"flops":"x", "bytes" : -0.5 }`))
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		if !json.Valid(data) || len(data) == 0 || data[0] != '{' {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return
		}
		if bytes.IndexByte(data, '\\') >= 0 {
			return // escaped keys are matched as written, on purpose
		}
		want := func(key string) float64 {
			v := bytes.TrimSpace(m[key])
			if !isNumber(v) {
				return 0
			}
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil || math.IsInf(f, 0) {
				return 0
			}
			return f
		}
		var a eventArgs
		if err := a.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		if a.Flops.v != want("flops") || a.FLOPs.v != want("FLOPs") || a.Bytes.v != want("bytes") {
			t.Fatalf("%s: got flops %v FLOPs %v bytes %v; want %v %v %v", data,
				a.Flops.v, a.FLOPs.v, a.Bytes.v, want("flops"), want("FLOPs"), want("bytes"))
		}
	})
}
