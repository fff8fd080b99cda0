package chrome

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/omniflow-go/omniflow/profiler"
)

// DefaultFileName is the trace's name inside the session folder.
const DefaultFileName = "trace.json.gz"

// DefaultMaxFlowAnchors bounds the operator slices a session holds for its
// flow arrows (32 bytes of memory each, so 32 MiB at most; their events
// wait in a temporary file).
const DefaultMaxFlowAnchors = 1 << 20

// ErrShutdown is returned by Export after Shutdown.
var ErrShutdown = errors.New("chrome sink: export after shutdown")

// errNoDir is what Open says when the profiler writes no files.
var errNoDir = errors.New("chrome sink: the profiler has no directory; use profiler.WithDir or set OMNIFLOW_PROFILER_DIR")

// Option configures an Exporter.
type Option func(*config)

type config struct {
	fileName   string
	maxAnchors int
	level      int
	errs       []error
}

// WithFileName sets the trace's base name in the session folder (default
// DefaultFileName). The file is gzip-compressed whatever its name.
func WithFileName(name string) Option { return func(c *config) { c.fileName = name } }

// WithMaxFlowAnchors bounds how many operator slices a session holds to
// draw flow arrows between (default DefaultMaxFlowAnchors); 0 draws no
// arrows. Past the bound, slices are written at once and their requests
// get no arrows; the trace's otherData counts them.
func WithMaxFlowAnchors(n int) Option { return func(c *config) { c.maxAnchors = n } }

// WithCompressionLevel sets the gzip level (default gzip.BestSpeed: the
// exporter must keep up with the profiler; better levels save about a
// third of the size at several times the CPU).
func WithCompressionLevel(level int) Option { return func(c *config) { c.level = level } }

func newConfig(opts []Option) config {
	c := config{fileName: DefaultFileName, maxAnchors: DefaultMaxFlowAnchors, level: gzip.BestSpeed}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	switch {
	case c.fileName == "" || c.fileName == "." || c.fileName == "..":
		c.errs = append(c.errs, fmt.Errorf("chrome sink: file name %q: want a base name such as %q", c.fileName, DefaultFileName))
	case strings.ContainsAny(c.fileName, `/\`) || filepath.Base(c.fileName) != c.fileName:
		c.errs = append(c.errs, fmt.Errorf("chrome sink: file name %q has a directory part; the file goes into the session folder", c.fileName))
	}
	if c.maxAnchors < 0 {
		c.errs = append(c.errs, fmt.Errorf("chrome sink: max flow anchors must be >= 0, got %d", c.maxAnchors))
	}
	if c.level < gzip.HuffmanOnly || c.level > gzip.BestCompression {
		c.errs = append(c.errs, fmt.Errorf("chrome sink: gzip level %d out of range [%d, %d]", c.level, gzip.HuffmanOnly, gzip.BestCompression))
	}
	return c
}

// Exporter is a profiler.SinkFactory: each profiling session it opens
// writes one Chrome trace into the session's folder.
type Exporter struct {
	cfg config
}

// New returns an Exporter. Invalid options are reported by Open.
func New(opts ...Option) *Exporter { return &Exporter{cfg: newConfig(opts)} }

var _ profiler.SinkFactory = (*Exporter)(nil)

// Open starts a session's trace: it creates a temporary file in info.Dir
// that Shutdown renames to the final name once the trace is complete.
func (e *Exporter) Open(ctx context.Context, info profiler.SessionInfo) (profiler.Sink, error) {
	if err := errors.Join(e.cfg.errs...); err != nil {
		return nil, err
	}
	if info.Dir == "" {
		return nil, errNoDir
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chrome sink: %w", err)
	}
	final := filepath.Join(info.Dir, e.cfg.fileName)
	f, err := os.CreateTemp(info.Dir, "."+e.cfg.fileName+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("chrome sink: %w", err)
	}
	if err := f.Chmod(0o644); err != nil { // a trace is not a secret; CreateTemp makes 0600
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("chrome sink: %w", err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	gz, err := gzip.NewWriterLevel(bw, e.cfg.level)
	if err != nil { // the level was checked by newConfig
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("chrome sink: %w", err)
	}
	s := &Sink{
		enc:   newEncoder(info, e.cfg.maxAnchors),
		dir:   info.Dir,
		final: final,
		tmp:   f,
		bw:    bw,
		gz:    gz,
	}
	// Keys in this order: Perfetto wants displayTimeUnit before the events.
	if _, err := gz.Write([]byte(`{"displayTimeUnit":"ms","traceEvents":[`)); err != nil {
		s.abort()
		return nil, fmt.Errorf("chrome sink: writing %s: %w", f.Name(), err)
	}
	return s, nil
}

// Sink writes one session's trace. Export encodes each batch and writes it
// through gzip at once, so the trace is never held in memory; only the
// operator slices of requests wait, in a temporary file, for Shutdown to
// write them in order of start with the flow arrows between them. Shutdown
// then adds the trailer and renames the file into place.
type Sink struct {
	mu     sync.Mutex
	enc    *encoder
	dir    string
	final  string
	tmp    *os.File
	bw     *bufio.Writer
	gz     *gzip.Writer
	spill  *os.File // operator slices held for Shutdown (see encoder.spill)
	spillW *bufio.Writer
	err    error // first write error; the file is abandoned
	closed bool
	files  []string
	stats  map[string]float64

	once    sync.Once
	shutErr error
}

var (
	_ profiler.Sink     = (*Sink)(nil)
	_ profiler.FileSink = (*Sink)(nil)
)

// Export encodes and writes the batch.
func (s *Sink) Export(ctx context.Context, batch []profiler.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrShutdown
	}
	if s.err != nil {
		return s.err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("chrome sink: %w", err)
	}
	b := s.enc.buf[:0]
	for i := range batch {
		b = s.enc.appendRecord(b, &batch[i])
	}
	s.enc.buf = b
	if err := s.write(b); err != nil {
		return err
	}
	return s.writeSpill()
}

// writeSpill appends the batch's held operator slices to the spill file.
func (s *Sink) writeSpill() error {
	e := s.enc
	if len(e.spill) == 0 {
		return nil
	}
	if s.spill == nil {
		f, err := os.CreateTemp(s.dir, "."+filepath.Base(s.final)+".*.slices.tmp")
		if err != nil {
			s.err = fmt.Errorf("chrome sink: %w", err)
			return s.err
		}
		s.spill, s.spillW = f, bufio.NewWriterSize(f, 64<<10)
	}
	if _, err := s.spillW.Write(e.spill); err != nil {
		s.err = fmt.Errorf("chrome sink: writing %s: %w", s.spill.Name(), err)
		return s.err
	}
	e.spillOff += int64(len(e.spill))
	e.spill = e.spill[:0]
	return nil
}

func (s *Sink) write(b []byte) error {
	if _, err := s.gz.Write(b); err != nil {
		s.err = fmt.Errorf("chrome sink: writing %s: %w", s.tmp.Name(), err)
		return s.err
	}
	return nil
}

// Shutdown writes the flow arrows and the trailer, completes the gzip
// stream and renames the file to its final name. It runs once; later calls
// return its result. When it fails (a write error, ctx done) no file is
// left under the final name.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.once.Do(func() { s.shutErr = s.shutdown(ctx) })
	return s.shutErr
}

func (s *Sink) shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	fail := func(err error) error {
		s.abort()
		return err
	}
	if s.err != nil {
		return fail(s.err)
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("chrome sink: shutdown: %w", err))
	}
	var spill io.ReaderAt = strings.NewReader("")
	if s.spill != nil {
		if err := s.spillW.Flush(); err != nil {
			return fail(fmt.Errorf("chrome sink: writing %s: %w", s.spill.Name(), err))
		}
		spill = s.spill
	}
	if err := s.enc.writeHeld(ctx, spill, s.write); err != nil {
		return fail(err)
	}
	s.removeSpill()
	if err := s.write(s.enc.appendTrailer(s.enc.buf[:0])); err != nil {
		return fail(err)
	}
	if err := s.gz.Close(); err != nil {
		return fail(fmt.Errorf("chrome sink: writing %s: %w", s.tmp.Name(), err))
	}
	if err := s.bw.Flush(); err != nil {
		return fail(fmt.Errorf("chrome sink: writing %s: %w", s.tmp.Name(), err))
	}
	if err := s.tmp.Close(); err != nil {
		return fail(fmt.Errorf("chrome sink: writing %s: %w", s.tmp.Name(), err))
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("chrome sink: shutdown: %w", err))
	}
	if err := os.Rename(s.tmp.Name(), s.final); err != nil {
		return fail(fmt.Errorf("chrome sink: %w", err))
	}
	s.files = []string{s.final}
	s.stats = s.enc.stats()
	s.enc.release()
	return nil
}

// abort closes and removes the temporary files.
func (s *Sink) abort() {
	s.tmp.Close() // may already be closed
	os.Remove(s.tmp.Name())
	s.removeSpill()
	s.enc.release()
}

func (s *Sink) removeSpill() {
	if s.spill != nil {
		s.spill.Close()
		os.Remove(s.spill.Name())
		s.spill, s.spillW = nil, nil
	}
}

// Files returns the trace's path once Shutdown has succeeded, else nil.
func (s *Sink) Files() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.files...)
}

// Path returns the path the trace will have when complete.
func (s *Sink) Path() string { return s.final }

// Stats reports what the session wrote, for the profiler's manifest
// (after a successful Shutdown; nil before).
func (s *Sink) Stats() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
