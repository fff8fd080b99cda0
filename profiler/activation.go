package profiler

import (
	"context"
	"runtime/trace"
	"strconv"
)

// Activation is an engine's unit of work on a track: one graph node running
// one request, or one stage loop. It is recorded as operator slices: Pause
// ends the current slice while the work waits for input and Resume begins a
// new one, so a stage's track shows when it executes, not when it waits.
//
// Engines call Enter; model code never does (the framework, not the node,
// wraps every call in profiling). An Activation belongs to the goroutine
// that entered it.
type Activation struct {
	p      *Profiler
	f      *frame
	kind   Kind
	name   string
	attrs  []Attr
	task   *trace.Task
	region *trace.Region
	cur    struct {
		sess *session
		rec  Record
	}
}

// Enter begins an activation of kind KindOperator on track t and returns a
// context that carries the track: spans started from it land on the track's
// stage and lane, with its request id. Enter on a nil Profiler uses Default.
func (p *Profiler) Enter(ctx context.Context, t Track, name string, attrs ...Attr) (context.Context, *Activation) {
	if p == nil {
		p = Default()
	}
	a := &Activation{p: p, kind: KindOperator, name: name}
	if len(attrs) > 0 {
		a.attrs = append([]Attr(nil), attrs...)
	}
	if trace.IsEnabled() {
		ctx, a.task = trace.NewTask(ctx, stageLabel(t))
	}
	f := &frame{Context: ctx, sc: &scope{p: p, track: t}, iter: -1}
	a.f = f
	a.begin()
	return f, a
}

func stageLabel(t Track) string {
	if t.Stage == NoStage {
		return t.LaneName
	}
	return "stage " + strconv.Itoa(t.Stage) + ": " + t.StageName
}

// Track returns the activation's track.
func (a *Activation) Track() Track { return a.f.sc.track }

// Context returns the activation's context.
func (a *Activation) Context() context.Context { return a.f }

// Pause ends the current slice (call it before blocking for input). While
// a span started below the activation is open, Pause does nothing: that
// span contains the wait, and the slice must contain the span.
func (a *Activation) Pause() {
	if a == nil || a.f.sc.open.Load() > 0 {
		return
	}
	a.end(Now(), nil)
}

// Resume begins a new slice after a Pause.
func (a *Activation) Resume() {
	if a == nil || a.cur.sess != nil {
		return
	}
	a.begin()
}

// End ends the activation; a non-nil err is attached to the last slice.
func (a *Activation) End(err error) {
	if a == nil {
		return
	}
	a.end(Now(), err)
	if a.task != nil {
		a.task.End()
		a.task = nil
	}
}

func (a *Activation) begin() {
	if trace.IsEnabled() && a.region == nil {
		a.region = trace.StartRegion(a.f, a.name)
	}
	if active.Load() == 0 {
		return
	}
	s := a.p.cur.Load()
	if s == nil {
		return
	}
	t := &a.f.sc.track
	st := s.stage(t.Stage)
	if !s.recording(st) {
		return
	}
	r := &a.cur.rec
	*r = Record{
		Kind:      a.kind,
		Name:      a.name,
		Stage:     int32(t.Stage),
		StageName: t.StageName,
		Lane:      int32(t.Lane),
		LaneName:  t.LaneName,
		Request:   t.Request,
		Iter:      -1,
		ID:        s.ids.Add(1),
	}
	if pf, ok := a.f.Context.Value(frameKey{}).(*frame); ok && pf.sess.Load() == s {
		r.Parent = pf.rec.Load()
		r.Iter = pf.iter
	}
	s.addAttrs(r, a.attrs)
	r.Start = Now()
	s.openMu.Lock()
	if s.closing.Load() {
		s.openMu.Unlock()
		return
	}
	s.open[a] = struct{}{}
	s.openMu.Unlock()
	a.cur.sess = s
	a.f.sess.Store(s)
	a.f.rec.Store(r.ID)
}

func (a *Activation) end(now int64, err error) {
	if a.region != nil {
		a.region.End()
		a.region = nil
	}
	s := a.cur.sess
	if s == nil {
		return
	}
	a.cur.sess = nil
	a.f.rec.Store(0)
	a.f.sess.Store(nil)
	s.openMu.Lock()
	if _, ok := s.open[a]; ok {
		delete(s.open, a)
		r := &a.cur.rec
		r.End = now
		if err != nil {
			s.addAttrs(r, []Attr{String("error", err.Error())})
		}
		s.emit(r)
	}
	s.openMu.Unlock()
}

// Emit records a span with explicit times on track t (hand-offs, whose
// start is known only when they end). Times are profiler clock readings.
func (p *Profiler) Emit(t Track, kind Kind, name string, start, end int64, attrs ...Attr) {
	if p == nil || active.Load() == 0 {
		return
	}
	s := p.cur.Load()
	if s == nil || !s.recording(s.stage(t.Stage)) {
		return
	}
	r := Record{
		Kind:      kind,
		Name:      name,
		Stage:     int32(t.Stage),
		StageName: t.StageName,
		Lane:      int32(t.Lane),
		LaneName:  t.LaneName,
		Request:   t.Request,
		Iter:      -1,
		Start:     start,
		End:       end,
	}
	if kind.IsSpan() {
		r.ID = s.ids.Add(1)
	}
	s.addAttrs(&r, attrs)
	s.emit(&r)
}

// Recording reports whether stage is being recorded right now.
func (p *Profiler) Recording(stage int) bool {
	if p == nil || active.Load() == 0 {
		return false
	}
	s := p.cur.Load()
	return s != nil && s.recording(s.stage(stage))
}
