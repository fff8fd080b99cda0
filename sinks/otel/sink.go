package otel

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/omniflow-go/omniflow/profiler"
)

// DefaultFlushTimeout bounds the provider's ForceFlush at Shutdown when the
// context given has no deadline.
const DefaultFlushTimeout = 30 * time.Second

// maxAliases bounds the dropped-span → ancestor table a session keeps so
// that children arriving after their dropped parent still find a place.
const maxAliases = 1 << 16

var spanKindInternal = oteltrace.WithSpanKind(oteltrace.SpanKindInternal)

// blockLen is the number of pending records per block; blocks never move,
// so a pending record's address is stable and growth never copies.
const blockLen = 1024

// spanRef is what a session keeps of an exported span: enough to make a
// child of it, in 28 bytes (a SpanContext is 56 and holds a slice).
type spanRef struct {
	tid   oteltrace.TraceID
	sid   oteltrace.SpanID
	flags oteltrace.TraceFlags
	state uint16 // index into sessionSink.states; 0: empty
}

type counts struct{ spans, events, orphans, dropped, droppedEvents, requestTraces uint64 }

// openSpan is an exported span kept open for late events.
type openSpan struct {
	span oteltrace.Span
	id   uint64
	end  int64
}

// pending is a record waiting for its parent, in a singly linked list per
// parent id.
type pending struct {
	rec  profiler.Record
	next int32 // -1 ends the list
}

// sessionSink exports one session. Export and Shutdown are called from the
// profiler's exporter goroutine; mu only guards against other callers.
type sessionSink struct {
	e      *Exporter
	info   profiler.SessionInfo
	tracer oteltrace.Tracer

	mu       sync.Mutex
	closed   bool
	shutOnce sync.Once

	session oteltrace.Span  // nil without WithSessionSpan
	rootCtx context.Context // parent of roots: the session span, or none

	lastCtxID uint64          // parentCtx's cache
	lastCtx   context.Context // carries the span exported for lastCtxID

	reqRoots map[string]spanRef // each request's first root span (WithMaxRequestTraces)

	done     map[uint64]spanRef // exported spans by record id
	wait     map[uint64]int32   // parent id → first pending record
	blocks   [][]pending
	used     int   // slots handed out from blocks
	free     int32 // first free slot, -1 when none
	nPending int
	aliases  map[uint64]uint64 // dropped span id → its parent id

	ring     []openSpan       // exported spans not ended yet (WithEventWindow)
	ringHead int              // oldest entry once the ring is full
	open     map[uint64]int32 // record id → index in ring

	states   []oteltrace.TraceState // interned trace states; [0] is empty
	stateIdx map[string]uint16

	startOpts [3]oteltrace.SpanStartOption
	endOpts   [1]oteltrace.SpanEndOption
	kv        []attribute.KeyValue // scratch for attributes
	stack     []int32              // scratch for children being exported
	evs       []int32              // scratch for events being added

	n, total counts // since the last publish; in all
}

func newSessionSink(e *Exporter, info profiler.SessionInfo) *sessionSink {
	s := &sessionSink{
		e:        e,
		info:     info,
		tracer:   e.tracer,
		done:     make(map[uint64]spanRef),
		reqRoots: make(map[string]spanRef),
		wait:     make(map[uint64]int32),
		free:     -1,
		states:   []oteltrace.TraceState{{}},
		rootCtx:  context.Background(),
	}
	if e.cfg.sessionSpan {
		_, s.session = s.tracer.Start(context.Background(), "omniflow.profile "+info.Name,
			oteltrace.WithNewRoot(),
			oteltrace.WithTimestamp(info.Started),
			oteltrace.WithSpanKind(oteltrace.SpanKindInternal),
			oteltrace.WithAttributes(attribute.String("omniflow.session.name", info.Name)))
		s.rootCtx = oteltrace.ContextWithSpan(s.rootCtx, s.session)
	}
	return s
}

// Export turns the batch into spans and events, holding back the records
// whose parent has not been exported yet.
func (s *sessionSink) Export(_ context.Context, batch []profiler.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrShutdown
	}
	for i := range batch {
		s.add(&batch[i])
	}
	s.publish()
	return nil
}

// Shutdown exports the records still waiting as roots (their parent was
// never recorded), ends the session span, and flushes the provider when it
// has ForceFlush. It does not shut the provider down.
func (s *sessionSink) Shutdown(ctx context.Context) error {
	var err error
	s.shutOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.exportOrphans()
		s.endAllOpen()
		s.publish()
		if s.session != nil {
			t := &s.total
			s.session.SetAttributes(
				attribute.Int64("omniflow.spans", int64(t.spans)),
				attribute.Int64("omniflow.events", int64(t.events)),
				attribute.Int64("omniflow.orphans", int64(t.orphans)),
				attribute.Int64("omniflow.dropped", int64(t.dropped)),
				attribute.Int64("omniflow.events.dropped", int64(t.droppedEvents)))
			s.session.End()
		}
		// Release what the session held: the profiler keeps its last
		// session (and so this sink) until the next Start.
		s.done, s.wait, s.blocks, s.aliases, s.stateIdx, s.open = nil, nil, nil, nil, nil, nil
		s.states, s.kv, s.stack, s.evs, s.session = nil, nil, nil, nil, nil
		s.rootCtx, s.lastCtx = nil, nil
		s.mu.Unlock()

		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, DefaultFlushTimeout)
			defer cancel()
		}
		err = s.e.forceFlush(ctx)
	})
	return err
}

// publish adds the counts since the last call to the session's and the
// exporter's.
func (s *sessionSink) publish() {
	t := &s.total
	t.spans += s.n.spans
	t.events += s.n.events
	t.orphans += s.n.orphans
	t.dropped += s.n.dropped
	t.droppedEvents += s.n.droppedEvents
	st := &s.e.stats
	st.spans.Add(s.n.spans)
	st.events.Add(s.n.events)
	st.orphans.Add(s.n.orphans)
	st.dropped.Add(s.n.dropped)
	st.droppedEvents.Add(s.n.droppedEvents)
	s.n.spans, s.n.events, s.n.orphans, s.n.dropped, s.n.droppedEvents = 0, 0, 0, 0, 0
}

func (s *sessionSink) add(r *profiler.Record) {
	isEvent := false
	switch {
	case r.Kind.IsSpan():
	case r.Kind == profiler.KindInstant:
		isEvent = true
	case r.Kind == profiler.KindCounter:
		if !s.e.cfg.counters {
			return
		}
		isEvent = true
	default:
		return
	}
	parent := s.resolve(r.Parent)
	if parent == 0 {
		if isEvent {
			s.addRootEvent(r)
			return
		}
		s.exportRoot(r)
		return
	}
	if ref, ok := s.done[parent]; ok {
		if isEvent {
			if i, open := s.open[parent]; open {
				s.addEvent(s.ring[i].span, r)
			} else { // its span has ended: too late to add to it
				s.n.droppedEvents++
			}
			return
		}
		s.exportTree(r, s.parentCtx(parent, ref))
		return
	}
	s.hold(parent, r)
}

// resolve maps the id of a dropped span to its nearest ancestor that was
// not dropped.
func (s *sessionSink) resolve(id uint64) uint64 {
	for id != 0 {
		p, ok := s.aliases[id]
		if !ok {
			break
		}
		id = p
	}
	return id
}

// hold keeps r until parent is exported, or drops it when the buffer is full.
func (s *sessionSink) hold(parent uint64, r *profiler.Record) {
	if s.nPending >= s.e.cfg.maxBuffered {
		if !r.Kind.IsSpan() {
			s.n.droppedEvents++
			return
		}
		s.n.dropped++
		if r.ID != 0 {
			s.drop(r.ID, parent)
		}
		return
	}
	i := s.alloc()
	p := s.slot(i)
	p.rec = *r
	p.rec.Parent = parent
	head, ok := s.wait[parent]
	if !ok {
		head = -1
	}
	p.next = head
	s.wait[parent] = i
}

// drop forgets span id, whose parent (not exported yet: else id would
// not have been held back) is parent: what waits for id now waits for
// parent, and so does what arrives for id later.
func (s *sessionSink) drop(id, parent uint64) {
	if len(s.aliases) < maxAliases {
		if s.aliases == nil {
			s.aliases = make(map[uint64]uint64)
		}
		s.aliases[id] = parent
	}
	head, ok := s.wait[id]
	if !ok {
		return
	}
	delete(s.wait, id)
	tail := head
	for {
		p := s.slot(tail)
		p.rec.Parent = parent
		if p.next < 0 {
			break
		}
		tail = p.next
	}
	if ph, ok := s.wait[parent]; ok {
		s.slot(tail).next = ph
	}
	s.wait[parent] = head
}

// releaseOrphans exports a pending list whose parent will never come: its
// spans, with their subtrees, as roots, and its events on the session span
// or nowhere. It frees the list's slots.
func (s *sessionSink) releaseOrphans(head int32) {
	for j := head; j >= 0; {
		p := s.slot(j)
		next := p.next
		if p.rec.Kind.IsSpan() {
			s.n.orphans++
			s.exportRoot(&p.rec)
		} else {
			s.addRootEvent(&p.rec)
		}
		s.release1(j)
		j = next
	}
}

// exportOrphans exports, at Shutdown, the records whose parent never came,
// as roots.
func (s *sessionSink) exportOrphans() {
	ids := make([]uint64, 0, len(s.wait))
	waiting := make(map[uint64]struct{}, s.nPending)
	for id, head := range s.wait {
		ids = append(ids, id)
		for j := head; j >= 0; j = s.slot(j).next {
			if r := &s.slot(j).rec; r.Kind.IsSpan() && r.ID != 0 {
				waiting[r.ID] = struct{}{}
			}
		}
	}
	slices.Sort(ids)
	// The tops first: ids that no waiting record has (exporting them
	// exports the rest), then whatever a malformed input (a cycle) left.
	for _, skipWaiting := range []bool{true, false} {
		for _, id := range ids {
			if _, ok := waiting[id]; ok && skipWaiting {
				continue
			}
			if head, ok := s.wait[id]; ok {
				delete(s.wait, id)
				s.releaseOrphans(head)
			}
		}
	}
}

// exportRoot exports a record without a recorded parent, and its subtree,
// under rootParent; the first one of a request is remembered as the parent
// of the request's later roots.
func (s *sessionSink) exportRoot(r *profiler.Record) {
	req, id := r.Request, r.ID
	parent, first := s.rootParent(r)
	s.exportTree(r, parent)
	if first && id != 0 {
		if ref, ok := s.done[id]; ok {
			s.reqRoots[req] = ref
			s.n.requestTraces++
		}
	}
}

// rootParent is the context that makes the parent of a record without a
// recorded one: the request's remote parent, else the request's first root
// operator slice, else the session span, else none. first says that the
// record is its request's first root operator slice, to be remembered.
func (s *sessionSink) rootParent(r *profiler.Record) (parent context.Context, first bool) {
	if r.Request == "" {
		return s.rootCtx, false
	}
	if s.e.cfg.maxReqParents > 0 {
		if sc, ok := s.e.parents.get(r.Request); ok {
			return oteltrace.ContextWithSpanContext(context.Background(), sc), false
		}
	}
	if ref, ok := s.reqRoots[r.Request]; ok {
		return oteltrace.ContextWithSpanContext(context.Background(), s.spanContext(ref)), false
	}
	return s.rootCtx, r.Kind == profiler.KindOperator && len(s.reqRoots) < s.e.cfg.maxReqTraces
}

// parentCtx returns a context carrying the exported span id (ref), reusing
// the last one made: children often come one after another.
func (s *sessionSink) parentCtx(id uint64, ref spanRef) context.Context {
	if s.lastCtx == nil || s.lastCtxID != id {
		s.lastCtxID = id
		s.lastCtx = oteltrace.ContextWithSpanContext(context.Background(), s.spanContext(ref))
	}
	return s.lastCtx
}

// addRootEvent adds an event that has no span of its own to the session
// span, or drops it.
func (s *sessionSink) addRootEvent(r *profiler.Record) {
	if s.session == nil {
		s.n.droppedEvents++
		return
	}
	s.addEvent(s.session, r)
}

func (s *sessionSink) addEvent(span oteltrace.Span, r *profiler.Record) {
	kv := appendAttrs(s.kv[:0], r.AttrList())
	if r.Kind == profiler.KindCounter {
		kv = append(kv, KeyCounterValue.Float64(r.Value))
	}
	s.kv = kv
	span.AddEvent(r.Name, oteltrace.WithTimestamp(s.info.Wall(r.Start)), oteltrace.WithAttributes(kv...))
	s.n.events++
}

// exportTree exports r as a child of the span in parent (a root when there
// is none), with the events waiting for it, then the records waiting for it.
func (s *sessionSink) exportTree(r *profiler.Record, parent context.Context) {
	// The options live in the sink (no slice to allocate per span); they
	// are only read during Start, before any recursion.
	opts := s.startOpts[:]
	opts[0] = oteltrace.WithTimestamp(s.info.Wall(r.Start))
	opts[1] = spanKindInternal
	opts[2] = oteltrace.WithAttributes(s.spanAttrs(r)...)
	_, span := s.tracer.Start(parent, r.Name, opts...)
	clear(opts)
	if a, ok := r.Attr("error"); ok && a.Type() == profiler.AttrString {
		span.SetStatus(codes.Error, a.AsString())
	}
	s.n.spans++

	// Split what waits for r into events (added now, in time order, while
	// the span is open) and children (exported once its context exists).
	base := len(s.stack)
	evBase := len(s.evs)
	if head, ok := s.wait[r.ID]; ok && r.ID != 0 {
		delete(s.wait, r.ID)
		for j := head; j >= 0; j = s.slot(j).next {
			if s.slot(j).rec.Kind.IsSpan() {
				s.stack = append(s.stack, j)
			} else {
				s.evs = append(s.evs, j)
			}
		}
	}
	if evs := s.evs[evBase:]; len(evs) > 0 {
		slices.SortStableFunc(evs, func(a, b int32) int {
			return cmp.Compare(s.slot(a).rec.Start, s.slot(b).rec.Start)
		})
		for _, j := range evs {
			s.addEvent(span, &s.slot(j).rec)
			s.release1(j)
		}
		s.evs = s.evs[:evBase]
	}
	id, end := r.ID, r.End // r's slot may be reused once its children are out
	if id == 0 {
		s.end(span, end)
		return
	}
	s.done[id] = s.ref(span.SpanContext())
	if len(s.stack) > base {
		sc := oteltrace.ContextWithSpan(context.Background(), span)
		// Nested calls push above top and pop back to it, so
		// s.stack[base:top] stays put (s.stack itself may move: index it
		// afresh each time).
		for k, top := base, len(s.stack); k < top; k++ {
			j := s.stack[k]
			s.exportTree(&s.slot(j).rec, sc)
			s.release1(j)
		}
		s.stack = s.stack[:base]
	}
	// After the children: a subtree's top stays open longest.
	s.retire(span, id, end)
}

// retire ends span, or keeps it open among the most recently exported
// spans for events that arrive after it, ending the oldest of them instead.
func (s *sessionSink) retire(span oteltrace.Span, id uint64, end int64) {
	w := s.e.cfg.eventWindow
	if w == 0 {
		s.end(span, end)
		return
	}
	e := openSpan{span: span, id: id, end: end}
	var i int32
	if len(s.ring) < w {
		i = int32(len(s.ring))
		s.ring = append(s.ring, e)
	} else {
		i = int32(s.ringHead)
		s.endOpen(&s.ring[i])
		s.ring[i] = e
		s.ringHead = (s.ringHead + 1) % w
	}
	if s.open == nil {
		s.open = make(map[uint64]int32)
	}
	s.open[id] = i
}

// end ends span at the profiler clock reading end.
func (s *sessionSink) end(span oteltrace.Span, end int64) {
	opts := s.endOpts[:]
	opts[0] = oteltrace.WithTimestamp(s.info.Wall(end))
	span.End(opts...)
	clear(opts)
}

func (s *sessionSink) endOpen(e *openSpan) {
	s.end(e.span, e.end)
	delete(s.open, e.id)
	*e = openSpan{}
}

// endAllOpen ends the open spans, oldest first.
func (s *sessionSink) endAllOpen() {
	for k := range s.ring {
		s.endOpen(&s.ring[(s.ringHead+k)%len(s.ring)])
	}
	s.ring, s.ringHead = nil, 0
}

// spanAttrs returns the attributes of a span made from r, in scratch space
// that the next call reuses (the API copies them).
func (s *sessionSink) spanAttrs(r *profiler.Record) []attribute.KeyValue {
	kv := append(s.kv[:0],
		KeyKind.String(r.Kind.String()),
		KeyStage.Int64(int64(r.Stage)))
	if r.StageName != "" {
		kv = append(kv, KeyStageName.String(r.StageName))
	}
	if r.LaneName != "" {
		kv = append(kv, KeyLaneName.String(r.LaneName))
	}
	if r.Request != "" {
		kv = append(kv, KeyRequestID.String(r.Request))
	}
	if r.Iter >= 0 {
		kv = append(kv, KeyIteration.Int64(int64(r.Iter)))
	}
	kv = appendAttrs(kv, r.AttrList())
	s.kv = kv
	return kv
}

// appendAttrs converts profiler attributes, keeping their keys.
func appendAttrs(kv []attribute.KeyValue, attrs []profiler.Attr) []attribute.KeyValue {
	for _, a := range attrs {
		k := attribute.Key(a.Key)
		switch a.Type() {
		case profiler.AttrInt:
			kv = append(kv, k.Int64(a.AsInt()))
		case profiler.AttrFloat:
			kv = append(kv, k.Float64(a.AsFloat()))
		case profiler.AttrString:
			kv = append(kv, k.String(a.AsString()))
		case profiler.AttrBool:
			kv = append(kv, k.Bool(a.AsBool()))
		case profiler.AttrInts:
			kv = append(kv, k.IntSlice(a.AsInts()))
		}
	}
	return kv
}

// ref keeps what a child needs of sc.
func (s *sessionSink) ref(sc oteltrace.SpanContext) spanRef {
	r := spanRef{tid: sc.TraceID(), sid: sc.SpanID(), flags: sc.TraceFlags()}
	if ts := sc.TraceState(); ts.Len() > 0 {
		key := ts.String()
		i, ok := s.stateIdx[key]
		if !ok && len(s.states) <= 0xffff {
			if s.stateIdx == nil {
				s.stateIdx = make(map[string]uint16)
			}
			i = uint16(len(s.states))
			s.states = append(s.states, ts)
			s.stateIdx[key] = i
		}
		r.state = i
	}
	return r
}

func (s *sessionSink) spanContext(r spanRef) oteltrace.SpanContext {
	return oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
		TraceID:    r.tid,
		SpanID:     r.sid,
		TraceFlags: r.flags,
		TraceState: s.states[r.state],
	})
}

func (s *sessionSink) slot(i int32) *pending {
	return &s.blocks[i/blockLen][i%blockLen]
}

func (s *sessionSink) alloc() int32 {
	s.nPending++
	if s.free >= 0 {
		i := s.free
		s.free = s.slot(i).next
		return i
	}
	if s.used == len(s.blocks)*blockLen {
		s.blocks = append(s.blocks, make([]pending, blockLen))
	}
	i := int32(s.used)
	s.used++
	return i
}

// release1 frees slot i (and lets go of what its record references).
func (s *sessionSink) release1(i int32) {
	p := s.slot(i)
	p.rec = profiler.Record{}
	p.next = s.free
	s.free = i
	s.nPending--
}

// Stats reports the session's counts, for the profiler's manifest.
func (s *sessionSink) Stats() map[string]float64 {
	t := s.total
	return map[string]float64{
		"spans":          float64(t.spans),
		"events":         float64(t.events),
		"orphans":        float64(t.orphans),
		"dropped":        float64(t.dropped),
		"dropped_events": float64(t.droppedEvents),
		"request_traces": float64(t.requestTraces),
	}
}
