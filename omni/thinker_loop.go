package omni

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/operators/tokenize"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

// thinkerSeq is the thinker's state for one request.
type thinkerSeq struct {
	r        *request
	state    *kvState
	sampler  *tokenSampler
	history  []int32 // prompt and output, for the repetition penalty
	out      []int32
	next     []float32 // input row of the next decode step
	prefill  bool
	dec      *tokenize.StreamDecoder
	pending  string // text held back while it may begin a stop string
	anchored bool

	// Talker conditioning not yet handed over (all of it in whole mode).
	prompt  []float32
	conds   []float32
	talked  bool // the talker has heard of the request
	done    bool
	reason  string
	failErr error
}

// talkerMsg carries thinker output to the talker: conditioning rows
// (hidden state + token embedding, the thinker's width each) for the
// prompt (first message only) and for new text tokens.
type talkerMsg struct {
	r      *request
	prompt []float32
	conds  []float32
	done   bool // the text is complete
	abort  bool // the thinker dropped the request
	sent   int64
}

func (e *Engine) thinkerLoop() {
	defer e.wg.Done()
	ctx, act := e.prof.Enter(context.Background(), stageTrack(StageThinker, loopLane, loopLaneNames[StageThinker], ""), "thinker.schedule")
	quiet := profiler.Silent(ctx) // for iterations that are not recorded
	var active []*thinkerSeq
	var held *request
	queue := newHandoffLanes(StageThinker, "request → thinker")
	defer func() {
		for _, s := range active {
			s.r.out.fail(ErrClosed)
		}
		if held != nil {
			held.out.fail(ErrClosed)
		}
		act.End(nil)
	}()
	for {
		act.Pause() // nothing is recorded while the loop waits
		if len(active) == 0 && held == nil {
			select { // wait for work, recording nothing
			case r := <-e.submit:
				held = r
			case <-e.quit:
				return
			}
		}
		select {
		case <-e.quit:
			return
		default:
		}
		act.Resume()

		// Drop cancelled requests; admit new ones between iterations.
		active = e.thinkerDropCanceled(ctx, active, act)
		budget := e.cfg.MaxPrefillTokens
		prefill := 0
		for len(active) < e.cfg.MaxBatch {
			r := held
			held = nil
			if r == nil {
				select {
				case r = <-e.submit:
				default:
				}
			}
			if r == nil {
				break
			}
			if err := r.canceled(); err != nil {
				r.out.fail(err)
				continue
			}
			if prefill > 0 && prefill+len(r.ids) > budget {
				held = r
				break
			}
			taken := profiler.Now()
			s, err := e.newThinkerSeq(r)
			if err != nil {
				r.out.fail(err)
				continue
			}
			// Queued from the submit until taken in here (a request
			// held back for the prefill budget is still queued); the copy
			// is its state's setup: KV caches, the prompt into its history.
			queue.emit(e.prof, r.id, r.sent, taken, profiler.Now(), profiler.Int("tokens", len(r.ids)))
			prefill += len(r.ids)
			active = append(active, s)
		}
		if len(active) == 0 {
			continue
		}
		act.Pause() // the step is a span of its own, beside the scheduling slices
		if err := e.thinkerStep(ctx, quiet, active); err != nil {
			for _, s := range active {
				s.failErr = err
			}
		}
		act.Resume()
		active = e.thinkerHandOff(ctx, active, act)
	}
}

func (e *Engine) newThinkerSeq(r *request) (*thinkerSeq, error) {
	st, err := e.thinker.dec.newState(len(r.ids) + r.params.MaxTokens)
	if err != nil {
		return nil, err
	}
	p := r.params
	s := &thinkerSeq{
		r: r, state: st, prefill: true,
		sampler: newTokenSampler(p.Seed, 0x7468696e6b6572, cpu.SampleParams{Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP, RepetitionPenalty: p.RepetitionPenalty}),
		history: append(make([]int32, 0, len(r.ids)+p.MaxTokens), r.ids...),
		dec:     tokenize.NewStreamDecoder(e.tok),
	}
	return s, nil
}

func (e *Engine) thinkerDropCanceled(ctx context.Context, active []*thinkerSeq, act *profiler.Activation) []*thinkerSeq {
	kept := active[:0]
	for _, s := range active {
		if err := s.r.canceled(); err != nil {
			s.r.out.fail(err)
			if s.talked {
				e.sendTalker(ctx, &talkerMsg{r: s.r, abort: true}, act)
			}
			continue
		}
		kept = append(kept, s)
	}
	clear(active[len(kept):])
	return kept
}

// thinkerStep is one iteration: one batched forward over every active
// request (the prompts of new ones, one token of the others), then a
// token sampled for each.
func (e *Engine) thinkerStep(ctx, quiet context.Context, active []*thinkerSeq) error {
	pre, dec := 0, 0
	for _, s := range active {
		if s.prefill {
			pre += len(s.r.ids)
		} else {
			dec++
		}
	}
	ctx, span := iteration(ctx, quiet, "thinker.step", profiler.Int("batch", len(active)),
		profiler.Int("prefill_tokens", pre), profiler.Int("decode_tokens", dec))
	defer span.End()
	m := e.thinker.dec
	dim := m.cfg.Hidden

	// The input rows: prompt embeddings (with the encoders' outputs) for
	// new requests, the last token's embedding for the others.
	x, err := tensor.New(tensor.Float32, []int{pre + dec, dim})
	if err != nil {
		return err
	}
	defer x.Release()
	xd := x.Float32s()
	segs := make([]segment, len(active))
	last := make([]int, len(active))
	off := 0
	for i, s := range active {
		n := 1
		if s.prefill {
			n = len(s.r.ids)
			err := e.requestWork(ctx, StageThinker, s.r.id, &s.anchored, "thinker.prefill", func(ctx context.Context) error {
				emb, err := e.thinker.embedPrompt(ctx, s.r)
				if err != nil {
					return err
				}
				copy(xd[off*dim:], emb.Float32s())
				emb.Release()
				return nil
			}, profiler.Int("tokens", n))
			if err != nil {
				return fmt.Errorf("request %s: %w", s.r.id, err)
			}
		} else {
			copy(xd[off*dim:], s.next)
		}
		segs[i] = segment{state: s.state, rows: n}
		off += n
		last[i] = off - 1
	}
	h, err := m.forward(ctx, x, segs)
	if err != nil {
		return err
	}
	defer h.Release()
	logits, err := m.logits(ctx, h, last)
	if err != nil {
		return err
	}
	defer logits.Release()
	v := m.cfg.Vocab
	ld := logits.Float32s()
	toks := make([]int32, len(active))
	for i, s := range active {
		if err := e.requestWork(ctx, StageThinker, s.r.id, &s.anchored, "thinker.sample", func(ctx context.Context) (err error) {
			toks[i], err = s.sampler.sampleCtx(ctx, ld[i*v:(i+1)*v], s.history, e.badIDs...)
			return err
		}); err != nil {
			return fmt.Errorf("thinker: sampling request %q: %w", s.r.id, err)
		}
	}
	// The sampled tokens' embeddings: the next step's input rows, and with
	// the hidden states the talker's conditioning.
	emb, err := m.embedIDs(ctx, toks)
	if err != nil {
		return err
	}
	defer emb.Release()
	ed, hd := emb.Float32s(), h.Float32s()
	off = 0
	for i, s := range active {
		n := segs[i].rows
		row := ed[i*dim : (i+1)*dim]
		s.next = append(s.next[:0], row...)
		if s.r.wantAudio {
			if s.prefill {
				for j := range n * dim {
					s.prompt = append(s.prompt, hd[off*dim+j]+xd[off*dim+j])
				}
			}
			// The conditioning of token toks[i]; dropped below if it stops.
			for j := range dim {
				s.conds = append(s.conds, hd[last[i]*dim+j]+row[j])
			}
		}
		s.prefill = false
		e.thinkerToken(s, toks[i])
		off += n
	}
	return nil
}

// thinkerToken takes a sampled token: the text so far, stop conditions.
func (e *Engine) thinkerToken(s *thinkerSeq, tok int32) {
	p := s.r.params
	if s.r.stopIDs[tok] {
		if s.r.wantAudio {
			s.conds = s.conds[:len(s.conds)-e.thinker.dec.cfg.Hidden]
		}
		s.finish("stop")
		return
	}
	s.history = append(s.history, tok)
	s.out = append(s.out, tok)
	piece, err := s.dec.Push(tok)
	if err != nil {
		s.failErr = err
		return
	}
	s.emitText(piece, []int32{tok})
	if s.done {
		return
	}
	if len(s.out) >= p.MaxTokens {
		s.finish("length")
	}
}

// emitText passes text on, holding back a tail that may begin a stop
// string; a stop string ends the text before it.
func (s *thinkerSeq) emitText(piece string, ids []int32) {
	stops := s.r.params.Stop
	if len(stops) == 0 {
		s.r.out.text(piece, ids)
		return
	}
	s.pending += piece
	cut := -1
	for _, st := range stops {
		if i := strings.Index(s.pending, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		s.r.out.text(s.pending[:cut], ids)
		s.finishText("stop", false)
		return
	}
	hold := 0
	for _, st := range stops {
		for k := min(len(st)-1, len(s.pending)); k > hold; k-- {
			if strings.HasSuffix(s.pending, st[:k]) {
				hold = k
				break
			}
		}
	}
	emit := len(s.pending) - hold
	for emit > 0 && emit < len(s.pending) && !utf8.RuneStart(s.pending[emit]) {
		emit--
	}
	s.r.out.text(s.pending[:emit], ids)
	s.pending = s.pending[emit:]
}

func (s *thinkerSeq) finish(reason string) {
	s.finishText(reason, true)
}

// finishText ends the text; with flush, the text held back and the
// decoder's incomplete tail are passed on (not after a stop string).
func (s *thinkerSeq) finishText(reason string, flush bool) {
	if s.done {
		return
	}
	s.done = true
	s.reason = reason
	if flush {
		if tail := s.pending + s.dec.Flush(); tail != "" {
			s.r.out.text(tail, nil)
		}
	}
	s.pending = ""
}

// thinkerHandOff sends each request's new conditioning to the talker
// (every step when streaming, all at once at the end otherwise), ends
// finished requests and returns the ones still running.
func (e *Engine) thinkerHandOff(ctx context.Context, active []*thinkerSeq, act *profiler.Activation) []*thinkerSeq {
	kept := active[:0]
	for _, s := range active {
		if s.failErr != nil {
			s.r.out.fail(s.failErr)
			if s.talked {
				e.sendTalker(ctx, &talkerMsg{r: s.r, abort: true}, act)
			}
			continue
		}
		if s.r.wantAudio && (e.cfg.Streaming || s.done) {
			msg := &talkerMsg{r: s.r, prompt: s.prompt, conds: s.conds, done: s.done}
			s.prompt, s.conds = nil, nil
			if msg.prompt != nil || len(msg.conds) > 0 || msg.done {
				s.talked = true
				if !e.sendTalker(ctx, msg, act) {
					s.r.out.fail(ErrClosed)
					continue
				}
			}
		}
		if s.done {
			s.r.out.textDone(s.reason)
			continue
		}
		kept = append(kept, s)
	}
	clear(active[len(kept):])
	return kept
}

// sendTalker hands a message to the talker, blocking while its queue is
// full (back-pressure); the scheduling slice is paused meanwhile. It
// reports false when the engine closes first.
func (e *Engine) sendTalker(_ context.Context, m *talkerMsg, act *profiler.Activation) bool {
	m.sent = profiler.Now()
	select {
	case e.toTalker <- m:
		return true
	default:
	}
	act.Pause()
	defer act.Resume()
	select {
	case e.toTalker <- m:
		return true
	case <-e.quit:
		return false
	}
}
