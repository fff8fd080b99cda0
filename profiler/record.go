package profiler

import (
	"context"
	"time"
)

// Kind is the level of work a record describes.
type Kind uint8

const (
	// KindOperator is a graph node's activation, emitted by the engine.
	KindOperator Kind = iota + 1
	// KindIteration is one loop iteration (a denoise step, a decode step);
	// it counts toward the delay and max-iteration windows.
	KindIteration
	// KindModule is a layer or any user region (profiler.Start).
	KindModule
	// KindKernel is one kernel on a device, emitted by device dispatch.
	KindKernel
	// KindHandoff is the time a value or chunk spent between two stages.
	KindHandoff
	// KindInstant is a point event.
	KindInstant
	// KindCounter is a sample of a counter track (Record.Value).
	KindCounter
)

var kindNames = [...]string{"", "operator", "iteration", "module", "kernel", "handoff", "instant", "counter"}

// String returns the kind's name, which sinks use as the category.
func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "unknown"
}

// IsSpan reports whether records of this kind have a duration.
func (k Kind) IsSpan() bool { return k >= KindOperator && k <= KindHandoff }

// MaxAttrs is how many attributes a record carries inline. Extra attributes
// are dropped (and counted in Result.AttrsDropped).
const MaxAttrs = 6

// NoStage is the stage id of records made outside any stage.
const NoStage = -1

// Record is one exported event. Sinks receive records in batches and must not
// keep the batch slice after Export returns (copy what they need).
type Record struct {
	Kind      Kind
	NumAttrs  uint8
	Stage     int32 // NoStage when outside a stage
	Lane      int32 // lane within the stage (a node, a loop)
	Iter      int32 // iteration index within the stage, -1 when none
	StageName string
	LaneName  string
	Name      string
	Request   string // request id, "" when none
	ID        uint64 // span id, unique within a session (0 for points)
	Parent    uint64 // id of the nearest recorded enclosing span, 0 for roots
	Start     int64  // profiler clock, ns (see Now)
	End       int64  // == Start for points
	Value     float64
	Attrs     [MaxAttrs]Attr
}

// AttrList returns the record's attributes.
func (r *Record) AttrList() []Attr { return r.Attrs[:r.NumAttrs] }

// Attr returns the attribute with the given key.
func (r *Record) Attr(key string) (Attr, bool) {
	for _, a := range r.Attrs[:r.NumAttrs] {
		if a.Key == key {
			return a, true
		}
	}
	return Attr{}, false
}

// Duration returns End-Start.
func (r *Record) Duration() time.Duration { return time.Duration(r.End - r.Start) }

// SessionInfo describes a profiling session to the sinks it opens.
type SessionInfo struct {
	Name string
	// Dir is the session folder ("" when the profiler has no directory: a
	// sink that writes files then has nowhere to put them and should say so).
	Dir string
	// Started is the wall-clock start; StartedMono is the profiler clock
	// (Now) at the same instant. A record's wall time is
	// Started.Add(time.Duration(r.Start - StartedMono)).
	Started     time.Time
	StartedMono int64
	Options     Options
}

// Wall converts a profiler clock reading to wall-clock time.
func (s SessionInfo) Wall(t int64) time.Time { return s.Started.Add(time.Duration(t - s.StartedMono)) }

// Sink receives the records of one profiling session. Export is called from
// the session's exporter goroutine, never from the data path, one batch at a
// time. Shutdown flushes and finalizes; it is called once.
type Sink interface {
	Export(ctx context.Context, batch []Record) error
	Shutdown(ctx context.Context) error
}

// SinkFactory opens a Sink for each session (a Sink is single-use, so a
// profiler that starts many sessions needs a factory).
type SinkFactory interface {
	Open(ctx context.Context, info SessionInfo) (Sink, error)
}

// FileSink is implemented by sinks that write files; Files is called after
// Shutdown and lists the complete files.
type FileSink interface {
	Files() []string
}

// StatsSink is implemented by sinks that count things of their own
// (records they dropped, flows written); Stats is called after Shutdown and
// the numbers go into the session manifest under the sink's type name.
type StatsSink interface {
	Stats() map[string]float64
}

// SinkFunc adapts a function to a SinkFactory.
type SinkFunc func(ctx context.Context, info SessionInfo) (Sink, error)

// Open calls f.
func (f SinkFunc) Open(ctx context.Context, info SessionInfo) (Sink, error) { return f(ctx, info) }

var epoch = time.Now()

// Now returns the profiler clock: monotonic nanoseconds since the process
// started. Every record in every stage uses this one clock.
func Now() int64 { return int64(time.Since(epoch)) }
