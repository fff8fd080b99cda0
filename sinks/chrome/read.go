package chrome

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/omniflow-go/omniflow/profiler"
)

// ReadIntervalsFile reads the spans of a Chrome trace file (see
// ReadIntervals); the error names the file.
func ReadIntervalsFile(path string) ([]profiler.Interval, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ivs, err := ReadIntervals(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ivs, nil
}

// ReadIntervals reads the spans of a Chrome Trace Event Format trace: ours,
// the PyTorch profiler's, or any other. It accepts plain or gzip-compressed
// JSON (told apart by the gzip magic bytes, not the name), in the object
// form ({"traceEvents":[...]}) or the bare array form, whose closing ']'
// may be missing as the format allows. The input is read as a stream, one
// event at a time, so a trace of hundreds of megabytes needs memory only
// for its intervals.
//
// Complete events ("ph":"X" with a dur) and B/E pairs (matched per pid/tid,
// innermost first) become intervals; metadata, counters, instants, flows
// and async events are skipped, as are E events with no open B and B events
// never closed. ts and dur are microseconds, as numbers or numeric strings,
// and are converted to nanoseconds exactly for up to three decimals. The
// interval's Track is pid<<32|tid when both are integers in [0, 2^31), and
// an id of its own (with the top bit set) for any other pid/tid pair.
// Flops come from args "flops" or "FLOPs", Bytes from args "bytes", when
// they are numbers.
//
// Malformed input is an error that says what was wrong and where: the event
// index and the byte offset in the (decompressed) JSON.
func ReadIntervals(r io.Reader) ([]profiler.Interval, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	src := &errReader{r: br}
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("chrome: reading gzip header: %w", err)
		}
		defer gz.Close()
		src.r = gz
	}
	tr := &traceReader{
		gzipped: src.r != br,
		dec:     json.NewDecoder(src),
		src:     src,
		tracks:  map[[2]idValue]uint64{},
		stacks:  map[uint64][]openSlice{},
		strs:    map[string]string{},
	}
	if err := tr.read(); err != nil {
		return nil, err
	}
	return tr.ivs, nil
}

// errReader remembers the first read error that is not io.EOF, so that a
// corrupt gzip stream is reported as such rather than as bad JSON.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

type openSlice struct {
	name, cat    string
	start        int64
	flops, bytes float64
}

type traceReader struct {
	gzipped bool
	dec     *json.Decoder
	src     *errReader
	ivs     []profiler.Interval
	tracks  map[[2]idValue]uint64
	stacks  map[uint64][]openSlice
	strs    map[string]string // interned names: traces repeat a few thousand names
	n       int               // index of the next event
	ev      rawEvent
}

func (tr *traceReader) read() error {
	tok, err := tr.dec.Token()
	if err == io.EOF {
		return errors.New("chrome: empty input: not a trace")
	}
	if err != nil {
		return tr.errorf(-1, "reading the trace", err)
	}
	switch tok {
	case json.Delim('['):
		if err := tr.events(true); err != nil {
			return err
		}
	case json.Delim('{'):
		found := false
		for tr.dec.More() {
			off := tr.dec.InputOffset()
			k, err := tr.dec.Token()
			if err != nil {
				return tr.errorf(-1, "reading a key of the trace object", err)
			}
			key, _ := k.(string)
			if key != "traceEvents" {
				if err := tr.dec.Decode(&skipValue{}); err != nil {
					return tr.errorf(-1, fmt.Sprintf("reading the value of %q", key), err)
				}
				continue
			}
			t, err := tr.dec.Token()
			if err != nil {
				return tr.errorf(-1, "reading traceEvents", err)
			}
			if t != json.Delim('[') {
				return fmt.Errorf("chrome: byte offset %d: traceEvents is %s, want an array", off, describeToken(t))
			}
			found = true
			if err := tr.events(false); err != nil {
				return err
			}
		}
		if _, err := tr.dec.Token(); err != nil { // the closing '}'
			return tr.errorf(-1, "reading the end of the trace object", err)
		}
		if !found {
			return errors.New("chrome: the JSON object has no traceEvents: not a trace")
		}
	default:
		return fmt.Errorf("chrome: the input is %s, not a trace (want a JSON object or array)", describeToken(tok))
	}
	if _, err := tr.dec.Token(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("chrome: byte offset %d: data after the end of the trace", tr.dec.InputOffset())
		}
		return tr.errorf(-1, "after the end of the trace", err)
	}
	return nil
}

// events reads the elements of a traceEvents array, the '[' consumed. In
// the bare array form the closing ']' may be missing.
func (tr *traceReader) events(bare bool) error {
	for tr.dec.More() {
		off := tr.dec.InputOffset()
		ev := &tr.ev
		ev.reset(tr.strs)
		if err := tr.dec.Decode(ev); err != nil {
			if bare && err == io.EOF && tr.src.err == nil {
				return nil // "[{...},{...}," and the end: allowed
			}
			return tr.errorf(off, "", err)
		}
		if err := tr.event(ev); err != nil {
			return fmt.Errorf("chrome: trace event %d (byte offset %d): %w", tr.n, off, err)
		}
		tr.n++
	}
	if _, err := tr.dec.Token(); err != nil { // the closing ']'
		if bare && err == io.EOF && tr.src.err == nil {
			return nil
		}
		return tr.errorf(-1, "reading the end of traceEvents", err)
	}
	return nil
}

// errorf describes a decoding error at the current event.
func (tr *traceReader) errorf(off int64, what string, err error) error {
	if tr.gzipped && tr.src.err == nil {
		// Corrupt compressed data often decodes to bad JSON before the
		// checksum at the end says so: read on to tell which it is.
		io.Copy(io.Discard, tr.src)
	}
	if off < 0 {
		off = tr.dec.InputOffset()
	}
	if tr.src.err != nil { // the input itself failed (corrupt gzip, I/O)
		return fmt.Errorf("chrome: reading the input: %w (decoded up to byte offset %d, trace event %d)", tr.src.err, off, tr.n)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = errors.New("unexpected end of input (truncated trace?)")
	}
	var se *json.SyntaxError
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		err = fmt.Errorf("invalid JSON near byte offset %d: %s", se.Offset, se.Error())
	case errors.As(err, &ute) && ute.Field == "":
		err = fmt.Errorf("the event is a %s, want an object", ute.Value)
	}
	if what != "" {
		return fmt.Errorf("chrome: byte offset %d: %s: %w", off, what, err)
	}
	return fmt.Errorf("chrome: trace event %d (byte offset %d): %w", tr.n, off, err)
}

func (tr *traceReader) event(ev *rawEvent) error {
	switch ev.Ph.s {
	case "X":
		if !ev.Dur.set {
			return nil // Perfetto, too, skips a complete event without dur
		}
		if !ev.Ts.set {
			return errors.New(`"X" event without ts`)
		}
		if ev.Dur.ns < 0 {
			return fmt.Errorf(`"X" event %q with a negative dur (%d ns)`, clipString(ev.Name.s), ev.Dur.ns)
		}
		start := ev.Ts.ns
		end, ok := addNS(start, ev.Dur.ns)
		if !ok {
			return errors.New("ts+dur out of range")
		}
		tr.ivs = append(tr.ivs, profiler.Interval{
			Track: tr.track(ev), Name: ev.Name.s, Cat: ev.Cat.s,
			Start: start, End: end,
			Flops: ev.Args.flops(), Bytes: ev.Args.Bytes.v,
		})
	case "B":
		if !ev.Ts.set {
			return errors.New(`"B" event without ts`)
		}
		t := tr.track(ev)
		tr.stacks[t] = append(tr.stacks[t], openSlice{
			name: ev.Name.s, cat: ev.Cat.s, start: ev.Ts.ns,
			flops: ev.Args.flops(), bytes: ev.Args.Bytes.v,
		})
	case "E":
		if !ev.Ts.set {
			return errors.New(`"E" event without ts`)
		}
		t := tr.track(ev)
		st := tr.stacks[t]
		if len(st) == 0 {
			return nil // its B was before the capture
		}
		o := st[len(st)-1]
		tr.stacks[t] = st[:len(st)-1]
		if o.flops == 0 {
			o.flops = ev.Args.flops()
		}
		if o.bytes == 0 {
			o.bytes = ev.Args.Bytes.v
		}
		tr.ivs = append(tr.ivs, profiler.Interval{
			Track: t, Name: o.name, Cat: o.cat,
			Start: o.start, End: max(ev.Ts.ns, o.start),
			Flops: o.flops, Bytes: o.bytes,
		})
	}
	return nil
}

// track returns the event's track id (see ReadIntervals).
func (tr *traceReader) track(ev *rawEvent) uint64 {
	pid, tid := ev.Pid.v, ev.Tid.v
	if tid.kind == idAbsent {
		tid = pid // as Perfetto does
	}
	if pid.kind == idInt && tid.kind == idInt && pid.n >= 0 && pid.n < 1<<31 && tid.n >= 0 && tid.n < 1<<31 {
		return uint64(pid.n)<<32 | uint64(tid.n)
	}
	k := [2]idValue{pid, tid}
	id, ok := tr.tracks[k]
	if !ok {
		id = 1<<63 | uint64(len(tr.tracks))
		tr.tracks[k] = id
	}
	return id
}

func addNS(a, b int64) (int64, bool) {
	c := a + b
	if (b > 0 && c < a) || (b < 0 && c > a) {
		return 0, false
	}
	return c, true
}

// rawEvent is the part of a trace event the reader looks at. Its fields
// decode themselves, so that a wrong type is reported by key, and strings
// are interned without an allocation per event.
type rawEvent struct {
	Ph   jsonString `json:"ph"`
	Name jsonString `json:"name"`
	Cat  jsonString `json:"cat"`
	Pid  jsonID     `json:"pid"`
	Tid  jsonID     `json:"tid"`
	Ts   jsonMicros `json:"ts"`
	Dur  jsonMicros `json:"dur"`
	Args eventArgs  `json:"args"`
}

func (ev *rawEvent) reset(strs map[string]string) {
	*ev = rawEvent{
		Ph:   jsonString{key: "ph", strs: strs},
		Name: jsonString{key: "name", strs: strs, numOK: true},
		Cat:  jsonString{key: "cat", strs: strs},
		Pid:  jsonID{key: "pid", strs: strs},
		Tid:  jsonID{key: "tid", strs: strs},
		Ts:   jsonMicros{key: "ts"},
		Dur:  jsonMicros{key: "dur"},
	}
}

// jsonString is a string field (a number too, for names, as its text).
type jsonString struct {
	key   string
	strs  map[string]string
	numOK bool
	s     string
}

func (j *jsonString) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		j.s = ""
	case b[0] == '"':
		s, err := unquote(b, j.strs)
		if err != nil {
			return fmt.Errorf("%s: %w", j.key, err)
		}
		j.s = s
	case j.numOK && isNumber(b):
		j.s = intern(j.strs, b)
	default:
		return fmt.Errorf("%s is %s, want a string", j.key, describeJSON(b))
	}
	return nil
}

type idKind uint8

const (
	idAbsent idKind = iota
	idInt
	idOther // a string, or a number that is not an int64
)

type idValue struct {
	kind idKind
	n    int64
	s    string
}

// jsonID is a pid or tid: a number or a string.
type jsonID struct {
	key  string
	strs map[string]string
	v    idValue
}

func (j *jsonID) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		j.v = idValue{}
	case b[0] == '"':
		s, err := unquote(b, j.strs)
		if err != nil {
			return fmt.Errorf("%s: %w", j.key, err)
		}
		j.v = idValue{kind: idOther, s: s}
	case isNumber(b):
		if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			j.v = idValue{kind: idInt, n: n}
		} else {
			j.v = idValue{kind: idOther, s: intern(j.strs, b)}
		}
	default:
		return fmt.Errorf("%s is %s, want a number or a string", j.key, describeJSON(b))
	}
	return nil
}

// jsonMicros is a time in microseconds (ts, dur), kept in nanoseconds.
type jsonMicros struct {
	key string
	set bool
	ns  int64
}

func (j *jsonMicros) UnmarshalJSON(b []byte) error {
	num := b
	switch {
	case string(b) == "null":
		j.set = false
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%s: %w", j.key, err)
		}
		num = []byte(s)
		if !isNumber(num) {
			return fmt.Errorf("%s is the string %q, want a number", j.key, clipString(s))
		}
	case !isNumber(b):
		return fmt.Errorf("%s is %s, want a number", j.key, describeJSON(b))
	}
	ns, err := parseMicros(num)
	if err != nil {
		return fmt.Errorf("%s: %w", j.key, err)
	}
	j.set, j.ns = true, ns
	return nil
}

// parseMicros converts a JSON number of microseconds to nanoseconds:
// exactly, by integer arithmetic, when it has no exponent and fits;
// rounded through float64 otherwise.
func parseMicros(b []byte) (int64, error) {
	if ns, ok := exactMicros(b); ok {
		return ns, nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", clipString(string(b)))
	}
	f = math.Round(f * 1000)
	if math.IsNaN(f) || f >= math.MaxInt64/2 || f <= math.MinInt64/2 {
		return 0, fmt.Errorf("%s µs is out of range", clipString(string(b)))
	}
	return int64(f), nil
}

// exactMicros converts a number without exponent to nanoseconds by integer
// arithmetic (rounding past the third decimal); ok is false when it has an
// exponent or does not fit.
func exactMicros(b []byte) (ns int64, ok bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	intPart, frac := b, []byte(nil)
	if i := bytes.IndexByte(b, '.'); i >= 0 {
		intPart, frac = b[:i], b[i+1:]
	}
	if len(intPart) == 0 || bytes.IndexAny(frac, "eE") >= 0 || bytes.IndexAny(intPart, "eE") >= 0 {
		return 0, false
	}
	const limit = (math.MaxInt64 - 9) / 10
	digit := func(c byte) bool {
		if ns > limit {
			return false
		}
		ns = ns*10 + int64(c-'0')
		return true
	}
	for _, c := range intPart {
		if !digit(c) {
			return 0, false
		}
	}
	for i := 0; i < 3; i++ {
		c := byte('0')
		if i < len(frac) {
			c = frac[i]
		}
		if !digit(c) {
			return 0, false
		}
	}
	if len(frac) > 3 && frac[3] >= '5' {
		ns++ // round half up; cannot overflow: ns <= limit*10+9
	}
	if neg {
		ns = -ns
	}
	return ns, true
}

// eventArgs keeps the numeric args the summary uses. Args that are not an
// object, and values that are not numbers, are ignored: args are free-form.
type eventArgs struct {
	Flops, FLOPs, Bytes optNumber
}

func (a *eventArgs) flops() float64 {
	if a.Flops.v != 0 {
		return a.Flops.v
	}
	return a.FLOPs.v
}

func (a *eventArgs) UnmarshalJSON(b []byte) error {
	// Most events (PyTorch's cpu_ops with their input dims and types) have
	// none of the keys: skip them without a look.
	if b[0] != '{' || !(bytes.Contains(b, []byte(`"flops"`)) || bytes.Contains(b, []byte(`"FLOPs"`)) || bytes.Contains(b, []byte(`"bytes"`))) {
		return nil
	}
	// The decoder has checked b: walk its top-level keys.
	i := 1
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return nil // '}' or, were b malformed, the end
		}
		kEnd := stringEnd(b, i)
		key := b[i+1 : kEnd-1]
		i = skipSpace(b, kEnd) + 1 // past ':'
		i = skipSpace(b, i)
		vEnd := valueEnd(b, i)
		var dst *optNumber
		switch string(key) {
		case "flops":
			dst = &a.Flops
		case "FLOPs":
			dst = &a.FLOPs
		case "bytes":
			dst = &a.Bytes
		}
		if dst != nil && vEnd <= len(b) {
			dst.UnmarshalJSON(b[i:vEnd])
		}
		i = skipSpace(b, vEnd)
		if i >= len(b) || b[i] != ',' {
			return nil
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string literal at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the JSON value at b[i].
func valueEnd(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			i = stringEnd(b, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

type optNumber struct{ v float64 }

// UnmarshalJSON keeps a finite number and forgets anything else, so that
// of duplicate keys the last one counts, as with encoding/json.
func (o *optNumber) UnmarshalJSON(b []byte) error {
	o.v = 0
	if isNumber(b) {
		if f, err := strconv.ParseFloat(string(b), 64); err == nil && !math.IsInf(f, 0) {
			o.v = f
		}
	}
	return nil
}

// skipValue consumes a JSON value without keeping it.
type skipValue struct{}

func (*skipValue) UnmarshalJSON([]byte) error { return nil }

// isNumber reports whether b is a JSON number literal.
func isNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start || (b[start] == '0' && i-start > 1) {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	return i == len(b)
}

// unquote decodes a JSON string literal, interning plain ones.
func unquote(b []byte, strs map[string]string) (string, error) {
	// The decoder has checked the literal; without escapes and with valid
	// UTF-8 its body is the string.
	body := b[1 : len(b)-1]
	if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return intern(strs, body), nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	return intern(strs, []byte(s)), nil
}

// maxInterned bounds the interning table: a trace with unique names per
// event (ids in names) must not keep them all twice.
const maxInterned = 1 << 16

func intern(strs map[string]string, b []byte) string {
	if s, ok := strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(strs) < maxInterned {
		strs[s] = s
	}
	return s
}

func describeToken(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", t)
}

func describeJSON(b []byte) string {
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
