package omni

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/omniflow-go/omniflow/device/cpu"
	"github.com/omniflow-go/omniflow/profiler"
)

// errAborted fails a request that an earlier stage dropped (its mailbox
// already holds the reason).
var errAborted = errors.New("omni: request aborted")

// talkerSeq is the talker's state for one request.
//
// Codec step j (producing code j) reads conditioning cond(j): the text
// token j/CodesPerText's, or text_eos_embed once the text is covered. Its
// prefill is the prompt's conditioning rows (with the PAD code) and then
// cond(0) with BOS. A step waits until its conditioning has arrived or the
// text is known to be complete, so the codes do not depend on how the
// thinker's output was handed over (streaming or whole), only on it.
type talkerSeq struct {
	r         *request
	slot      int // -1 while waiting for a slot
	state     *kvState
	sampler   *tokenSampler
	prompt    []float32
	conds     []float32
	nConds    int
	textDone  bool
	codes     []int32
	sent      int // codes handed to the vocoder
	prefilled bool
	anchored  bool
	done      bool
	failErr   error
	vocoded   bool // the vocoder has heard of the request
}

// vocoderMsg carries codec tokens to the vocoder.
type vocoderMsg struct {
	r     *request
	codes []int32
	final bool
	abort bool
	sent  int64
}

func (e *Engine) runnable(s *talkerSeq) bool {
	if s.slot < 0 || s.done || s.failErr != nil {
		return false
	}
	if !s.prefilled {
		return s.prompt != nil && (s.nConds >= 1 || s.textDone)
	}
	return len(s.codes)/e.model.Talker.CodesPerText < s.nConds || s.textDone
}

func (e *Engine) talkerLoop() {
	defer e.wg.Done()
	ctx, act := e.prof.Enter(context.Background(), stageTrack(StageTalker, loopLane, loopLaneNames[StageTalker], ""), "talker.schedule")
	quiet := profiler.Silent(ctx) // for iterations that are not recorded
	seqs := map[*request]*talkerSeq{}
	var order []*talkerSeq // tracked requests, in arrival order
	slots := make([]bool, e.cfg.MaxBatch)
	hand := newHandoffLanes(StageTalker, "thinker → talker")
	limit := 2 * e.cfg.MaxBatch // tracked requests before the queue is left to fill
	defer func() {
		for _, s := range order {
			s.r.out.fail(ErrClosed)
		}
		act.End(nil)
	}()
	for {
		act.Pause()
		assignSlots(order, slots)
		if !slices.ContainsFunc(order, e.runnable) {
			select { // wait for input, recording nothing
			case m := <-e.toTalker:
				order = e.talkerReceive(ctx, m, seqs, order, hand)
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
	drain:
		for len(order) < limit || !slices.ContainsFunc(order, e.runnable) {
			select {
			case m := <-e.toTalker:
				order = e.talkerReceive(ctx, m, seqs, order, hand)
			default:
				break drain
			}
		}
		// Drop cancelled requests; give slots to waiting ones, in order.
		kept := order[:0]
		for _, s := range order {
			if err := s.r.canceled(); err != nil {
				s.r.out.fail(err)
				e.talkerRetire(ctx, s, seqs, slots, act, true)
				continue
			}
			kept = append(kept, s)
		}
		clear(order[len(kept):])
		order = kept
		assignSlots(order, slots)
		var batch []*talkerSeq
		for _, s := range order {
			if e.runnable(s) {
				batch = append(batch, s)
			}
		}
		if len(batch) == 0 {
			continue
		}
		act.Pause() // the step is a span of its own, beside the scheduling slices
		if err := e.talkerStep(ctx, quiet, batch); err != nil {
			for _, s := range batch {
				s.failErr = err
			}
		}
		act.Resume()
		kept = order[:0]
		for _, s := range order {
			ok := e.talkerHandOff(ctx, s, act)
			if !ok {
				s.failErr = ErrClosed
			}
			if s.done || s.failErr != nil {
				if s.failErr != nil {
					s.r.out.fail(s.failErr)
				}
				e.talkerRetire(ctx, s, seqs, slots, act, s.failErr != nil)
				continue
			}
			kept = append(kept, s)
		}
		clear(order[len(kept):])
		order = kept
	}
}

// assignSlots gives free batch slots to waiting requests, in arrival order.
func assignSlots(order []*talkerSeq, slots []bool) {
	for _, s := range order {
		if s.slot >= 0 {
			continue
		}
		free := slices.Index(slots, false)
		if free < 0 {
			return
		}
		slots[free], s.slot = true, free
	}
}

// talkerReceive takes one message from the thinker.
func (e *Engine) talkerReceive(ctx context.Context, m *talkerMsg, seqs map[*request]*talkerSeq, order []*talkerSeq, hand *handoffLanes) []*talkerSeq {
	// The hand-off span runs from the send to the end of the copy into
	// the request's state, its queue wait and its copy apart inside it.
	dequeued := profiler.Now()
	defer func() {
		hand.emit(e.prof, m.r.id, m.sent, dequeued, profiler.Now(),
			profiler.Int("bytes", 4*(len(m.prompt)+len(m.conds))), profiler.Int("text_tokens", len(m.conds)/e.model.Thinker.Hidden),
			profiler.Bool("done", m.done))
	}()
	s := seqs[m.r]
	if m.abort {
		if s != nil {
			s.failErr = errAborted
		}
		return order
	}
	if s == nil {
		if m.prompt == nil || m.r.out.finished() {
			return order // the request ended here already
		}
		st, err := e.talker.dec.newState(len(m.r.ids) + 1 + m.r.maxCodes)
		if err != nil {
			m.r.out.fail(err)
			return order
		}
		a := m.r.params.Audio
		s = &talkerSeq{r: m.r, slot: -1, state: st,
			sampler: newTokenSampler(m.r.params.Seed, 0x74616c6b6572, cpu.SampleParams{Temperature: a.Temperature, TopK: a.TopK, TopP: a.TopP, RepetitionPenalty: a.RepetitionPenalty}),
			prompt:  m.prompt}
		seqs[m.r] = s
		order = append(order, s)
	}
	s.conds = append(s.conds, m.conds...)
	s.nConds = len(s.conds) / e.model.Thinker.Hidden
	s.textDone = s.textDone || m.done
	return order
}

// cond returns the conditioning row of codec step j.
func (e *Engine) cond(s *talkerSeq, j int) []float32 {
	k, dim := j/e.model.Talker.CodesPerText, e.model.Thinker.Hidden
	if k < s.nConds {
		return s.conds[k*dim : (k+1)*dim]
	}
	return e.talker.textEOS
}

// talkerStep is one iteration: one batched forward over every runnable
// request, one codec token sampled for each.
func (e *Engine) talkerStep(ctx, quiet context.Context, batch []*talkerSeq) error {
	tc := e.model.Talker
	dim := e.model.Thinker.Hidden
	pre, dec := 0, 0
	for _, s := range batch {
		if !s.prefilled {
			pre += len(s.prompt)/dim + 1
		} else {
			dec++
		}
	}
	ctx, span := iteration(ctx, quiet, "talker.step", profiler.Int("batch", len(batch)),
		profiler.Int("prefill_tokens", pre), profiler.Int("decode_tokens", dec))
	defer span.End()
	conds := make([]float32, 0, (pre+dec)*dim)
	codes := make([]int32, 0, pre+dec)
	segs := make([]segment, len(batch))
	last := make([]int, len(batch))
	n := 0
	for i, s := range batch {
		rows := 1
		if !s.prefilled {
			rows = len(s.prompt)/dim + 1
			conds = append(conds, s.prompt...)
			for range rows - 1 {
				codes = append(codes, tc.PAD())
			}
			conds = append(conds, e.cond(s, 0)...)
			codes = append(codes, tc.BOS())
		} else {
			j := len(s.codes)
			conds = append(conds, e.cond(s, j)...)
			codes = append(codes, s.codes[j-1])
		}
		segs[i] = segment{state: s.state, rows: rows}
		n += rows
		last[i] = n - 1
	}
	x, err := e.talker.inputs(ctx, conds, codes, segs)
	if err != nil {
		return err
	}
	defer x.Release()
	h, err := e.talker.dec.forward(ctx, x, segs)
	if err != nil {
		return err
	}
	defer h.Release()
	logits, err := e.talker.dec.logits(ctx, h, last)
	if err != nil {
		return err
	}
	defer logits.Release()
	v := tc.Vocab
	ld := logits.Float32s()
	for i, s := range batch {
		j := len(s.codes)
		mask := []int32{tc.BOS(), tc.PAD()}
		// The speech covers the text: no stop before every text token has
		// had its codes (decidable now: see runnable).
		if !s.textDone || j < tc.CodesPerText*s.nConds {
			mask = append(mask, tc.EOS())
		}
		var tok int32
		if err := e.requestWork(ctx, StageTalker, s.r.id, &s.anchored, "talker.sample", func(ctx context.Context) (err error) {
			tok, err = s.sampler.sampleCtx(ctx, ld[i*v:(i+1)*v], s.codes, mask...)
			return err
		}, profiler.Int("code", j)); err != nil {
			return fmt.Errorf("talker: sampling request %q: %w", s.r.id, err)
		}
		s.prompt = nil
		s.prefilled = true
		switch {
		case tok == tc.EOS():
			s.done = true
		default:
			s.codes = append(s.codes, tok)
			if len(s.codes) >= s.r.maxCodes || s.textDone && len(s.codes) >= tc.CodesPerText*s.nConds+tc.TailCodes {
				s.done = true
			}
		}
	}
	return nil
}

// talkerHandOff sends new codes to the vocoder: every ChunkFrames codes
// when streaming, all of them at the end otherwise. It reports false when
// the engine closes first.
func (e *Engine) talkerHandOff(ctx context.Context, s *talkerSeq, act *profiler.Activation) bool {
	if s.failErr != nil {
		return true
	}
	n := len(s.codes) - s.sent
	if !s.done {
		if !e.cfg.Streaming {
			return true
		}
		n -= n % e.cfg.ChunkFrames
		if n == 0 {
			return true
		}
	}
	m := &vocoderMsg{r: s.r, codes: slices.Clone(s.codes[s.sent : s.sent+n]), final: s.done}
	s.sent += n
	s.vocoded = true
	return e.sendVocoder(m, act)
}

// talkerRetire forgets a request; an aborted one is dropped downstream.
func (e *Engine) talkerRetire(ctx context.Context, s *talkerSeq, seqs map[*request]*talkerSeq, slots []bool, act *profiler.Activation, abort bool) {
	delete(seqs, s.r)
	if s.slot >= 0 {
		slots[s.slot] = false
	}
	if abort && s.vocoded {
		e.sendVocoder(&vocoderMsg{r: s.r, abort: true}, act)
	}
}

func (e *Engine) sendVocoder(m *vocoderMsg, act *profiler.Activation) bool {
	m.sent = profiler.Now()
	select {
	case e.toVocoder <- m:
		return true
	default:
	}
	act.Pause()
	defer act.Resume()
	select {
	case e.toVocoder <- m:
		return true
	case <-e.quit:
		return false
	}
}
