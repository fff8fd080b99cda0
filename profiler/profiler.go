package profiler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Version is written into every session manifest.
const Version = "0.1.0"

var (
	// ErrNotStarted is returned by Stop when no session is running and no
	// finished session is waiting to be collected.
	ErrNotStarted = errors.New("profiler: no profile is running")
	// ErrAlreadyStarted is returned by Start while a session is running.
	ErrAlreadyStarted = errors.New("profiler: a profile is already running")
	// ErrStage is returned (wrapped) by Start for a stage id that cannot
	// name a stage.
	ErrStage = errors.New("profiler: bad stage id")
)

// StopReason says why a session ended.
type StopReason string

const (
	StopRequested StopReason = "stop"      // Stop was called
	StopMaxIters  StopReason = "max_iters" // every selected stage recorded its window
)

// Result describes a finished session.
type Result struct {
	Name    string
	Dir     string   // the session folder ("" without a directory)
	Files   []string // complete files, absolute or relative to the working directory as Dir is
	Events  uint64   // records exported
	Dropped uint64   // records dropped (event cap, full queue)
	// AttrsDropped counts attributes beyond MaxAttrs per record.
	AttrsDropped uint64
	Reason       StopReason
	Started      time.Time
	Stopped      time.Time
	Stages       []StageInfo
	Summary      *Summary
}

// StageInfo is one stage as seen by a session.
type StageInfo struct {
	ID         int    `json:"id"`
	Name       string `json:"name,omitempty"`
	Selected   bool   `json:"selected"`
	Iterations int64  `json:"iterations"` // Steps counted while the session ran
	// Recorded is how many of those iterations are in the trace (the
	// MaxIters window, after the DelayIters skipped).
	Recorded uint64 `json:"recorded_iterations"`
	Events   uint64 `json:"events"` // records exported for this stage
}

// Profiler controls profiling sessions: Start opens one (a folder, its sinks,
// an exporter), Stop finishes it. Spans anywhere in the process record into
// the session of the profiler that owns their context's scope (see Enter),
// or of Default when the context has none. A Profiler is safe for concurrent
// use; Start and Stop never block the data path.
type Profiler struct {
	cfg config

	ctl sync.Mutex // serializes Start and Stop
	cur atomic.Pointer[session]

	resMu     sync.Mutex
	last      *session // finished, result not yet returned by Stop
	lastTaken bool

	// loops counts, per stage, the running engines that declared a loop
	// there (ExpectIterations).
	loops [maxStages]atomic.Int32
}

func (p *Profiler) loopsOn(stage int) bool {
	return stage >= 0 && stage < maxStages && p.loops[stage].Load() > 0
}

// ExpectIterations declares that stages run loops whose iterations call
// Step, until the returned function is called. Engines call it while they
// serve (graph plans do, for nodes whose contract says Loop). A session
// with all stages selected and MaxIters set stops by itself only when every
// stage that stepped and every declared stage has recorded its window, so a
// later stage's loop (a talker after its thinker) is not cut off by an
// earlier stage finishing first. Ids outside [0, 256) are ignored.
func (p *Profiler) ExpectIterations(stages ...int) (release func()) {
	if p == nil {
		return func() {}
	}
	var ids []int
	for _, id := range stages {
		if id >= 0 && id < maxStages {
			p.loops[id].Add(1)
			ids = append(ids, id)
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, id := range ids {
				p.loops[id].Add(-1)
			}
			// The stages still awaited may be done now.
			if s := p.cur.Load(); s != nil && s.allWindowsDone() {
				s.requestStop(context.Background(), StopMaxIters)
			}
		})
	}
}

// New returns a profiler. It records nothing until Start.
func New(opts ...Option) (*Profiler, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Profiler{cfg: c}, nil
}

// Options returns the profiler's configuration.
func (p *Profiler) Options() Options {
	if p == nil {
		return Options{}
	}
	return p.cfg.opts
}

// Enabled reports whether a profile directory is configured. Programs use it
// after FromEnv to decide whether to Start at all: setting
// OMNIFLOW_PROFILER_DIR (or VLLM_TORCH_PROFILER_DIR) is how a user asks for
// a profile.
func (p *Profiler) Enabled() bool {
	return p != nil && p.cfg.opts.Dir != ""
}

// Active reports whether a session is recording.
func (p *Profiler) Active() bool {
	if p == nil {
		return false
	}
	s := p.cur.Load()
	return s != nil && !s.closing.Load()
}

var (
	defaultProfiler atomic.Pointer[Profiler]
	defaultScope    atomic.Pointer[scope]
)

func init() {
	p := &Profiler{}
	p.cfg, _ = newConfig(nil)
	SetDefault(p)
}

// Default returns the process-wide profiler, which records spans whose
// context carries no engine scope. It starts out configured with nothing.
func Default() *Profiler { return defaultProfiler.Load() }

// SetDefault replaces the process-wide profiler.
func SetDefault(p *Profiler) {
	if p == nil {
		return
	}
	defaultProfiler.Store(p)
	defaultScope.Store(&scope{p: p, track: Track{Stage: NoStage}})
}

// Start opens a session. With Stages given, only those stages record; with
// none, all do. Start while a session is recording returns ErrAlreadyStarted;
// while the previous one is still writing its files, Start waits for it.
func (p *Profiler) Start(ctx context.Context, opts ...StartOption) error {
	if p == nil {
		return errors.New("profiler: Start on a nil *Profiler")
	}
	var sc startConfig
	for _, o := range opts {
		if o != nil {
			o(&sc)
		}
	}
	for _, id := range sc.stages {
		if id < 0 || id >= maxStages {
			return fmt.Errorf("%w: stage %d out of range [0, %d)", ErrStage, id, maxStages)
		}
	}
	p.ctl.Lock()
	defer p.ctl.Unlock()
	if s := p.cur.Load(); s != nil {
		if !s.closing.Load() {
			return ErrAlreadyStarted
		}
		select { // the previous session is writing its files
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("profiler: waiting for the previous session to finish: %w", ctx.Err())
		}
	}
	name := sc.name
	if name == "" {
		name = p.cfg.opts.Name
	}
	if name == "" {
		name = "profile"
	}
	started := time.Now()
	info := SessionInfo{Name: name, Started: started, StartedMono: Now(), Options: p.cfg.opts}
	if p.cfg.opts.Dir != "" {
		dir, err := makeSessionDir(p.cfg.opts.Dir, started, name)
		if err != nil {
			return err
		}
		info.Dir = dir
	}
	s, err := newSession(ctx, p, info, sc)
	if err != nil {
		if info.Dir != "" {
			os.Remove(info.Dir) // only succeeds if the failed sinks left it empty
		}
		return err
	}
	p.resMu.Lock()
	p.last, p.lastTaken = nil, false
	p.resMu.Unlock()
	active.Add(1)
	p.cur.Store(s)
	go s.run()
	return nil
}

// Stop ends the running session and returns once every file is complete.
// If the session already stopped by itself (max iterations), Stop returns
// its result once. Stop with nothing to report returns ErrNotStarted. The
// returned error reports sink failures; the Result is valid either way.
func (p *Profiler) Stop(ctx context.Context) (Result, error) {
	if p == nil {
		return Result{}, ErrNotStarted
	}
	p.ctl.Lock()
	defer p.ctl.Unlock()
	s := p.cur.Load()
	if s == nil {
		p.resMu.Lock()
		defer p.resMu.Unlock()
		if p.last != nil && !p.lastTaken {
			p.lastTaken = true
			return p.last.result, p.last.err
		}
		return Result{}, ErrNotStarted
	}
	s.requestStop(ctx, StopRequested)
	select {
	case <-s.done:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("profiler: stop: waiting for files: %w", ctx.Err())
	}
	p.resMu.Lock()
	defer p.resMu.Unlock()
	if p.last == s {
		p.lastTaken = true
	}
	return s.result, s.err
}

// Wait blocks until the running session ends by itself or by Stop, and
// returns its result (and marks it collected). Without a running session it
// behaves like Stop.
func (p *Profiler) Wait(ctx context.Context) (Result, error) {
	if p == nil {
		return Result{}, ErrNotStarted
	}
	s := p.cur.Load()
	if s != nil {
		select {
		case <-s.done:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	p.resMu.Lock()
	defer p.resMu.Unlock()
	if p.last != nil && !p.lastTaken {
		p.lastTaken = true
		return p.last.result, p.last.err
	}
	return Result{}, ErrNotStarted
}

// finished is called by a session's exporter once its files are complete.
func (p *Profiler) finished(s *session) {
	p.resMu.Lock()
	p.last, p.lastTaken = s, false
	p.resMu.Unlock()
	p.cur.CompareAndSwap(s, nil)
}

// makeSessionDir creates <dir>/<YYYYmmdd-HHMMSS>_<name>, adding -2, -3, ...
// when a folder of that name exists.
func makeSessionDir(dir string, t time.Time, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("profiler: creating profile directory: %w", err)
	}
	base := filepath.Join(dir, t.Format("20060102-150405")+"_"+sanitizeName(name))
	path := base
	for i := 2; ; i++ {
		err := os.Mkdir(path, 0o755)
		if err == nil {
			return path, nil
		}
		if !errors.Is(err, os.ErrExist) || i > 1000 {
			return "", fmt.Errorf("profiler: creating session folder: %w", err)
		}
		path = fmt.Sprintf("%s-%d", base, i)
	}
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	out := strings.Trim(b.String(), ".")
	if out == "" {
		return "profile"
	}
	return out
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
