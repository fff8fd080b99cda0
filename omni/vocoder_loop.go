package omni

import (
	"context"

	"github.com/omniflow-go/omniflow/profiler"
)

// vocoderSeq is the vocoder's state for one request: the codes so far and
// how many are decoded.
type vocoderSeq struct {
	r        *request
	codes    []int32
	decoded  int
	final    bool
	anchored bool
	chunks   int
}

// ready reports whether a chunk can be decoded: ChunkFrames new codes, or
// the rest once the talker is done.
func (e *Engine) ready(s *vocoderSeq) bool {
	n := len(s.codes) - s.decoded
	return n >= e.cfg.ChunkFrames || s.final && n > 0
}

func (e *Engine) vocoderLoop() {
	defer e.wg.Done()
	ctx, act := e.prof.Enter(context.Background(), stageTrack(StageVocoder, loopLane, loopLaneNames[StageVocoder], ""), "vocoder.schedule")
	quiet := profiler.Silent(ctx) // for iterations that are not recorded
	seqs := map[*request]*vocoderSeq{}
	var order []*vocoderSeq // round robin over requests with chunks ready
	hand := newHandoffLanes(StageVocoder, "talker → vocoder")
	defer func() {
		for _, s := range order {
			s.r.out.fail(ErrClosed)
		}
		act.End(nil)
	}()
	receive := func(m *vocoderMsg) {
		dequeued := profiler.Now()
		defer func() {
			hand.emit(e.prof, m.r.id, m.sent, dequeued, profiler.Now(),
				profiler.Int("frames", len(m.codes)), profiler.Int("bytes", 4*len(m.codes)), profiler.Bool("final", m.final))
		}()
		s := seqs[m.r]
		if m.abort {
			if s != nil {
				delete(seqs, m.r)
				order = remove(order, s)
			}
			return
		}
		if s == nil {
			if m.r.out.finished() {
				return
			}
			s = &vocoderSeq{r: m.r}
			seqs[m.r] = s
			order = append(order, s)
		}
		s.codes = append(s.codes, m.codes...)
		s.final = s.final || m.final
		if s.final && s.decoded == len(s.codes) {
			s.r.out.audioDone(s.codes)
			delete(seqs, m.r)
			order = remove(order, s)
		}
	}
	anyReady := func() bool {
		for _, s := range order {
			if e.ready(s) {
				return true
			}
		}
		return false
	}
	for {
		act.Pause()
		if !anyReady() {
			select { // wait for codes, recording nothing
			case m := <-e.toVocoder:
				receive(m)
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
		// Take what has arrived (a few messages per chunk: the queue stays
		// the talker's back-pressure).
	drain:
		for range 4 {
			select {
			case m := <-e.toVocoder:
				receive(m)
			default:
				break drain
			}
		}
		var s *vocoderSeq
		for i, c := range order {
			if err := c.r.canceled(); err != nil {
				c.r.out.fail(err)
				delete(seqs, c.r)
				order = remove(order, c)
				break // the order changed; pick next time round
			}
			if e.ready(c) {
				s = c
				// Round robin: the chosen request goes to the back.
				order = append(append(order[:i:i], order[i+1:]...), c)
				break
			}
		}
		if s == nil {
			continue
		}
		act.Pause() // the chunk is a span of its own, beside the scheduling slices
		err := e.vocoderChunk(ctx, quiet, s)
		act.Resume()
		if err != nil {
			s.r.out.fail(err)
			delete(seqs, s.r)
			order = remove(order, s)
			continue
		}
		if s.final && s.decoded == len(s.codes) {
			s.r.out.audioDone(s.codes)
			delete(seqs, s.r)
			order = remove(order, s)
		}
	}
}

// vocoderChunk decodes one chunk of up to ChunkFrames codes (with the
// vocoder's left context) and hands its PCM to the request. One chunk is
// one iteration of the vocoder stage.
func (e *Engine) vocoderChunk(ctx, quiet context.Context, s *vocoderSeq) error {
	start, end := s.decoded, min(len(s.codes), s.decoded+e.cfg.ChunkFrames)
	ctx, span := iteration(ctx, quiet, "vocoder.chunk", profiler.Int("frames", end-start),
		profiler.Int("context_frames", min(start, e.voc.ctxFrame)), profiler.Int("chunk", s.chunks))
	defer span.End()
	var pcm []float32
	err := e.requestWork(ctx, StageVocoder, s.r.id, &s.anchored, "vocoder.decode", func(ctx context.Context) error {
		var err error
		pcm, err = e.voc.decodeChunk(ctx, s.codes, start, end)
		return err
	}, profiler.Int("frames", end-start))
	if err != nil {
		return err
	}
	s.decoded = end
	s.chunks++
	s.r.out.audio(pcm)
	return nil
}

func remove(order []*vocoderSeq, s *vocoderSeq) []*vocoderSeq {
	for i, c := range order {
		if c == s {
			copy(order[i:], order[i+1:])
			order[len(order)-1] = nil
			return order[:len(order)-1]
		}
	}
	return order
}
