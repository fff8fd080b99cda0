package profiler_test

import (
	"math"
	"testing"

	"github.com/omniflow-go/omniflow/profiler"
)

func TestAttrRoundTrip(t *testing.T) {
	shape := []int{2, 3, 4}
	for _, c := range []struct {
		a    profiler.Attr
		typ  profiler.AttrType
		json string
	}{
		{profiler.Attr{}, profiler.AttrInvalid, "null"},
		{profiler.Int("i", 0), profiler.AttrInt, "0"},
		{profiler.Int("i", -1), profiler.AttrInt, "-1"},
		{profiler.Int64("i", math.MaxInt64), profiler.AttrInt, "9223372036854775807"},
		{profiler.Int64("i", math.MinInt64), profiler.AttrInt, "-9223372036854775808"},
		{profiler.Float64("f", -0.5), profiler.AttrFloat, "-0.5"},
		{profiler.Float64("f", math.Inf(1)), profiler.AttrFloat, `"+Inf"`},
		{profiler.Bool("b", true), profiler.AttrBool, "true"},
		{profiler.Bool("b", false), profiler.AttrBool, "false"},
		{profiler.String("s", ""), profiler.AttrString, `""`},
		{profiler.String("s", "a\"b"), profiler.AttrString, `"a\"b"`},
		{profiler.Ints("shape", shape), profiler.AttrInts, "[2,3,4]"},
		{profiler.Ints("shape", nil), profiler.AttrInts, "[]"},
	} {
		if got := c.a.Type(); got != c.typ {
			t.Errorf("%v: Type() = %d, want %d", c.a, got, c.typ)
		}
		if got := string(c.a.AppendJSON(nil)); got != c.json {
			t.Errorf("%s: JSON %s, want %s", c.a.Key, got, c.json)
		}
	}
	if got := profiler.Int64("i", math.MinInt64).AsInt(); got != math.MinInt64 {
		t.Errorf("AsInt = %d", got)
	}
	if got := profiler.String("s", "hello").AsString(); got != "hello" {
		t.Errorf("AsString = %q", got)
	}
	if got := profiler.Ints("s", shape).AsInts(); len(got) != 3 || &got[0] != &shape[0] {
		t.Errorf("AsInts = %v, not the same slice", got)
	}
	// Accessors of another type return zero values.
	if profiler.String("s", "x").AsInt() != 0 || profiler.Int("i", 3).AsString() != "" ||
		profiler.Int("i", 1).AsBool() || profiler.Float64("f", 2).AsInts() != nil {
		t.Error("an accessor of the wrong type returned a value")
	}
	if got := profiler.Int("i", 7).AsFloat(); got != 7 {
		t.Errorf("Int AsFloat = %v", got)
	}
}
