package chrome

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/omniflow-go/omniflow/profiler"
)

// leadIn is where the session's start lands on the trace's time axis: a
// millisecond after zero, so that no event has ts 0 and the first slices
// are not drawn against the edge.
const leadIn = int64(time.Millisecond)

// minTS is the earliest timestamp written (ns): spans that began before
// the lead-in (a hand-off started before the session) are clipped to it.
const minTS = 1000

// encoder turns records into trace events. It is owned by one Sink and
// used under its lock.
type encoder struct {
	info  profiler.SessionInfo
	buf   []byte
	n     uint64 // events written, metadata and flows included
	lanes map[laneKey]*laneMeta
	procs map[int32]*procMeta
	// the lane of the previous record: most records follow one on the same lane
	lastKey laneKey
	last    *laneMeta

	flows           flowTracker
	countersSkipped uint64

	// Operator slices that carry a request are held back (encoded, in the
	// spill file) and written at Shutdown in order of start, so that every
	// flow arrow's source slice precedes its destination in the file:
	// Chrome DevTools draws an arrow in the order it meets the slices.
	spill    []byte // this batch's held slices, for the spill file
	spillOff int64  // bytes in the spill file before spill
}

type laneKey struct{ stage, lane int32 }

type procMeta struct{ named bool }

type laneMeta struct {
	proc  *procMeta
	named bool
}

func newEncoder(info profiler.SessionInfo, maxAnchors int) *encoder {
	return &encoder{
		info:  info,
		buf:   make([]byte, 0, 64<<10),
		lanes: map[laneKey]*laneMeta{},
		procs: map[int32]*procMeta{},
		flows: flowTracker{max: maxAnchors, reqs: map[string]int32{}},
	}
}

func (e *encoder) stats() map[string]float64 {
	return map[string]float64{
		"events":                  float64(e.n),
		"flows_written":           float64(e.flows.written),
		"flows_dropped":           float64(e.flows.droppedSlices),
		"flow_requests_dropped":   float64(e.flows.droppedRequests),
		"counter_samples_skipped": float64(e.countersSkipped),
	}
}

// release drops what the encoder holds once the trace is complete.
func (e *encoder) release() {
	e.buf, e.spill = nil, nil
	e.flows = flowTracker{}
	e.lanes, e.procs, e.last = nil, nil, nil
}

func pidOf(stage int32) int64 { return int64(stage) + 2 }
func tidOf(lane int32) int64  { return int64(lane) + 1 }

// ts maps a profiler clock reading to the trace's axis (ns).
func (e *encoder) ts(t int64) int64 {
	return max(t-e.info.StartedMono+leadIn, minTS)
}

// next starts an event: a separator and a newline.
func (e *encoder) next(b []byte) []byte {
	if e.n > 0 {
		b = append(b, ',')
	}
	e.n++
	return append(b, '\n')
}

func (e *encoder) appendRecord(b []byte, r *profiler.Record) []byte {
	b = e.appendMeta(b, r)
	pid, tid := pidOf(r.Stage), tidOf(r.Lane)
	ts := e.ts(r.Start)
	switch {
	case r.Kind.IsSpan():
		end := max(e.ts(r.End), ts)
		if r.Kind == profiler.KindOperator && r.Request != "" {
			if req, ok := e.flows.admit(r.Request); ok {
				n := len(e.spill)
				e.spill = appendSlice(e.spill, r, pid, tid, ts, end)
				e.flows.anchors = append(e.flows.anchors, anchor{
					ts: ts, off: e.spillOff + int64(n), n: int32(len(e.spill) - n),
					pid: int32(pid), tid: int32(tid), req: req,
				})
				return b
			}
		}
		b = e.next(b)
		b = appendSlice(b, r, pid, tid, ts, end)
	case r.Kind == profiler.KindInstant:
		b = e.next(b)
		b = append(b, `{"ph":"i","s":"t","cat":"instant","name":`...)
		b = profiler.AppendJSONString(b, r.Name)
		b = appendPidTidTS(b, pid, tid, ts)
		b = appendArgs(b, r)
		b = append(b, '}')
	case r.Kind == profiler.KindCounter:
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			e.countersSkipped++ // not representable in JSON
			return b
		}
		// Every key of a counter's args is a series: value is the only one.
		b = e.next(b)
		b = append(b, `{"ph":"C","cat":"counter","name":`...)
		b = profiler.AppendJSONString(b, r.Name)
		b = appendPidTidTS(b, pid, tid, ts)
		b = append(b, `,"args":{"value":`...)
		b = strconv.AppendFloat(b, r.Value, 'g', -1, 64)
		b = append(b, `}}`...)
	}
	return b
}

// appendSlice writes a span as a complete event.
func appendSlice(b []byte, r *profiler.Record, pid, tid, ts, end int64) []byte {
	b = append(b, `{"ph":"X","cat":"`...)
	b = append(b, r.Kind.String()...)
	b = append(b, `","name":`...)
	b = profiler.AppendJSONString(b, r.Name)
	b = appendPidTidTS(b, pid, tid, ts)
	b = append(b, `,"dur":`...)
	b = appendMicros(b, end-ts)
	b = appendArgs(b, r)
	return append(b, '}')
}

func appendPidTidTS(b []byte, pid, tid, ts int64) []byte {
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, pid, 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendInt(b, tid, 10)
	b = append(b, `,"ts":`...)
	return appendMicros(b, ts)
}

// appendArgs writes the record's request, iteration, span ids and
// attributes. An attribute whose key is one of those is written as
// "attr.<key>" rather than as a duplicate key.
func appendArgs(b []byte, r *profiler.Record) []byte {
	b = append(b, `,"args":{`...)
	start := len(b)
	comma := func(b []byte) []byte {
		if len(b) > start {
			b = append(b, ',')
		}
		return b
	}
	if r.Request != "" {
		b = append(b, `"request":`...)
		b = profiler.AppendJSONString(b, r.Request)
	}
	if r.Iter >= 0 {
		b = comma(b)
		b = append(b, `"iter":`...)
		b = strconv.AppendInt(b, int64(r.Iter), 10)
	}
	if r.ID != 0 {
		b = comma(b)
		b = append(b, `"id":`...)
		b = strconv.AppendUint(b, r.ID, 10)
	}
	if r.Parent != 0 {
		b = comma(b)
		b = append(b, `"parent":`...)
		b = strconv.AppendUint(b, r.Parent, 10)
	}
	for _, a := range r.AttrList() {
		b = comma(b)
		switch a.Key {
		case "request", "iter", "id", "parent":
			b = profiler.AppendJSONString(b, "attr."+a.Key)
		default:
			b = profiler.AppendJSONString(b, a.Key)
		}
		b = append(b, ':')
		b = a.AppendJSON(b)
	}
	return append(b, '}')
}

// appendMicros writes ns as microseconds with at most three decimals,
// exactly (integer arithmetic, no float rounding). ns must be >= 0.
func appendMicros(b []byte, ns int64) []byte {
	b = strconv.AppendInt(b, ns/1000, 10)
	f := ns % 1000
	if f == 0 {
		return b
	}
	b = append(b, '.', byte('0'+f/100))
	if f%100 == 0 {
		return b
	}
	b = append(b, byte('0'+f/10%10))
	if f%10 == 0 {
		return b
	}
	return append(b, byte('0'+f%10))
}

// appendMeta names the record's process and thread the first time they
// are seen (and once more if the first record had no name and a later one
// does).
func (e *encoder) appendMeta(b []byte, r *profiler.Record) []byte {
	k := laneKey{r.Stage, r.Lane}
	lm := e.last
	if lm == nil || k != e.lastKey {
		lm = e.lanes[k]
		if lm == nil {
			pm := e.procs[r.Stage]
			if pm == nil {
				pm = &procMeta{named: r.StageName != ""}
				e.procs[r.Stage] = pm
				b = e.appendProcessName(b, r)
				b = e.next(b)
				b = append(b, `{"ph":"M","name":"process_sort_index","pid":`...)
				b = strconv.AppendInt(b, pidOf(r.Stage), 10)
				b = append(b, `,"tid":0,"args":{"sort_index":`...)
				b = strconv.AppendInt(b, int64(r.Stage), 10)
				b = append(b, `}}`...)
			}
			lm = &laneMeta{proc: pm, named: r.LaneName != ""}
			e.lanes[k] = lm
			b = e.appendThreadName(b, r)
			b = e.next(b)
			b = append(b, `{"ph":"M","name":"thread_sort_index","pid":`...)
			b = strconv.AppendInt(b, pidOf(r.Stage), 10)
			b = append(b, `,"tid":`...)
			b = strconv.AppendInt(b, tidOf(r.Lane), 10)
			b = append(b, `,"args":{"sort_index":`...)
			b = strconv.AppendInt(b, int64(r.Lane), 10)
			b = append(b, `}}`...)
		}
		e.last, e.lastKey = lm, k
	}
	if !lm.proc.named && r.StageName != "" {
		lm.proc.named = true
		b = e.appendProcessName(b, r)
	}
	if !lm.named && r.LaneName != "" {
		lm.named = true
		b = e.appendThreadName(b, r)
	}
	return b
}

func (e *encoder) appendProcessName(b []byte, r *profiler.Record) []byte {
	b = e.next(b)
	b = append(b, `{"ph":"M","name":"process_name","pid":`...)
	b = strconv.AppendInt(b, pidOf(r.Stage), 10)
	b = append(b, `,"tid":0,"args":{"name":`...)
	var name string
	switch {
	case r.Stage == profiler.NoStage:
		name = "host"
	case r.StageName == "":
		name = "stage " + strconv.Itoa(int(r.Stage))
	default:
		name = "stage " + strconv.Itoa(int(r.Stage)) + ": " + r.StageName
	}
	b = profiler.AppendJSONString(b, name)
	return append(b, `}}`...)
}

func (e *encoder) appendThreadName(b []byte, r *profiler.Record) []byte {
	b = e.next(b)
	b = append(b, `{"ph":"M","name":"thread_name","pid":`...)
	b = strconv.AppendInt(b, pidOf(r.Stage), 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendInt(b, tidOf(r.Lane), 10)
	b = append(b, `,"args":{"name":`...)
	if r.LaneName != "" {
		b = profiler.AppendJSONString(b, r.LaneName)
	} else {
		b = append(b, `"lane `...)
		b = strconv.AppendInt(b, int64(r.Lane), 10)
		b = append(b, '"')
	}
	return append(b, `}}`...)
}

// appendTrailer closes the event array and writes otherData.
func (e *encoder) appendTrailer(b []byte) []byte {
	b = append(b, "\n],\n"...)
	b = append(b, `"otherData":{"session":`...)
	b = profiler.AppendJSONString(b, e.info.Name)
	b = append(b, `,"omniflow_version":`...)
	b = profiler.AppendJSONString(b, profiler.Version)
	b = append(b, `,"started":`...)
	b = profiler.AppendJSONString(b, e.info.Started.Format(time.RFC3339Nano))
	b = append(b, `,"started_ts_us":`...)
	b = appendMicros(b, leadIn)
	b = append(b, `,"events":`...)
	b = strconv.AppendUint(b, e.n, 10)
	b = append(b, `,"flows_written":`...)
	b = strconv.AppendUint(b, e.flows.written, 10)
	b = append(b, `,"flows_dropped":`...)
	b = strconv.AppendUint(b, e.flows.droppedSlices, 10)
	b = append(b, `,"flow_requests_dropped":`...)
	b = strconv.AppendUint(b, e.flows.droppedRequests, 10)
	b = append(b, `,"counter_samples_skipped":`...)
	b = strconv.AppendUint(b, e.countersSkipped, 10)
	return append(b, "}}\n"...)
}

// anchor is a held operator slice: where its event is in the spill file,
// and what a flow arrow needs of it.
type anchor struct {
	ts       int64 // as written
	off      int64 // of its event in the spill file
	n        int32 // the event's length
	pid, tid int32
	req      int32 // index in flowTracker.names
}

// flowTracker keeps the operator slices that flow arrows join, per
// request. Arrows are drawn at Shutdown, when every slice is known.
type flowTracker struct {
	max     int
	anchors []anchor
	reqs    map[string]int32
	names   []string // requests in the order first seen, for a stable output
	dropped []bool   // per request: a slice of it was over the cap

	written         uint64
	droppedSlices   uint64 // operator slices left without arrows by the cap
	droppedRequests uint64
}

// admit says whether an operator slice of req is held for arrows. Over the
// cap it is not, and its request gets no arrows at all: an arrow that
// skipped the missing slice would be wrong.
func (t *flowTracker) admit(req string) (int32, bool) {
	if t.max == 0 {
		return 0, false
	}
	i, ok := t.reqs[req]
	if !ok {
		i = int32(len(t.names))
		t.reqs[req] = i
		t.names = append(t.names, req)
		t.dropped = append(t.dropped, false)
	}
	if t.dropped[i] {
		t.droppedSlices++
		return i, false
	}
	if len(t.anchors) >= t.max {
		t.dropped[i] = true
		t.droppedRequests++
		t.droppedSlices++
		return i, false
	}
	return i, true
}

// writeHeld writes the held operator slices, read back from the spill
// file, in order of start, then the flow arrows: for each request, one into
// its first slice on each lane it reaches, from its latest slice until then
// on the lane it reached before (by start). A stage that pauses while it
// waits for input has many slices per request; arrows between all of them
// would zigzag between stages that stream to each other, while these trace
// the request's way through the pipeline, each from where the hand-off
// left. Both
// ends carry their slice's exact cat, pid, tid and ts, which is how Chrome
// binds a flow event to a slice; the finishing end binds to its enclosing
// slice ("bp":"e").
func (e *encoder) writeHeld(ctx context.Context, spill io.ReaderAt, write func([]byte) error) error {
	t := &e.flows
	as := t.anchors
	slices.SortFunc(as, func(x, y anchor) int {
		return cmp.Or(cmp.Compare(x.ts, y.ts), cmp.Compare(x.pid, y.pid), cmp.Compare(x.tid, y.tid), cmp.Compare(x.off, y.off))
	})
	b := e.buf[:0]
	flush := func(force bool) error {
		if len(b) < 256<<10 && !force {
			return nil
		}
		err := write(b)
		b = b[:0]
		return err
	}
	for i, a := range as {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("chrome sink: writing operator slices: %w", err)
			}
		}
		b = e.next(b)
		n := len(b)
		b = slices.Grow(b, int(a.n))[:n+int(a.n)]
		if _, err := spill.ReadAt(b[n:], a.off); err != nil {
			return fmt.Errorf("chrome sink: reading back operator slices: %w", err)
		}
		if err := flush(false); err != nil {
			return err
		}
	}
	// Arrows, request by request (a stable sort keeps each one's slices
	// in order of start).
	slices.SortStableFunc(as, func(x, y anchor) int { return cmp.Compare(x.req, y.req) })
	type laneRun struct {
		pid, tid int32
		last     int // the lane's latest slice so far, an index into as[i:j]
	}
	var lanes []laneRun
	for i := 0; i < len(as); {
		j := i + 1
		for j < len(as) && as[j].req == as[i].req {
			j++
		}
		req := as[i].req
		if t.dropped[req] {
			t.droppedSlices += uint64(j - i)
		} else {
			// Lanes in the order the request reaches them; into each one's
			// first slice, an arrow from the latest slice that started
			// before it on the lane reached just before.
			lanes = lanes[:0]
			for k, a := range as[i:j] {
				l := slices.IndexFunc(lanes, func(l laneRun) bool { return l.pid == a.pid && l.tid == a.tid })
				if l < 0 {
					if n := len(lanes); n > 0 {
						t.written++
						b = e.appendFlow(b, 's', t.names[req], t.written, as[i+lanes[n-1].last])
						b = e.appendFlow(b, 'f', t.names[req], t.written, a)
					}
					lanes = append(lanes, laneRun{pid: a.pid, tid: a.tid, last: k})
					continue
				}
				lanes[l].last = k
			}
			if err := flush(false); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("chrome sink: writing flow arrows: %w", ctx.Err())
		}
		i = j
	}
	e.buf = b[:0]
	return flush(true)
}

func (e *encoder) appendFlow(b []byte, ph byte, req string, id uint64, a anchor) []byte {
	b = e.next(b)
	b = append(b, `{"ph":"`...)
	b = append(b, ph, '"')
	if ph == 'f' {
		b = append(b, `,"bp":"e"`...)
	}
	b = append(b, `,"cat":"operator","name":`...)
	b = profiler.AppendJSONString(b, "request "+req)
	b = append(b, `,"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = appendPidTidTS(b, int64(a.pid), int64(a.tid), a.ts)
	return append(b, '}')
}
