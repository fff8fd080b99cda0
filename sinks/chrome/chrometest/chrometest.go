// Package chrometest decodes and checks the Chrome traces that sinks/chrome
// writes, for tests anywhere in omniflow (graph, diffusion, omni) that want
// to look at what a profiled run produced:
//
//	res, _ := p.Stop(ctx)
//	tr := chrometest.Validate(t, filepath.Join(res.Dir, chrome.DefaultFileName))
//	if n := len(tr.Named("vae.decode")); n != 1 { t.Errorf("%d decode slices", n) }
//
// Check verifies the trace's shape (object form, timestamps, nesting,
// metadata, flow arrows); the returned Trace holds every event, decoded.
package chrometest

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// Event is one decoded trace event.
type Event struct {
	Index int // position in traceEvents
	Ph    string
	Name  string
	Cat   string
	Pid   int64
	Tid   int64
	// TS and Dur are in nanoseconds, converted exactly from the
	// microseconds written; HasTS and HasDur say whether they were present.
	TS, Dur       int64
	HasTS, HasDur bool
	ID            string // flow id, as its JSON text ("" when none)
	BP            string // flow binding point
	Scope         string // instant scope ("s")
	Args          map[string]any
}

// End is TS+Dur.
func (e *Event) End() int64 { return e.TS + e.Dur }

// Lane is the event's (pid, tid).
func (e *Event) Lane() Lane { return Lane{e.Pid, e.Tid} }

// Lane is a thread of a process: one lane of one stage in our traces.
type Lane struct{ Pid, Tid int64 }

// Flow is one arrow: its start ("s") and finish ("f") events and the
// slices they bind to.
type Flow struct {
	ID, Name, Cat string
	Start, Finish *Event
	From, To      *Event // the "X" slices bound (same cat, pid, tid, ts)
}

// Trace is a decoded trace.
type Trace struct {
	Events          []Event
	DisplayTimeUnit string
	OtherData       map[string]any
	ProcessNames    map[int64]string
	ThreadNames     map[Lane]string
	Flows           []Flow // in id order
}

// Slices returns the complete ("X") events.
func (t *Trace) Slices() []*Event { return t.Phase("X") }

// Phase returns the events of phase ph.
func (t *Trace) Phase(ph string) []*Event {
	var out []*Event
	for i := range t.Events {
		if t.Events[i].Ph == ph {
			out = append(out, &t.Events[i])
		}
	}
	return out
}

// Named returns the non-metadata events called name.
func (t *Trace) Named(name string) []*Event {
	var out []*Event
	for i := range t.Events {
		if e := &t.Events[i]; e.Name == name && e.Ph != "M" {
			out = append(out, e)
		}
	}
	return out
}

// Validate reads and checks the trace at path (gzip or not) and fails the
// test if it is not well formed.
func Validate(tb testing.TB, path string) *Trace {
	tb.Helper()
	tr, err := CheckFile(path)
	if err != nil {
		tb.Fatalf("chrome trace %s: %v", path, err)
	}
	return tr
}

// CheckFile is Check on a file.
func CheckFile(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Check(f)
}

// maxProblems bounds the problems Check reports.
const maxProblems = 20

// Check decodes a trace (gzip-compressed or not) and checks that it is
// what sinks/chrome promises:
//   - the JSON object form, with displayTimeUnit "ms" and an otherData object;
//   - every event but metadata has a ts > 0 with at most three decimals,
//     and every "X" a dur >= 0 likewise;
//   - on each (pid, tid), "X" events nest: none partly overlaps another;
//   - every pid used has a process_name, every (pid, tid) with slices,
//     instants or flows a thread_name;
//   - instants are thread-scoped, counters carry args {"value": number};
//   - every flow start "s" has exactly one finish "f" (with "bp":"e") of the
//     same id, name and cat; each end binds to an "X" slice with the same
//     cat, pid, tid and ts; an arrow joins two different lanes, does not
//     go back in time, and its source slice comes first in the file (Chrome
//     DevTools draws an arrow from the slice it meets first to the other).
//
// The error lists the problems found (up to 20); the Trace is returned
// when the JSON could be decoded, problems or not.
func Check(r io.Reader) (*Trace, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if m, _ := br.Peek(2); len(m) == 2 && m[0] == 0x1f && m[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer gz.Close()
		src = gz
	}
	data, err := io.ReadAll(src)
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, errors.New("not the JSON object form (want {\"traceEvents\":[...], ...})")
	}
	var top struct {
		TraceEvents     []json.RawMessage `json:"traceEvents"`
		DisplayTimeUnit *string           `json:"displayTimeUnit"`
		OtherData       map[string]any    `json:"otherData"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if dec.More() {
		return nil, errors.New("data after the trace object")
	}
	c := &checker{tr: &Trace{
		OtherData:    top.OtherData,
		ProcessNames: map[int64]string{},
		ThreadNames:  map[Lane]string{},
	}}
	if top.TraceEvents == nil {
		c.problem("no traceEvents array")
	}
	if top.DisplayTimeUnit == nil || *top.DisplayTimeUnit != "ms" {
		c.problem(`displayTimeUnit is not "ms"`)
	} else {
		c.tr.DisplayTimeUnit = *top.DisplayTimeUnit
	}
	if top.OtherData == nil {
		c.problem("no otherData object")
	}
	c.tr.Events = make([]Event, 0, len(top.TraceEvents))
	for i, raw := range top.TraceEvents {
		c.decodeEvent(i, raw)
	}
	c.checkMetadata()
	c.checkNesting()
	c.checkFlows()
	return c.tr, c.err()
}

type checker struct {
	tr       *Trace
	problems []string
	more     int
}

func (c *checker) problem(format string, args ...any) {
	if len(c.problems) >= maxProblems {
		c.more++
		return
	}
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d problem(s):", len(c.problems)+c.more)
	for _, p := range c.problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	if c.more > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", c.more)
	}
	return errors.New(b.String())
}

// micros matches a timestamp as sinks/chrome writes it.
var micros = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,3})?$`)

func microsToNS(s string) int64 {
	ip, fp, _ := bytes.Cut([]byte(s), []byte("."))
	n, _ := strconv.ParseInt(string(ip), 10, 64)
	f := string(fp) + "000"[len(fp):]
	fn, _ := strconv.ParseInt(f, 10, 64)
	return n*1000 + fn
}

func (c *checker) decodeEvent(i int, raw json.RawMessage) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		c.problem("event %d is not an object: %v", i, err)
		return
	}
	e := Event{Index: i}
	str := func(key string) string {
		v, ok := m[key]
		if !ok {
			return ""
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			c.problem("event %d: %s is %s, want a string", i, key, v)
		}
		return s
	}
	integer := func(key string) int64 {
		v, ok := m[key]
		if !ok {
			c.problem("event %d (%s): no %s", i, raw, key)
			return 0
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			c.problem("event %d: %s is %s, want an integer", i, key, v)
		}
		return n
	}
	timeField := func(key string) (int64, bool) {
		v, ok := m[key]
		if !ok {
			return 0, false
		}
		if !micros.Match(v) {
			c.problem("event %d: %s is %s, want microseconds >= 0 with at most 3 decimals", i, key, v)
			return 0, true
		}
		return microsToNS(string(v)), true
	}
	e.Ph, e.Name, e.Cat = str("ph"), str("name"), str("cat")
	e.BP, e.Scope = str("bp"), str("s")
	e.Pid, e.Tid = integer("pid"), integer("tid")
	e.TS, e.HasTS = timeField("ts")
	e.Dur, e.HasDur = timeField("dur")
	if v, ok := m["id"]; ok {
		e.ID = string(v)
	}
	if v, ok := m["args"]; ok {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&e.Args); err != nil {
			c.problem("event %d: args: %v", i, err)
		}
	}
	switch e.Ph {
	case "":
		c.problem("event %d (%s): no ph", i, raw)
	case "M":
		name, _ := e.Args["name"].(string)
		switch e.Name {
		case "process_name":
			c.tr.ProcessNames[e.Pid] = name
		case "thread_name":
			c.tr.ThreadNames[e.Lane()] = name
		}
	case "X", "i", "C", "s", "f":
		if !e.HasTS || e.TS <= 0 {
			c.problem("event %d (%s %q): ts must be present and > 0", i, e.Ph, e.Name)
		}
		switch e.Ph {
		case "X":
			if !e.HasDur {
				c.problem("event %d (X %q): no dur", i, e.Name)
			}
		case "i":
			if e.Scope != "t" {
				c.problem("event %d (instant %q): scope %q, want \"t\"", i, e.Name, e.Scope)
			}
		case "C":
			if _, ok := e.Args["value"].(json.Number); !ok || len(e.Args) != 1 {
				c.problem("event %d (counter %q): args %v, want {\"value\": number}", i, e.Name, e.Args)
			}
		}
	default:
		c.problem("event %d: unexpected phase %q", i, e.Ph)
	}
	c.tr.Events = append(c.tr.Events, e)
}

func (c *checker) checkMetadata() {
	for i := range c.tr.Events {
		e := &c.tr.Events[i]
		if e.Ph == "M" {
			continue
		}
		if _, ok := c.tr.ProcessNames[e.Pid]; !ok {
			c.problem("event %d (%s %q): pid %d has no process_name", i, e.Ph, e.Name, e.Pid)
		}
		if e.Ph == "C" {
			continue // counters belong to the process
		}
		if _, ok := c.tr.ThreadNames[e.Lane()]; !ok {
			c.problem("event %d (%s %q): pid %d tid %d has no thread_name", i, e.Ph, e.Name, e.Pid, e.Tid)
		}
	}
}

// checkNesting checks that the slices of each lane form a forest: sorted
// by start (longest first on ties), each slice lies inside the innermost
// open one or after it.
func (c *checker) checkNesting() {
	byLane := map[Lane][]*Event{}
	for _, e := range c.tr.Slices() {
		byLane[e.Lane()] = append(byLane[e.Lane()], e)
	}
	lanes := make([]Lane, 0, len(byLane))
	for l := range byLane {
		lanes = append(lanes, l)
	}
	slices.SortFunc(lanes, func(a, b Lane) int { return cmp.Or(cmp.Compare(a.Pid, b.Pid), cmp.Compare(a.Tid, b.Tid)) })
	for _, l := range lanes {
		ss := byLane[l]
		slices.SortStableFunc(ss, func(a, b *Event) int {
			return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(b.Dur, a.Dur))
		})
		var stack []*Event
		for _, e := range ss {
			for len(stack) > 0 && stack[len(stack)-1].End() <= e.TS {
				stack = stack[:len(stack)-1]
			}
			if len(stack) > 0 {
				if p := stack[len(stack)-1]; e.End() > p.End() {
					c.problem("pid %d tid %d: %q [%d, %d] ns partly overlaps %q [%d, %d] ns",
						l.Pid, l.Tid, e.Name, e.TS, e.End(), p.Name, p.TS, p.End())
				}
			}
			stack = append(stack, e)
		}
	}
}

func (c *checker) checkFlows() {
	type sliceKey struct {
		cat      string
		pid, tid int64
		ts       int64
	}
	at := map[sliceKey]*Event{}
	for _, e := range c.tr.Slices() {
		k := sliceKey{e.Cat, e.Pid, e.Tid, e.TS}
		if _, dup := at[k]; !dup {
			at[k] = e
		}
	}
	type ends struct{ s, f []*Event }
	byID := map[string]*ends{}
	var ids []string
	for _, ph := range []string{"s", "f"} {
		for _, e := range c.tr.Phase(ph) {
			if e.ID == "" {
				c.problem("event %d (flow %s %q): no id", e.Index, e.Ph, e.Name)
				continue
			}
			en := byID[e.ID]
			if en == nil {
				en = &ends{}
				byID[e.ID] = en
				ids = append(ids, e.ID)
			}
			if ph == "s" {
				en.s = append(en.s, e)
			} else {
				en.f = append(en.f, e)
			}
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) { // numeric ids in numeric order
			return cmp.Compare(len(a), len(b))
		}
		return cmp.Compare(a, b)
	})
	for _, id := range ids {
		en := byID[id]
		if len(en.s) != 1 || len(en.f) != 1 {
			c.problem("flow id %s: %d start(s) and %d finish(es), want one of each", id, len(en.s), len(en.f))
			continue
		}
		s, f := en.s[0], en.f[0]
		if s.Name != f.Name || s.Cat != f.Cat {
			c.problem("flow id %s: start is %q/%q, finish is %q/%q (name/cat must match)", id, s.Name, s.Cat, f.Name, f.Cat)
		}
		if f.BP != "e" {
			c.problem("flow id %s: finish has bp %q, want \"e\"", id, f.BP)
		}
		from := at[sliceKey{s.Cat, s.Pid, s.Tid, s.TS}]
		to := at[sliceKey{f.Cat, f.Pid, f.Tid, f.TS}]
		if from == nil {
			c.problem("flow id %s: start (pid %d tid %d ts %d ns cat %q) binds to no slice", id, s.Pid, s.Tid, s.TS, s.Cat)
		}
		if to == nil {
			c.problem("flow id %s: finish (pid %d tid %d ts %d ns cat %q) binds to no slice", id, f.Pid, f.Tid, f.TS, f.Cat)
		}
		if s.Lane() == f.Lane() {
			c.problem("flow id %s: both ends on pid %d tid %d", id, s.Pid, s.Tid)
		}
		if f.TS < s.TS {
			c.problem("flow id %s: goes back in time (%d ns -> %d ns)", id, s.TS, f.TS)
		}
		if from != nil && to != nil && from.Index > to.Index {
			c.problem("flow id %s: its source slice (event %d) comes after its destination (event %d) in the file", id, from.Index, to.Index)
		}
		c.tr.Flows = append(c.tr.Flows, Flow{ID: id, Name: s.Name, Cat: s.Cat, Start: s, Finish: f, From: from, To: to})
	}
}
