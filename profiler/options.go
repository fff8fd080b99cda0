package profiler

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
)

// Options is the effective configuration of a profiler, as recorded in each
// session's manifest.
type Options struct {
	// Dir is where session folders are created ("" writes no files).
	Dir string `json:"dir,omitempty"`
	// Name names session folders unless Start is given one.
	Name string `json:"name,omitempty"`
	// DelayIters is how many iterations per stage pass before recording.
	DelayIters int `json:"delay_iters"`
	// MaxIters is how many iterations per stage are recorded (0: no limit);
	// when every selected stage has recorded its window the profile stops
	// and writes by itself.
	MaxIters int `json:"max_iters"`
	// RecordShapes asks kernels and layers to attach tensor shapes.
	RecordShapes bool `json:"record_shapes"`
	// MaxEvents caps the records kept per session; beyond it records are
	// dropped and counted.
	MaxEvents int `json:"max_events"`
	// QueueBatches bounds the batches waiting for export; when the exporter
	// falls behind, whole batches are dropped and counted.
	QueueBatches int `json:"queue_batches"`
}

// DefaultMaxEvents is the per-session event cap unless WithMaxEvents says otherwise.
const DefaultMaxEvents = 1 << 20

// DefaultQueueBatches is the export queue's length in batches of batchLen records.
const DefaultQueueBatches = 256

type config struct {
	opts   Options
	sinks  []SinkFactory
	logger *slog.Logger
	errs   []error
}

// Option configures a Profiler.
type Option func(*config)

// WithDir sets the directory that receives one folder per session.
func WithDir(dir string) Option { return func(c *config) { c.opts.Dir = dir } }

// WithName sets the default session name.
func WithName(name string) Option { return func(c *config) { c.opts.Name = name } }

// WithSink adds a sink; each session opens one Sink from it. Several sinks
// receive the same records.
func WithSink(f SinkFactory) Option {
	return func(c *config) {
		if f == nil {
			c.errs = append(c.errs, errors.New("profiler: WithSink(nil)"))
			return
		}
		c.sinks = append(c.sinks, f)
	}
}

// WithoutSinks removes the sinks added so far (for example by FromEnv).
func WithoutSinks() Option { return func(c *config) { c.sinks = nil } }

// WithMaxIters sets how many iterations per stage a session records (0: all).
func WithMaxIters(n int) Option { return func(c *config) { c.opts.MaxIters = n } }

// WithDelayIters sets how many iterations per stage pass before recording.
func WithDelayIters(n int) Option { return func(c *config) { c.opts.DelayIters = n } }

// WithRecordShapes makes kernels and layers attach tensor shapes.
func WithRecordShapes(on bool) Option { return func(c *config) { c.opts.RecordShapes = on } }

// WithMaxEvents caps the records kept per session.
func WithMaxEvents(n int) Option { return func(c *config) { c.opts.MaxEvents = n } }

// WithQueueBatches bounds the export queue (in batches).
func WithQueueBatches(n int) Option { return func(c *config) { c.opts.QueueBatches = n } }

// WithLogger sets where the profiler reports export problems (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

func newConfig(opts []Option) (config, error) {
	c := config{opts: Options{MaxEvents: DefaultMaxEvents, QueueBatches: DefaultQueueBatches}}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	var errs []error
	errs = append(errs, c.errs...)
	if c.opts.MaxIters < 0 {
		errs = append(errs, fmt.Errorf("profiler: max iterations must be >= 0, got %d", c.opts.MaxIters))
	}
	if c.opts.DelayIters < 0 {
		errs = append(errs, fmt.Errorf("profiler: delay iterations must be >= 0, got %d", c.opts.DelayIters))
	}
	if c.opts.MaxEvents <= 0 {
		errs = append(errs, fmt.Errorf("profiler: max events must be > 0, got %d", c.opts.MaxEvents))
	}
	if c.opts.QueueBatches <= 0 {
		errs = append(errs, fmt.Errorf("profiler: queue batches must be > 0, got %d", c.opts.QueueBatches))
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.sinks = slices.Clone(c.sinks)
	return c, errors.Join(errs...)
}

// StartOption configures one session.
type StartOption func(*startConfig)

type startConfig struct {
	stages []int
	name   string
	meta   map[string]string
}

// Stages selects the stages a session records, by id; none means all.
func Stages(ids ...int) StartOption {
	return func(c *startConfig) { c.stages = append(c.stages, ids...) }
}

// Name names the session (its folder is <dir>/<YYYYmmdd-HHMMSS>_<name>).
func Name(name string) StartOption { return func(c *startConfig) { c.name = name } }

// Meta adds a key/value pair to the session manifest (model, preset, ...).
func Meta(key, value string) StartOption {
	return func(c *startConfig) {
		if c.meta == nil {
			c.meta = map[string]string{}
		}
		c.meta[key] = value
	}
}
