package profiler

import (
	"context"
	"runtime/trace"
	"sync"
	"sync/atomic"
)

// active counts the profiling sessions recording in this process. When it is
// zero a span site costs one atomic load (and one for runtime/trace).
var active atomic.Int32

// Track places records on the timeline: a stage (a process in the Chrome
// trace), a lane within it (a thread), and the request being served.
type Track struct {
	Stage     int
	StageName string
	Lane      int
	LaneName  string
	Request   string
}

// scope is what every frame below an engine activation shares: who records
// and where.
type scope struct {
	p     *Profiler
	track Track
	// open counts the recorded spans open below an activation, which then
	// cannot pause: a span that waits for input contains the wait, and the
	// operator slice must contain the span.
	open atomic.Int32
}

type frameKey struct{}

// frame is a context carrying the innermost span. Frames are never reused
// (a context may outlive its span), so they are allocated from slabs.
type frame struct {
	context.Context
	sc   *scope
	sess atomic.Pointer[session] // the session rec belongs to
	rec  atomic.Uint64           // id of the nearest recorded span, 0 when none
	iter int32
}

func (f *frame) Value(key any) any {
	if _, ok := key.(frameKey); ok {
		return f
	}
	return f.Context.Value(key)
}

// frameSlab amortizes frame allocation: one allocation per len(frames) spans.
type frameSlab struct {
	frames [64]frame
	n      int
}

var slabPool = sync.Pool{New: func() any { return new(frameSlab) }}

func newFrame() *frame {
	s := slabPool.Get().(*frameSlab)
	f := &s.frames[s.n]
	s.n++
	if s.n < len(s.frames) {
		slabPool.Put(s)
	}
	return f
}

// spanData is the mutable part of an open span. It is recycled at End, and
// Span handles carry a generation so that a stale handle does nothing.
type spanData struct {
	gen          uint32
	closesWindow bool
	// tracked: an iteration, kept in its session's openIters while open
	// (so that a stop cuts it rather than drops it); its record is then
	// guarded by the session's openMu.
	tracked bool
	sc      *scope
	sess    *session
	st      *stageState
	region  *trace.Region
	rec     Record
}

var spanPool = sync.Pool{New: func() any { return new(spanData) }}

// Span is an open span. The zero Span is valid and does nothing; so does a
// Span whose End was already called.
type Span struct {
	d   *spanData
	gen uint32
}

// Recording reports whether the span will be exported.
func (s Span) Recording() bool { return s.d != nil && s.d.gen == s.gen && s.d.sess != nil }

// SetAttributes adds attributes to a recording span (up to MaxAttrs in all).
func (s Span) SetAttributes(attrs ...Attr) {
	d := s.d
	if d == nil || d.gen != s.gen || d.sess == nil {
		return
	}
	if d.tracked {
		d.sess.openMu.Lock()
		defer d.sess.openMu.Unlock()
	}
	d.sess.addAttrs(&d.rec, attrs)
}

// End ends the span. Call it once, from the goroutine that started it.
func (s Span) End() {
	if s.d != nil {
		s.d.end(s.gen)
	}
}

func (d *spanData) end(gen uint32) {
	if d.gen != gen {
		return
	}
	end := Now()
	if d.region != nil {
		d.region.End()
	}
	if sess := d.sess; sess != nil {
		if d.tracked {
			sess.openMu.Lock()
			if _, ok := sess.openIters[d]; ok { // else a stop has cut it
				delete(sess.openIters, d)
				d.rec.End = end
				sess.emit(&d.rec)
			}
			sess.openMu.Unlock()
		} else {
			d.rec.End = end
			sess.emit(&d.rec)
		}
		d.sc.open.Add(-1)
		if d.closesWindow {
			sess.windowDone(d.st)
		}
	}
	d.gen++
	d.sess, d.st, d.sc, d.region, d.closesWindow, d.tracked = nil, nil, nil, nil, false, false
	// Only the fields that a new span does not overwrite are reset (a full
	// clear would cost as much as the copy into the batch).
	d.rec.NumAttrs, d.rec.Parent, d.rec.Value = 0, 0, 0
	spanPool.Put(d)
}

// Start starts a module-level span (a layer, or any region of user code)
// named name. The returned context carries it, so spans started from it nest
// under it. With no profile recording this costs a few nanoseconds and does
// not allocate.
func Start(ctx context.Context, name string, attrs ...Attr) (context.Context, Span) {
	if off() {
		return ctx, Span{}
	}
	return startSpan(ctx, KindModule, name, attrs)
}

// off reports that no span needs to be made: nothing records and Go's
// execution tracer is off.
func off() bool { return active.Load() == 0 && !trace.IsEnabled() }

// StartKind starts a span of the given kind; device dispatch uses it for
// kernels. KindIteration spans should come from Step, which counts them.
func StartKind(ctx context.Context, kind Kind, name string, attrs ...Attr) (context.Context, Span) {
	if off() {
		return ctx, Span{}
	}
	return startKind(ctx, kind, name, attrs)
}

func startKind(ctx context.Context, kind Kind, name string, attrs []Attr) (context.Context, Span) {
	if kind == KindIteration {
		return stepSpan(ctx, name, attrs)
	}
	return startSpan(ctx, kind, name, attrs)
}

// Step starts the span of one iteration of a loop (a denoise step, a decode
// step, a vocoder chunk). Iterations are counted per stage: the delay and
// max-iteration windows of the running profile are in these units, and spans
// started from the returned context carry the iteration's index.
func Step(ctx context.Context, name string, attrs ...Attr) (context.Context, Span) {
	if off() {
		return ctx, Span{}
	}
	return stepSpan(ctx, name, attrs)
}

// Event records an instant event.
func Event(ctx context.Context, name string, attrs ...Attr) {
	if active.Load() == 0 {
		return
	}
	sc, pf, s, _ := lookup(ctx)
	if s == nil {
		return
	}
	var r Record
	fillRecord(&r, sc, pf, s, KindInstant, name)
	r.End = r.Start
	s.addAttrs(&r, attrs)
	s.emit(&r)
}

// Counter records a sample of the counter track name (memory in use, queue
// depth) on the context's stage.
func Counter(ctx context.Context, name string, value float64) {
	if active.Load() == 0 {
		return
	}
	sc, pf, s, _ := lookup(ctx)
	if s == nil {
		return
	}
	var r Record
	fillRecord(&r, sc, pf, s, KindCounter, name)
	r.End = r.Start
	r.Value = value
	s.emit(&r)
}

// RecordShapes reports whether the profile recording ctx's stage wants
// tensor shapes in its spans (OMNIFLOW_PROFILER_RECORD_SHAPES).
func RecordShapes(ctx context.Context) bool {
	if active.Load() == 0 {
		return false
	}
	_, _, s, _ := lookup(ctx)
	return s != nil && s.opts.RecordShapes
}

// Recording reports whether spans started from ctx would be recorded.
func Recording(ctx context.Context) bool {
	if active.Load() == 0 {
		return false
	}
	_, _, s, _ := lookup(ctx)
	return s != nil
}

// lookup finds the scope and innermost frame of ctx, and the session that
// records there (nil when none records the context's stage right now).
func lookup(ctx context.Context) (*scope, *frame, *session, *stageState) {
	pf, _ := ctx.Value(frameKey{}).(*frame)
	var sc *scope
	if pf != nil {
		sc = pf.sc
	} else {
		sc = defaultScope.Load()
	}
	if sc == nil || sc.p == nil {
		return sc, pf, nil, nil
	}
	s := sc.p.cur.Load()
	if s == nil {
		return sc, pf, nil, nil
	}
	st := s.stage(sc.track.Stage)
	if !s.recording(st) {
		return sc, pf, nil, st
	}
	return sc, pf, s, st
}

func fillRecord(r *Record, sc *scope, pf *frame, s *session, kind Kind, name string) {
	r.Kind = kind
	r.Name = name
	r.Stage = int32(sc.track.Stage)
	r.StageName = sc.track.StageName
	r.Lane = int32(sc.track.Lane)
	r.LaneName = sc.track.LaneName
	r.Request = sc.track.Request
	r.Iter = -1
	if pf != nil {
		r.Iter = pf.iter
		if pf.sess.Load() == s {
			r.Parent = pf.rec.Load()
		}
	}
	r.Start = Now()
}

func startSpan(ctx context.Context, kind Kind, name string, attrs []Attr) (context.Context, Span) {
	sc, pf, s, _ := lookup(ctx)
	if s == nil {
		return regionOnly(ctx, name)
	}
	d := spanPool.Get().(*spanData)
	d.sess = s
	d.sc = sc
	sc.open.Add(1)
	f := newFrame()
	f.Context = ctx
	f.sc = sc
	f.iter = -1
	if pf != nil {
		f.iter = pf.iter
	}
	id := s.ids.Add(1)
	f.sess.Store(s)
	f.rec.Store(id)
	if trace.IsEnabled() {
		d.region = trace.StartRegion(ctx, name)
	}
	r := &d.rec
	r.ID = id
	s.addAttrs(r, attrs)
	fillRecord(r, sc, pf, s, kind, name) // takes the start time last
	return f, Span{d: d, gen: d.gen}
}

func stepSpan(ctx context.Context, name string, attrs []Attr) (context.Context, Span) {
	sc, pf, _, st := lookup(ctx)
	if st == nil {
		return regionOnly(ctx, name)
	}
	s := sc.p.cur.Load()
	if s == nil || s.closing.Load() || !st.selected {
		return regionOnly(ctx, name)
	}
	st.stepped.Store(true)
	n := st.iters.Add(1) - 1
	delay, max := int64(s.opts.DelayIters), int64(s.opts.MaxIters)
	if n < delay {
		return regionOnly(ctx, name)
	}
	if n == delay {
		st.state.CompareAndSwap(stateWaiting, stateRecording)
		if !s.windowOpen.Load() {
			s.windowOpen.Store(true)
		}
	}
	if max > 0 && n >= delay+max {
		return regionOnly(ctx, name)
	}
	if st.state.Load() != stateRecording {
		return regionOnly(ctx, name)
	}
	d := spanPool.Get().(*spanData)
	d.sess = s
	d.sc = sc
	sc.open.Add(1)
	d.st = st
	d.closesWindow = max > 0 && n == delay+max-1
	f := newFrame()
	f.Context = ctx
	f.sc = sc
	f.iter = int32(n)
	id := s.ids.Add(1)
	f.sess.Store(s)
	f.rec.Store(id)
	if trace.IsEnabled() {
		d.region = trace.StartRegion(ctx, name)
	}
	r := &d.rec
	r.ID = id
	s.addAttrs(r, attrs)
	fillRecord(r, sc, pf, s, KindIteration, name)
	r.Iter = int32(n)
	s.openMu.Lock()
	if !s.closing.Load() {
		d.tracked = true
		s.openIters[d] = struct{}{}
	}
	s.openMu.Unlock()
	return f, Span{d: d, gen: d.gen}
}

// Silent returns a context below ctx in which no span, event or counter
// records, whichever session runs (Go's execution tracer still sees
// regions). A stage loop runs an iteration that is not recorded — outside
// its window, or begun before the session started — under it, so that the
// iteration's layers and kernels are not recorded without the iteration
// around them. Make it once per loop: it allocates.
func Silent(ctx context.Context) context.Context {
	tr := Track{Stage: NoStage}
	if pf, ok := ctx.Value(frameKey{}).(*frame); ok {
		tr = pf.sc.track
	}
	return &frame{Context: ctx, sc: &scope{track: tr}, iter: -1}
}

// regionOnly serves runtime/trace when no profile records the span.
func regionOnly(ctx context.Context, name string) (context.Context, Span) {
	if !trace.IsEnabled() {
		return ctx, Span{}
	}
	d := spanPool.Get().(*spanData)
	d.region = trace.StartRegion(ctx, name)
	return ctx, Span{d: d, gen: d.gen}
}
