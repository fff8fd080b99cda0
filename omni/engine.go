package omni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/omniflow-go/omniflow/operators/audio"
	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/operators/tokenize"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

// Stage ids and names: the profiler's stage tracks ("stage 0: thinker").
const (
	StageThinker = 0
	StageTalker  = 1
	StageVocoder = 2
)

var stageNames = [...]string{"thinker", "talker", "vocoder"}

// Engine serves thinker → talker → vocoder requests with continuous
// batching. Its methods are safe for concurrent use.
type Engine struct {
	cfg     Config
	model   ModelConfig
	tok     tokenize.Tokenizer
	eosIDs  []int32
	badIDs  []int32 // thinker ids the tokenizer cannot decode: never sampled
	mel     *audio.LogMel
	thinker *thinkerModel
	talker  *talkerModel
	voc     *vocoder
	prof    *profiler.Profiler

	submit    chan *request
	toTalker  chan *talkerMsg
	toVocoder chan *vocoderMsg
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
	inflight  sync.WaitGroup // Generate/Stream calls between check and submit
	mu        sync.Mutex     // guards inflight.Add against Close
	nextID    atomic.Uint64
	profStart atomic.Bool // a profile this engine started may be running
}

// New builds the models and starts the three stage loops. ctx bounds
// construction only; the loops run until Close.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var model ModelConfig
	if cfg.Model != nil {
		model = *cfg.Model
		model.Vocoder.Upsample = append([]int(nil), model.Vocoder.Upsample...)
		model.Vocoder.ResKernels = append([]int(nil), model.Vocoder.ResKernels...)
		model.Vocoder.Dilations = append([]int(nil), model.Vocoder.Dilations...)
		model.defaults()
	} else {
		var err error
		if model, err = Preset(cfg.Preset); err != nil {
			return nil, err
		}
	}
	e := &Engine{cfg: cfg}
	rnd := nn.Random(cfg.Seed)
	thinkerSrc := rnd
	if cfg.CheckpointDir != "" {
		f, err := os.Open(filepath.Join(cfg.CheckpointDir, "config.json"))
		if err != nil {
			return nil, fmt.Errorf("omni: checkpoint: %w", err)
		}
		tc, _, err := ReadQwen2Config(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if cfg.Model == nil {
			// Only the thinker comes from the checkpoint: the other stages
			// keep the tiny preset's synthetic shapes.
			tiny, _ := Preset("tiny")
			tiny.Thinker = tc
			model = tiny
		} else {
			model.Thinker = tc
		}
		ck, err := openCheckpoint(cfg.CheckpointDir)
		if err != nil {
			return nil, err
		}
		defer ck.Close() // weights are copied to float32 at load
		thinkerSrc = nn.Checkpoint(ck)
		if cfg.Tokenizer == nil {
			if path := filepath.Join(cfg.CheckpointDir, "tokenizer.json"); fileExists(path) {
				tok, err := tokenize.OpenTokenizerJSON(path)
				if err != nil {
					return nil, fmt.Errorf("omni: checkpoint: %w", err)
				}
				cfg.Tokenizer = tok
			}
		}
	}
	if err := model.validate(); err != nil {
		return nil, err
	}
	e.model = model
	th, au, vi, ta, vo := model.Params()
	random := au + vi + ta + vo
	if cfg.CheckpointDir == "" {
		random += th
	}
	if need := random * 4; need > cfg.MaxRandomInitBytes {
		name := cfg.Preset
		if name == "" {
			name = "tiny"
		}
		return nil, fmt.Errorf("omni: preset %q needs %s of float32 weights to initialize at random (thinker %.2fB, audio %.2fB, vision %.2fB, talker %.2fB, vocoder %.2fB parameters), above the %s limit (Config.MaxRandomInitBytes); load the thinker from a checkpoint (Config.CheckpointDir) and size the synthetic stages with Config.Model",
			name, gib(need), float64(th)/1e9, float64(au)/1e9, float64(vi)/1e9, float64(ta)/1e9, float64(vo)/1e9, gib(cfg.MaxRandomInitBytes))
	}

	e.tok = cfg.Tokenizer
	if e.tok == nil {
		bt, err := tokenize.NewByteTokenizer()
		if err != nil {
			return nil, err
		}
		e.tok = bt
	}
	if v := e.tok.VocabSize(); v > model.Thinker.Vocab {
		return nil, fmt.Errorf("omni: the tokenizer has %d ids, the thinker's vocabulary %d", v, model.Thinker.Vocab)
	}
	for i := e.tok.VocabSize(); i < model.Thinker.Vocab; i++ {
		e.badIDs = append(e.badIDs, int32(i))
	}
	if id := e.tok.Special().EOS; id != tokenize.NoToken {
		e.eosIDs = append(e.eosIDs, id)
	}
	for _, s := range []string{"<|im_end|>", "<|endoftext|>"} {
		if id, ok := e.tok.SpecialID(s); ok {
			e.eosIDs = append(e.eosIDs, id)
		}
	}

	var err error
	dec, err := newDecoder(thinkerSrc, "thinker", "model", "lm_head", model.Thinker)
	if err != nil {
		return nil, err
	}
	e.thinker = &thinkerModel{dec: dec}
	if e.thinker.audio, err = newAudioEncoder(rnd, model.Audio, model.Thinker.Hidden); err != nil {
		return nil, err
	}
	if e.thinker.vision, err = newVisionEncoder(rnd, model.Vision, model.Thinker.Hidden); err != nil {
		return nil, err
	}
	if e.talker, err = newTalker(rnd, model.Talker, model.Thinker.Hidden); err != nil {
		return nil, err
	}
	if e.voc, err = newVocoder(rnd, model.Vocoder); err != nil {
		return nil, err
	}
	mc := audio.DefaultMelConfig()
	mc.NMels = model.Audio.Mels
	if e.mel, err = audio.NewLogMel(mc); err != nil {
		return nil, err
	}
	e.prof = cfg.Profiler
	if e.prof == nil {
		if e.prof, err = profiler.FromEnv(profiler.WithSink(chrome.New()), profiler.WithName("omni"), profiler.WithLogger(cfg.Logger)); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.submit = make(chan *request, cfg.QueueSize)
	e.toTalker = make(chan *talkerMsg, cfg.QueueSize)
	e.toVocoder = make(chan *vocoderMsg, cfg.QueueSize)
	e.quit = make(chan struct{})
	e.wg.Add(3)
	go e.thinkerLoop()
	go e.talkerLoop()
	go e.vocoderLoop()
	return e, nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// Model returns the engine's model shapes.
func (e *Engine) Model() ModelConfig { return e.model }

// Tokenizer returns the engine's tokenizer.
func (e *Engine) Tokenizer() tokenize.Tokenizer { return e.tok }

// Profiler returns the engine's profiler.
func (e *Engine) Profiler() *profiler.Profiler { return e.prof }

// SampleRate is the vocoder's output rate (24 kHz).
func (e *Engine) SampleRate() int { return e.model.Vocoder.SampleRate }

// Close stops the stage loops and waits for them; requests still in
// flight fail with ErrClosed. A profile started with StartProfile and
// still running is stopped, so its files are complete. Close is
// idempotent.
func (e *Engine) Close(ctx context.Context) error {
	var errs []error
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed.Store(true)
		e.mu.Unlock()
		e.inflight.Wait() // no submission is between its check and its send
		close(e.quit)
		done := make(chan struct{})
		go func() { e.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("omni: close: %w", ctx.Err()))
			<-done // the loops check quit between iterations; they end soon
		}
		// Whatever is still queued fails.
		for {
			select {
			case r := <-e.submit:
				r.out.fail(ErrClosed)
				continue
			case m := <-e.toTalker:
				m.r.out.fail(ErrClosed)
				continue
			case m := <-e.toVocoder:
				m.r.out.fail(ErrClosed)
				continue
			default:
			}
			break
		}
		if e.profStart.Load() && e.prof.Active() {
			if _, err := e.prof.Stop(ctx); err != nil && !errors.Is(err, profiler.ErrNotStarted) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// enter registers a submission unless the engine is closed; leave must
// follow.
func (e *Engine) enter() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return ErrClosed
	}
	e.inflight.Add(1)
	return nil
}

// submitRequest sends a prepared request to the thinker; it lives under ctx.
func (e *Engine) submitRequest(ctx context.Context, r *request, stream bool) error {
	if r.id == "" {
		r.id = "req-" + strconv.FormatUint(e.nextID.Add(1), 10)
	}
	r.done = ctx.Done()
	r.cause = func() error { return context.Cause(ctx) }
	r.out = newMailbox(stream, e.model.Vocoder.SampleRate, r.wantAudio)
	r.out.res.ID = r.id
	r.out.res.PromptTokens = len(r.ids)
	if err := e.enter(); err != nil {
		return err
	}
	defer e.inflight.Done()
	r.sent = profiler.Now()
	select {
	case e.submit <- r:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Generate runs a batch of prompts with the same parameters and returns
// their results in order. Every prompt is validated before any is
// submitted; an invalid one fails the call with an error naming it. A
// request that fails later (its ctx, Close) leaves its Result empty and
// its error in the joined error.
func (e *Engine) Generate(ctx context.Context, prompts []Prompt, params SamplingParams) ([]Result, error) {
	if len(prompts) == 0 {
		return nil, fmt.Errorf("%w: no prompts", ErrInvalid)
	}
	reqs := make([]*request, len(prompts))
	for i, p := range prompts {
		r, err := e.prepare(p, params)
		if err != nil {
			return nil, fmt.Errorf("prompt %d: %w", i, err)
		}
		reqs[i] = r
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var errs []error
	for i, r := range reqs {
		if err := e.submitRequest(ctx, r, false); err != nil {
			errs = append(errs, fmt.Errorf("prompt %d: %w", i, err))
			reqs = reqs[:i]
			break
		}
	}
	results := make([]Result, len(prompts))
	for i, r := range reqs {
		res, err := r.out.wait(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("prompt %d (%s): %w", i, r.id, err))
			continue
		}
		results[i] = res
	}
	return results, errors.Join(errs...)
}

// Stream runs one prompt and returns its output as it comes: text chunks
// from the thinker, audio chunks from the vocoder. The request lives
// under ctx (cancelling it cancels the request) until the stream ends or
// Close is called.
func (e *Engine) Stream(ctx context.Context, p Prompt, params SamplingParams) (*Stream, error) {
	r, err := e.prepare(p, params)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	if err := e.submitRequest(ctx, r, true); err != nil {
		cancel()
		return nil, err
	}
	return &Stream{r: r, cancel: cancel}, nil
}

// Stream is one request's output in flight.
type Stream struct {
	r      *request
	cancel context.CancelFunc
}

// ID returns the request id.
func (s *Stream) ID() string { return s.r.id }

// Next returns the next chunk; io.EOF after the last one; the request's
// error if it failed. One goroutine at a time reads a stream (different
// streams are independent).
func (s *Stream) Next(ctx context.Context) (Chunk, error) {
	c, err := s.r.out.next(ctx)
	if err != nil && ctx.Err() == nil {
		s.cancel() // ended: release the request's context
	}
	return c, err
}

// Result returns the whole result once Next has returned io.EOF (before
// that, what has arrived so far).
func (s *Stream) Result() Result {
	s.r.out.mu.Lock()
	defer s.r.out.mu.Unlock()
	return s.r.out.result()
}

// Close cancels the request if it is still running.
func (s *Stream) Close() { s.cancel() }

// StartProfile starts a profiling session over the given stages (all
// three when none are given: they are selected by id, so that with
// MAX_ITERS the session stops once each of them has recorded its
// window). An id that names no stage is an error wrapping
// profiler.ErrStage.
func (e *Engine) StartProfile(ctx context.Context, stages ...int) error {
	if len(stages) == 0 {
		stages = []int{StageThinker, StageTalker, StageVocoder}
	}
	names := ""
	for i, s := range stages {
		if s < 0 || s >= len(stageNames) {
			return fmt.Errorf("omni: %w: stage %d does not exist; the stages are 0 (thinker), 1 (talker) and 2 (vocoder)", profiler.ErrStage, s)
		}
		if i > 0 {
			names += ","
		}
		names += strconv.Itoa(s)
	}
	preset := e.cfg.Preset
	if preset == "" {
		preset = "tiny"
	}
	if e.cfg.CheckpointDir != "" {
		preset = e.cfg.CheckpointDir
	}
	mode := "whole"
	if e.cfg.Streaming {
		mode = "streaming"
	}
	if err := e.prof.Start(ctx, profiler.Stages(stages...), profiler.Meta("model", preset),
		profiler.Meta("stages", names), profiler.Meta("handoff", mode),
		profiler.Meta("chunk_frames", strconv.Itoa(e.cfg.ChunkFrames))); err != nil {
		return err
	}
	e.profStart.Store(true)
	return nil
}

// StopProfile ends the session and returns once its files are complete.
// It is a control path apart from the stage loops: it never waits for a
// generation, and no generation waits for it or loses anything to it. A
// session that already stopped by itself (MAX_ITERS) returns its result
// once.
func (e *Engine) StopProfile(ctx context.Context) (profiler.Result, error) {
	return e.prof.Stop(ctx)
}

// WaitProfile waits for the running session to stop by itself (MAX_ITERS)
// or by StopProfile, and returns its result.
func (e *Engine) WaitProfile(ctx context.Context) (profiler.Result, error) {
	return e.prof.Wait(ctx)
}
