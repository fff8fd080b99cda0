package otel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/omniflow-go/omniflow/profiler"
)

// DefaultTracerName is the instrumentation scope of the spans unless
// WithTracerName says otherwise.
const DefaultTracerName = "github.com/omniflow-go/omniflow/sinks/otel"

// DefaultMaxBuffered is how many records a session holds back while they
// wait for their parent span (see WithMaxBuffered).
const DefaultMaxBuffered = 1 << 20

// DefaultEventWindow is how many exported spans stay open for events that
// arrive after them (see WithEventWindow).
const DefaultEventWindow = 4096

// DefaultMaxRequestTraces is how many requests a session remembers the
// trace of (see WithMaxRequestTraces).
const DefaultMaxRequestTraces = 1 << 16

// DefaultMaxRequestParents is how many remote parents SetRequestParent
// remembers before it forgets the oldest.
const DefaultMaxRequestParents = 4096

// The attributes every exported span carries (the record's own attributes
// follow, with their keys as given).
const (
	KeyKind      = attribute.Key("omniflow.kind")       // operator, iteration, module, kernel, handoff
	KeyStage     = attribute.Key("omniflow.stage")      // stage id, -1 outside any stage
	KeyStageName = attribute.Key("omniflow.stage.name") // when the stage has a name
	KeyLaneName  = attribute.Key("omniflow.lane.name")  // when the lane has a name
	KeyRequestID = attribute.Key("omniflow.request.id") // when the record belongs to a request
	KeyIteration = attribute.Key("omniflow.iteration")  // when the record is inside an iteration
	// KeyCounterValue is the sample's value on the events made from counter
	// records (WithCounters).
	KeyCounterValue = attribute.Key("omniflow.counter.value")
)

// ErrShutdown is returned by Export after Shutdown.
var ErrShutdown = errors.New("otel sink: export after shutdown")

// Option configures an Exporter.
type Option func(*config)

type config struct {
	tracerName    string
	sessionSpan   bool
	counters      bool
	maxBuffered   int
	maxReqParents int
	maxReqTraces  int
	eventWindow   int
	errs          []error
}

// WithTracerName sets the instrumentation scope name of the tracer the spans
// are made with (default DefaultTracerName).
func WithTracerName(name string) Option { return func(c *config) { c.tracerName = name } }

// WithSessionSpan, when on, makes one root span per session, named
// "omniflow.profile <session name>", from the session's start to its
// shutdown, and makes it the parent of every root record that has no remote
// parent, so that a whole session is one trace. Default off: every root
// record (an operator slice, usually) starts its own trace.
func WithSessionSpan(on bool) Option { return func(c *config) { c.sessionSpan = on } }

// WithCounters, when on, turns counter records into span events (named as
// the counter, with KeyCounterValue) on their parent span, like instant
// records. Default off: counters are skipped.
func WithCounters(on bool) Option { return func(c *config) { c.counters = on } }

// WithMaxBuffered caps the records a session holds back while they wait for
// their parent (default DefaultMaxBuffered). The OpenTelemetry API makes a
// child only from its parent's span context, and the profiler delivers
// records in end order, children first, so most records wait until their
// root ends. Beyond the cap records are dropped and counted (Stats); the
// children of a dropped span are attached to its nearest recorded ancestor.
// 0 holds nothing back: then only records whose parent is already exported
// keep their place in the tree.
func WithMaxBuffered(n int) Option { return func(c *config) { c.maxBuffered = n } }

// WithMaxRequestParents bounds the remote parents SetRequestParent
// remembers (default DefaultMaxRequestParents); beyond it the oldest is
// forgotten. 0 disables remote parents.
func WithMaxRequestParents(n int) Option { return func(c *config) { c.maxReqParents = n } }

// WithMaxRequestTraces bounds how many requests a session keeps in one
// trace each (default DefaultMaxRequestTraces): the first root operator
// slice exported for a request (on the stage it reached first, usually)
// becomes the parent of the request's later roots (its slices on the stages
// after, the hand-offs exported after it), so one request is one trace
// across all stages, as it is one chain of flow arrows in the Chrome trace. A request with a remote
// parent (SetRequestParent) is in its caller's trace instead. Requests
// beyond the bound get a trace per root span; 0 turns this off.
func WithMaxRequestTraces(n int) Option { return func(c *config) { c.maxReqTraces = n } }

// WithEventWindow sets how many of the most recently exported spans stay
// open (default DefaultEventWindow) so that instant and counter records
// arriving after their span can still be added to it as events: the
// profiler's batches come from several shards, so an event may come after
// its span. A span is ended (with its recorded end time) when it leaves
// the window or at Shutdown, and only then reaches the provider's
// processors. 0 ends every span at once; events that come late are then
// dropped and counted.
func WithEventWindow(n int) Option { return func(c *config) { c.eventWindow = n } }

func newConfig(opts []Option) config {
	c := config{
		tracerName:    DefaultTracerName,
		maxBuffered:   DefaultMaxBuffered,
		maxReqParents: DefaultMaxRequestParents,
		maxReqTraces:  DefaultMaxRequestTraces,
		eventWindow:   DefaultEventWindow,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.tracerName == "" {
		c.errs = append(c.errs, errors.New("otel sink: empty tracer name"))
	}
	if c.maxBuffered < 0 || c.maxBuffered > math.MaxInt32 {
		c.errs = append(c.errs, fmt.Errorf("otel sink: max buffered records must be in [0, %d], got %d", math.MaxInt32, c.maxBuffered))
	}
	if c.maxReqTraces < 0 {
		c.errs = append(c.errs, fmt.Errorf("otel sink: max request traces must be >= 0, got %d", c.maxReqTraces))
		c.maxReqTraces = 0
	}
	if c.eventWindow < 0 {
		c.errs = append(c.errs, fmt.Errorf("otel sink: event window must be >= 0, got %d", c.eventWindow))
	}
	if c.maxReqParents < 0 {
		c.errs = append(c.errs, fmt.Errorf("otel sink: max request parents must be >= 0, got %d", c.maxReqParents))
		c.maxReqParents = 0
	}
	return c
}

// Exporter is a profiler.SinkFactory that turns each session's records into
// OpenTelemetry spans made by one TracerProvider. It is safe for concurrent
// use and may serve many sessions, one after another or at once (several
// profilers).
type Exporter struct {
	cfg    config
	tp     oteltrace.TracerProvider
	tracer oteltrace.Tracer

	parents requestParents
	stats   struct {
		spans, events, orphans, dropped, droppedEvents atomic.Uint64
	}
}

// New returns an exporter that makes spans with tp: the SDK's
// TracerProvider, a noop one, or any other implementation. A nil tp means
// the global provider (otel.GetTracerProvider). The provider stays the
// caller's: sessions flush it at their end (when it has ForceFlush) but
// never shut it down. Invalid options are reported by Open.
func New(tp oteltrace.TracerProvider, opts ...Option) *Exporter {
	if tp == nil {
		tp = otelapi.GetTracerProvider()
	}
	c := newConfig(opts)
	e := &Exporter{cfg: c, tp: tp}
	e.tracer = tp.Tracer(c.tracerName, oteltrace.WithInstrumentationVersion(profiler.Version))
	e.parents.max = c.maxReqParents
	return e
}

// Open starts exporting a session.
func (e *Exporter) Open(_ context.Context, info profiler.SessionInfo) (profiler.Sink, error) {
	if len(e.cfg.errs) > 0 {
		return nil, errors.Join(e.cfg.errs...)
	}
	return newSessionSink(e, info), nil
}

// Stats counts what the exporter's sessions did, over all of them.
type Stats struct {
	Spans  uint64 // span records exported as spans
	Events uint64 // instant and counter records exported as span events
	// Orphans counts spans exported as roots at Shutdown because their
	// parent never arrived (it ended after the session stopped, or the
	// profiler dropped it); they are included in Spans.
	Orphans uint64
	// Dropped counts span records dropped because WithMaxBuffered records
	// were already waiting for their parents.
	Dropped uint64
	// DroppedEvents counts instant and counter records dropped: their span
	// had been ended already (it left the WithEventWindow window before
	// the event arrived), they had no span to go to (outside any span,
	// without WithSessionSpan), or the buffer was full.
	DroppedEvents uint64
}

// Stats returns the counts so far.
func (e *Exporter) Stats() Stats {
	return Stats{
		Spans:         e.stats.spans.Load(),
		Events:        e.stats.events.Load(),
		Orphans:       e.stats.orphans.Load(),
		Dropped:       e.stats.dropped.Load(),
		DroppedEvents: e.stats.droppedEvents.Load(),
	}
}

// SetRequestParent makes the root records of request requestID (those
// without a recorded parent: operator slices, usually) children of sc, a
// span context from outside the process, typically extracted from an
// incoming request's W3C traceparent header:
//
//	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
//	exp.SetRequestParent(id, trace.SpanContextFromContext(ctx))
//
// so the profile joins the caller's trace. It applies to every session of
// the exporter from the moment it is set, including records already
// recorded but not yet exported (export runs behind the data path).
//
// The exporter remembers at most WithMaxRequestParents requests and
// forgets the oldest beyond that, so callers need not remove entries, and
// should not remove them when the request ends: its records may still be
// on their way to the exporter. (An invalid sc removes the request's
// entry, for a request id that is reused.) Safe for concurrent use.
func (e *Exporter) SetRequestParent(requestID string, sc oteltrace.SpanContext) {
	e.parents.set(requestID, sc)
}

// RequestParent returns the remote parent set for requestID.
func (e *Exporter) RequestParent(requestID string) (oteltrace.SpanContext, bool) {
	return e.parents.get(requestID)
}

// forceFlush flushes the provider when it can be flushed.
func (e *Exporter) forceFlush(ctx context.Context) error {
	if f, ok := e.tp.(interface{ ForceFlush(context.Context) error }); ok {
		return f.ForceFlush(ctx)
	}
	return nil
}

// requestParents is a bounded map from request id to remote span context
// that forgets the oldest entry first.
type requestParents struct {
	mu    sync.Mutex
	max   int
	seq   uint64
	m     map[string]requestParent
	order []orderEntry // insertion order; entries whose seq no longer matches are stale
	head  int
}

type requestParent struct {
	sc  oteltrace.SpanContext
	seq uint64
}

type orderEntry struct {
	id  string
	seq uint64
}

func (rp *requestParents) set(id string, sc oteltrace.SpanContext) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if !sc.IsValid() {
		delete(rp.m, id)
		return
	}
	if rp.max == 0 {
		return
	}
	if old, ok := rp.m[id]; ok {
		rp.m[id] = requestParent{sc: sc, seq: old.seq}
		return
	}
	if rp.m == nil {
		rp.m = make(map[string]requestParent)
	}
	rp.seq++
	rp.m[id] = requestParent{sc: sc, seq: rp.seq}
	rp.order = append(rp.order, orderEntry{id: id, seq: rp.seq})
	for len(rp.m) > rp.max && rp.head < len(rp.order) {
		o := rp.order[rp.head]
		rp.order[rp.head] = orderEntry{}
		rp.head++
		if cur, ok := rp.m[o.id]; ok && cur.seq == o.seq {
			delete(rp.m, o.id)
		}
	}
	// Compact once stale and forgotten entries make up most of the queue,
	// so that it stays within a small multiple of max.
	if rp.head > len(rp.order)/2 || len(rp.order)-rp.head > 2*rp.max+16 {
		live := rp.order[:0]
		for _, o := range rp.order[rp.head:] {
			if cur, ok := rp.m[o.id]; ok && cur.seq == o.seq {
				live = append(live, o)
			}
		}
		clear(rp.order[len(live):])
		rp.order, rp.head = live, 0
	}
}

func (rp *requestParents) get(id string) (oteltrace.SpanContext, bool) {
	rp.mu.Lock()
	p, ok := rp.m[id]
	rp.mu.Unlock()
	return p.sc, ok
}
