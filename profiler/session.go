package profiler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// maxStages bounds stage ids: each stage of a session has its own iteration
// window in a fixed table, so the span path never takes a lock or a map.
const maxStages = 256

// batchLen is the number of records per export batch.
const batchLen = 64

const (
	stateWaiting int32 = iota
	stateRecording
	stateDone
)

type stageState struct {
	id       int  // the stage id (NoStage for slot 0, maxStages for the overflow)
	selected bool // fixed at Start
	state    atomic.Int32
	iters    atomic.Int64
	stepped  atomic.Bool
}

// shard is one lock-protected batch under construction. Writers pick a shard
// at random and fall over to the next when it is taken, so they rarely wait.
type shard struct {
	mu     sync.Mutex
	closed bool
	buf    []Record
	_      [40]byte // keep shards on separate cache lines
}

type session struct {
	p        *Profiler
	info     SessionInfo
	opts     Options
	explicit bool // stages were selected by id
	meta     map[string]string

	sinks     []Sink
	sinkNames []string

	closing    atomic.Bool
	windowOpen atomic.Bool // some stage has begun recording its iterations
	ids        atomic.Uint64

	shards []shard
	mask   uint32
	queue  chan []Record
	free   chan []Record

	offered      atomic.Uint64
	dropped      atomic.Uint64
	attrsDropped atomic.Uint64

	stages    [maxStages + 1]stageState // index stage+1; slot 0 is NoStage
	overflow  stageState                // stage ids >= maxStages share it
	stopOnce  sync.Once
	stopCh    chan stopRequest
	closeOnce sync.Once
	done      chan struct{}

	openMu    sync.Mutex
	open      map[*Activation]struct{}
	openIters map[*spanData]struct{} // recorded iteration spans not yet ended

	// owned by the exporter goroutine
	exported   uint64
	intervals  [][]spanTime // blocks of intervalBlock, so growth never copies
	names      map[string]uint32
	nameList   []string
	lastStage  int32
	lastReq    string
	requests   map[string]struct{}
	reqOrder   []string
	stageNames map[int32]string
	stageEvts  map[int32]uint64
	stageIters map[int32]uint64 // iteration spans exported
	sinkErrs   []error

	result Result
	err    error
}

func newSession(ctx context.Context, p *Profiler, info SessionInfo, sc startConfig) (*session, error) {
	n := 4 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	n = 1 << bits.Len(uint(n-1))
	s := &session{
		p:          p,
		info:       info,
		opts:       p.cfg.opts,
		explicit:   len(sc.stages) > 0,
		meta:       sc.meta,
		shards:     make([]shard, n),
		mask:       uint32(n - 1),
		queue:      make(chan []Record, p.cfg.opts.QueueBatches),
		free:       make(chan []Record, p.cfg.opts.QueueBatches),
		stopCh:     make(chan stopRequest, 1),
		done:       make(chan struct{}),
		open:       map[*Activation]struct{}{},
		openIters:  map[*spanData]struct{}{},
		requests:   map[string]struct{}{},
		stageNames: map[int32]string{},
		stageEvts:  map[int32]uint64{},
		stageIters: map[int32]uint64{},
		names:      map[string]uint32{},
	}
	initial := stateRecording
	if s.opts.DelayIters > 0 {
		initial = stateWaiting
	}
	for i := range s.stages {
		st := &s.stages[i]
		st.id = i - 1
		st.selected = !s.explicit
		st.state.Store(initial)
	}
	s.overflow.id = maxStages
	s.overflow.selected = !s.explicit
	s.overflow.state.Store(initial)
	for _, id := range sc.stages {
		s.stages[id+1].selected = true
	}
	for _, f := range p.cfg.sinks {
		sk, err := f.Open(ctx, info)
		if err != nil {
			// Shut the sinks already opened down with a cancelled context:
			// they abandon their files instead of completing empty ones.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			for _, o := range s.sinks {
				o.Shutdown(cctx)
			}
			return nil, fmt.Errorf("profiler: opening sink %T: %w", f, err)
		}
		s.sinks = append(s.sinks, sk)
		s.sinkNames = append(s.sinkNames, fmt.Sprintf("%T", sk))
	}
	return s, nil
}

func (s *session) stage(id int) *stageState {
	if id >= -1 && id < maxStages {
		return &s.stages[id+1]
	}
	return &s.overflow
}

// recording: a stage records inside its iteration window; a stage without
// a loop (one that has not stepped and on which no engine declared a loop: a
// tokenizer, a renderer) waits for the first window of the session to open,
// then records.
func (s *session) recording(st *stageState) bool {
	if !st.selected || s.closing.Load() {
		return false
	}
	switch st.state.Load() {
	case stateRecording:
		return true
	case stateWaiting:
		return s.windowOpen.Load() && !st.stepped.Load() && !s.p.loopsOn(st.id)
	}
	return false
}

func (s *session) addAttrs(r *Record, attrs []Attr) {
	for _, a := range attrs {
		if int(r.NumAttrs) >= MaxAttrs {
			s.attrsDropped.Add(1)
			continue
		}
		r.Attrs[r.NumAttrs] = a
		r.NumAttrs++
	}
}

// emit copies r into a batch. It never blocks on export: a full queue or the
// event cap drops the batch and counts it.
func (s *session) emit(r *Record) {
	i := rand.Uint32() & s.mask
	var sh *shard
	for j := uint32(0); j <= s.mask; j++ {
		c := &s.shards[(i+j)&s.mask]
		if c.mu.TryLock() {
			sh = c
			break
		}
	}
	if sh == nil {
		sh = &s.shards[i]
		sh.mu.Lock()
	}
	if sh.closed {
		sh.mu.Unlock()
		return
	}
	if sh.buf == nil {
		select {
		case sh.buf = <-s.free:
		default:
			sh.buf = make([]Record, 0, batchLen)
		}
	}
	sh.buf = append(sh.buf, *r)
	if len(sh.buf) == batchLen {
		s.push(sh.buf)
		sh.buf = nil
	}
	sh.mu.Unlock()
}

// push hands a full batch to the exporter, applying the event cap.
func (s *session) push(b []Record) {
	n := uint64(len(b))
	total := s.offered.Add(n)
	max := uint64(s.opts.MaxEvents)
	if total > max {
		over := total - max
		if over > n {
			over = n
		}
		s.dropped.Add(over)
		b = b[:n-over]
		if len(b) == 0 {
			s.recycle(b)
			return
		}
	}
	select {
	case s.queue <- b:
	default:
		s.dropped.Add(uint64(len(b)))
		s.recycle(b)
	}
}

func (s *session) recycle(b []Record) {
	clear(b[:cap(b)])
	select {
	case s.free <- b[:0]:
	default:
	}
}

// windowDone marks a stage's iteration window complete and stops the
// session when every stage it waits for is complete.
func (s *session) windowDone(st *stageState) {
	st.state.Store(stateDone)
	if s.allWindowsDone() {
		s.requestStop(context.Background(), StopMaxIters)
	}
}

// allWindowsDone: with stages selected by id, each of them must have
// recorded its window; with all stages, each stage that has stepped or that
// an engine declared a loop on (Profiler.ExpectIterations).
func (s *session) allWindowsDone() bool {
	any := false
	for i := range s.stages {
		st := &s.stages[i]
		if !st.selected {
			continue
		}
		if s.explicit || st.stepped.Load() || s.p.loopsOn(st.id) {
			if st.state.Load() != stateDone {
				return false
			}
			any = true
		}
	}
	return any
}

type stopRequest struct {
	reason StopReason
	ctx    context.Context // bounds the sinks' Shutdown
}

func (s *session) requestStop(ctx context.Context, reason StopReason) {
	s.stopOnce.Do(func() {
		s.markClosing()
		s.stopCh <- stopRequest{reason, ctx}
	})
}

// markClosing stops new spans from recording in this session.
func (s *session) markClosing() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		active.Add(-1)
	})
}

// run is the session's exporter goroutine: it exports batches as they come
// and finalizes the session when asked to stop.
func (s *session) run() {
	defer close(s.done)
	ctx := context.Background()
	for {
		select {
		case b := <-s.queue:
			s.export(ctx, b)
		case req := <-s.stopCh:
			s.finalize(req.ctx, req.reason)
			return
		}
	}
}

func (s *session) export(ctx context.Context, b []Record) {
	for i := range b {
		s.observe(&b[i])
		s.exported++
	}
	for i, sk := range s.sinks {
		if err := sk.Export(ctx, b); err != nil {
			s.sinkError(i, err)
		}
	}
	s.recycle(b)
}

func (s *session) sinkError(i int, err error) {
	err = fmt.Errorf("profiler: sink %s: %w", s.sinkNames[i], err)
	if len(s.sinkErrs) < 16 {
		s.sinkErrs = append(s.sinkErrs, err)
	}
	s.p.cfg.logger.Warn("profile export failed", "sink", s.sinkNames[i], "err", err)
}

const intervalBlock = 4096

// observe keeps what the manifest and the summary need of a record.
func (s *session) observe(r *Record) {
	if r.Stage != s.lastStage || s.exported == 0 {
		s.lastStage = r.Stage
		if _, ok := s.stageNames[r.Stage]; !ok || r.StageName != "" {
			s.stageNames[r.Stage] = r.StageName
		}
	}
	s.stageEvts[r.Stage]++
	if r.Request != "" && r.Request != s.lastReq {
		s.lastReq = r.Request
		if _, ok := s.requests[r.Request]; !ok {
			s.requests[r.Request] = struct{}{}
			s.reqOrder = append(s.reqOrder, r.Request)
		}
	}
	if !r.Kind.IsSpan() {
		return
	}
	if r.Kind == KindIteration {
		s.stageIters[r.Stage]++
	}
	name, ok := s.names[r.Name]
	if !ok {
		name = uint32(len(s.nameList))
		s.names[r.Name] = name
		s.nameList = append(s.nameList, r.Name)
	}
	iv := spanTime{
		track: uint64(uint32(r.Stage))<<32 | uint64(uint32(r.Lane)),
		name:  name,
		kind:  r.Kind,
		start: r.Start,
		end:   r.End,
	}
	if a, ok := r.Attr("flops"); ok {
		iv.flops = a.AsFloat()
	}
	if a, ok := r.Attr("bytes"); ok {
		iv.bytes = a.AsFloat()
	}
	if n := len(s.intervals); n == 0 || len(s.intervals[n-1]) == intervalBlock {
		s.intervals = append(s.intervals, make([]spanTime, 0, intervalBlock))
	}
	last := &s.intervals[len(s.intervals)-1]
	*last = append(*last, iv)
}

// spanTime is what the summary needs of a span, kept by the exporter until
// the session ends. It holds no pointers (names are indexes into
// session.nameList), so a long session's blocks cost the garbage collector
// nothing to scan.
type spanTime struct {
	track        uint64
	start, end   int64
	flops, bytes float64
	name         uint32
	kind         Kind
}

func (s *session) allIntervals() []Interval {
	n := 0
	for _, b := range s.intervals {
		n += len(b)
	}
	all := make([]Interval, 0, n)
	for _, b := range s.intervals {
		for _, iv := range b {
			all = append(all, Interval{
				Track: iv.track, Name: s.nameList[iv.name], Cat: iv.kind.String(),
				Start: iv.start, End: iv.end, Flops: iv.flops, Bytes: iv.bytes,
			})
		}
	}
	s.intervals = nil
	return all
}

// finalizeHook, when set by a test, runs after new spans stop recording and
// before the shards close: spans still open may end (and be accepted) there.
var finalizeHook func()

func (s *session) finalize(ctx context.Context, reason StopReason) {
	stopped := time.Now()
	s.markClosing()
	if finalizeHook != nil {
		finalizeHook()
	}

	// Close every shard with openMu held, so that an activation or an
	// iteration ending right now is either already in a batch or still in
	// s.open or s.openIters (and is written
	// truncated below), never lost.
	s.openMu.Lock()
	var tail []Record
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.closed = true
		if len(sh.buf) > 0 {
			tail = append(tail, sh.buf...)
		}
		sh.buf = nil
		sh.mu.Unlock()
	}
	// The cut is taken once every shard is closed: a span accepted before
	// that took its end time earlier, so it ends inside the truncated
	// activation that encloses it; a span ending later is not recorded.
	stopMono := Now()
	cut := func(r Record) {
		r.End = stopMono
		s.addAttrs(&r, []Attr{Bool("truncated", true)})
		tail = append(tail, r)
	}
	for a := range s.open {
		cut(a.cur.rec)
	}
	clear(s.open)
	// Iterations still running are cut the same way: the spans of theirs
	// already accepted end inside them.
	for d := range s.openIters {
		cut(d.rec)
	}
	clear(s.openIters)
	s.openMu.Unlock()

	for {
		select {
		case b := <-s.queue:
			s.export(ctx, b)
			continue
		default:
		}
		break
	}
	// The tail is subject to the event cap like every batch.
	for len(tail) > 0 {
		n := min(len(tail), batchLen)
		b := make([]Record, n, batchLen)
		copy(b, tail[:n])
		tail = tail[n:]
		if total := s.offered.Add(uint64(n)); total > uint64(s.opts.MaxEvents) {
			over := min(total-uint64(s.opts.MaxEvents), uint64(n))
			s.dropped.Add(over)
			b = b[:uint64(n)-over]
		}
		if len(b) > 0 {
			s.export(ctx, b)
		}
	}

	var files []string
	sinkStats := map[string]map[string]float64{}
	for i, sk := range s.sinks {
		if err := sk.Shutdown(ctx); err != nil {
			s.sinkError(i, err)
		}
		if fs, ok := sk.(FileSink); ok {
			files = append(files, fs.Files()...)
		}
		if st, ok := sk.(StatsSink); ok {
			sinkStats[s.sinkNames[i]] = st.Stats()
		}
	}
	s.sinks = nil // the session may be kept for its result; its sinks need not

	res := Result{
		Name:         s.info.Name,
		Dir:          s.info.Dir,
		Events:       s.exported,
		Dropped:      s.dropped.Load(),
		AttrsDropped: s.attrsDropped.Load(),
		Reason:       reason,
		Started:      s.info.Started,
		Stopped:      stopped,
		Stages:       s.stageInfos(),
		Summary:      Summarize(s.allIntervals()),
	}
	var errs []error
	errs = append(errs, s.sinkErrs...)
	if s.info.Dir != "" {
		sumPath := filepath.Join(s.info.Dir, "summary.txt")
		if err := writeFileAtomic(sumPath, func(f *os.File) error {
			return res.Summary.WriteText(f, s.info.Name)
		}); err != nil {
			errs = append(errs, err)
		} else {
			files = append(files, sumPath)
		}
		manPath := filepath.Join(s.info.Dir, "manifest.json")
		res.Files = append(slices.Clone(files), manPath)
		if err := writeFileAtomic(manPath, func(f *os.File) error {
			enc := json.NewEncoder(f)
			enc.SetIndent("", "  ")
			return enc.Encode(s.manifest(res, errs, sinkStats))
		}); err != nil {
			errs = append(errs, err)
			res.Files = files
		}
	} else {
		res.Files = files
	}
	s.result = res
	s.err = errors.Join(errs...)
	s.p.finished(s)
}

func (s *session) stageInfos() []StageInfo {
	var out []StageInfo
	for i := range s.stages {
		st := &s.stages[i]
		id := int32(i - 1)
		name, seen := s.stageNames[id]
		evts := s.stageEvts[id]
		if !seen && evts == 0 && !(s.explicit && st.selected) && !st.stepped.Load() {
			continue
		}
		out = append(out, StageInfo{ID: int(id), Name: name, Selected: st.selected, Iterations: st.iters.Load(),
			Recorded: s.stageIters[id], Events: evts})
	}
	return out
}

// Manifest is the content of a session's manifest.json.
type Manifest struct {
	Format        int                           `json:"format"`
	Version       string                        `json:"version"`
	Name          string                        `json:"name"`
	Started       time.Time                     `json:"started"`
	Stopped       time.Time                     `json:"stopped"`
	DurationMS    float64                       `json:"duration_ms"`
	Reason        StopReason                    `json:"reason"`
	Options       Options                       `json:"options"`
	SelectedAll   bool                          `json:"selected_all_stages"`
	Stages        []StageInfo                   `json:"stages"`
	Requests      []string                      `json:"requests"`
	RequestsTotal int                           `json:"requests_total"`
	Meta          map[string]string             `json:"meta,omitempty"`
	Sinks         []string                      `json:"sinks"`
	SinkStats     map[string]map[string]float64 `json:"sink_stats,omitempty"`
	Files         []string                      `json:"files"`
	Events        uint64                        `json:"events"`
	Dropped       uint64                        `json:"dropped"`
	AttrsDropped  uint64                        `json:"attrs_dropped"`
	Errors        []string                      `json:"errors,omitempty"`
}

// maxManifestRequests bounds the request ids listed in a manifest.
const maxManifestRequests = 10000

func (s *session) manifest(res Result, errs []error, sinkStats map[string]map[string]float64) Manifest {
	reqs := s.reqOrder
	if len(reqs) > maxManifestRequests {
		reqs = reqs[:maxManifestRequests]
	}
	m := Manifest{
		Format:        1,
		Version:       Version,
		Name:          res.Name,
		Started:       res.Started,
		Stopped:       res.Stopped,
		DurationMS:    float64(res.Stopped.Sub(res.Started)) / 1e6,
		Reason:        res.Reason,
		Options:       s.opts,
		SelectedAll:   !s.explicit,
		Stages:        res.Stages,
		Requests:      append([]string{}, reqs...),
		RequestsTotal: len(s.reqOrder),
		Meta:          s.meta,
		Sinks:         append([]string{}, s.sinkNames...),
		SinkStats:     sinkStats,
		Events:        res.Events,
		Dropped:       res.Dropped,
		AttrsDropped:  res.AttrsDropped,
	}
	for _, f := range res.Files {
		if rel, err := filepath.Rel(s.info.Dir, f); err == nil {
			f = rel
		}
		m.Files = append(m.Files, f)
	}
	sort.Strings(m.Files)
	for _, e := range errs {
		m.Errors = append(m.Errors, e.Error())
	}
	return m
}

// writeFileAtomic writes through a temporary file renamed into place only
// when complete.
func writeFileAtomic(path string, write func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("profiler: %w", err)
	}
	if err := write(tmp); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("profiler: writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("profiler: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("profiler: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("profiler: %w", err)
	}
	return nil
}
