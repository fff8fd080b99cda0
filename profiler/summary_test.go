package profiler_test

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/omniflow-go/omniflow/profiler"
)

func TestSummarizeSelfTime(t *testing.T) {
	ms := int64(time.Millisecond)
	// Track 1: op [0,100) holds a [10,30) and b [40,90); b holds k [50,60)
	// and k [70,80). Track 2: op [0,50) with nothing nested; it overlaps
	// track 1 in time, which must not matter.
	ivs := []profiler.Interval{
		{Track: 1, Name: "k", Cat: "kernel", Start: 70 * ms, End: 80 * ms, Flops: 2e9},
		{Track: 1, Name: "op", Cat: "operator", Start: 0, End: 100 * ms},
		{Track: 1, Name: "b", Cat: "module", Start: 40 * ms, End: 90 * ms},
		{Track: 1, Name: "a", Cat: "module", Start: 10 * ms, End: 30 * ms},
		{Track: 1, Name: "k", Cat: "kernel", Start: 50 * ms, End: 60 * ms, Flops: 2e9},
		{Track: 2, Name: "op", Cat: "operator", Start: 0, End: 50 * ms},
	}
	s := profiler.Summarize(ivs)
	want := map[string]struct {
		calls       int
		total, self time.Duration
	}{
		"op": {2, 150 * time.Millisecond, (30 + 50) * time.Millisecond},
		"a":  {1, 20 * time.Millisecond, 20 * time.Millisecond},
		"b":  {1, 50 * time.Millisecond, 30 * time.Millisecond},
		"k":  {2, 20 * time.Millisecond, 20 * time.Millisecond},
	}
	if len(s.Rows) != len(want) {
		t.Fatalf("rows %+v", s.Rows)
	}
	for _, r := range s.Rows {
		w := want[r.Name]
		if r.Calls != w.calls || r.Total != w.total || r.Self != w.self {
			t.Errorf("%s: calls %d total %v self %v, want %+v", r.Name, r.Calls, r.Total, r.Self, w)
		}
	}
	if s.SelfTotal != 150*time.Millisecond || s.Wall != 100*time.Millisecond {
		t.Errorf("self total %v wall %v", s.SelfTotal, s.Wall)
	}
	if s.Rows[0].Name != "op" {
		t.Errorf("rows not sorted by self time: %s first", s.Rows[0].Name)
	}
	for _, r := range s.Rows {
		if r.Name == "k" {
			// 4e9 FLOPs in 20 ms = 200 GFLOP/s.
			if g := r.GFLOPS(); g < 199.999 || g > 200.001 {
				t.Errorf("GFLOP/s %v", g)
			}
			if r.Min != 10*time.Millisecond || r.Max != 10*time.Millisecond || r.Mean() != 10*time.Millisecond {
				t.Errorf("min/max/mean %v %v %v", r.Min, r.Max, r.Mean())
			}
		}
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf, "t"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "200.00") || !strings.Contains(buf.String(), "53.3%") {
		t.Errorf("table:\n%s", buf.String())
	}
}

func TestSummarizeEmptyAndDegenerate(t *testing.T) {
	if s := profiler.Summarize(nil); len(s.Rows) != 0 || s.Spans != 0 {
		t.Fatal("empty summary has rows")
	}
	// An end before the start is treated as zero-length, not negative.
	s := profiler.Summarize([]profiler.Interval{{Name: "x", Start: 10, End: 5}})
	if s.Rows[0].Total != 0 || s.Rows[0].Self != 0 {
		t.Fatalf("%+v", s.Rows[0])
	}
}

func TestSummarizePartialOverlapAndTies(t *testing.T) {
	// A [0,10] B [1,6] C [4,8]: C is not nested in B. A's children cover
	// the union [1,8] = 7, so A's self is 3; self times sum to the wall.
	s := profiler.Summarize([]profiler.Interval{
		{Track: 1, Name: "A", Start: 0, End: 10},
		{Track: 1, Name: "B", Start: 1, End: 6},
		{Track: 1, Name: "C", Start: 4, End: 8},
	})
	self := map[string]time.Duration{}
	for _, r := range s.Rows {
		self[r.Name] = r.Self
	}
	if self["A"] != 3 || self["B"] != 5 || self["C"] != 4 {
		t.Errorf("self %v", self)
	}
	// Identical intervals: the first in input order is the parent.
	s = profiler.Summarize([]profiler.Interval{
		{Track: 1, Name: "outer", Start: 0, End: 10},
		{Track: 1, Name: "inner", Start: 0, End: 10},
	})
	for _, r := range s.Rows {
		if (r.Name == "outer") != (r.Self == 0) {
			t.Errorf("%s self %v", r.Name, r.Self)
		}
	}
}

func TestSummaryClipsByRune(t *testing.T) {
	name := strings.Repeat("é", 80)
	s := profiler.Summarize([]profiler.Interval{{Name: name, Cat: "module", Start: 0, End: 5}})
	var buf bytes.Buffer
	if err := s.WriteText(&buf, ""); err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(buf.Bytes()) {
		t.Fatal("table is not valid UTF-8")
	}
}
