package omni

import (
	"context"
	"strconv"

	"github.com/omniflow-go/omniflow/profiler"
)

// Lanes of a stage's track. Lane 0 is the stage loop: its activation's
// scheduling slices (paused while it waits and while it iterates), its
// iterations, and inside them the layers, the kernels, and each request's
// own work (its prompt embedding and encoders, its sampling, its vocoder
// chunk), which carries the request id. Hand-off spans take lanes from
// handoffLaneBase on.
const (
	loopLane        = 0
	handoffLaneBase = 1000
	// maxHandoffLanes bounds the hand-off lanes of a stage; a hand-off
	// that finds them all busy is not recorded (lanes never partly overlap).
	maxHandoffLanes = 256
)

var loopLaneNames = [...]string{"thinker loop", "talker loop", "vocoder loop"}

func stageTrack(stage, lane int, laneName, req string) profiler.Track {
	return profiler.Track{Stage: stage, StageName: stageNames[stage], Lane: lane, LaneName: laneName, Request: req}
}

// handoffLanes spreads one stage's incoming hand-off spans over lanes so
// that none partly overlaps another: each goes to the first lane free at
// its start (as graph's profiler hook does). Used by the stage's own loop
// goroutine only.
type handoffLanes struct {
	stage int
	name  string // span name: "request → thinker", ...
	ends  []int64
	names []string
}

func newHandoffLanes(stage int, name string) *handoffLanes {
	return &handoffLanes{stage: stage, name: name}
}

// emit records a hand-off of request req: sent when the sending stage
// queued it, dequeued when the receiving stage took it in, done when it
// finished copying it into the request's state there (profiler clock),
// if the receiving stage is being recorded. The hand-off span covers
// [sent, done] and holds two spans on its lane, "queue" [sent, dequeued]
// and "copy" [dequeued, done], so the wait and the work are apart.
func (h *handoffLanes) emit(p *profiler.Profiler, req string, sent, dequeued, done int64, attrs ...profiler.Attr) {
	if !p.Recording(h.stage) {
		return
	}
	dequeued = min(max(dequeued, sent), done)
	k := -1
	for i, end := range h.ends {
		if end <= sent {
			k = i
			break
		}
	}
	if k < 0 {
		if len(h.ends) == maxHandoffLanes {
			return
		}
		h.ends = append(h.ends, 0)
		h.names = append(h.names, h.name+" #"+strconv.Itoa(len(h.names)))
		k = len(h.ends) - 1
	}
	h.ends[k] = done
	tr := stageTrack(h.stage, handoffLaneBase+k, h.names[k], req)
	attrs = append(attrs, profiler.Float64("queue_ms", float64(dequeued-sent)/1e6), profiler.String("request", req))
	p.Emit(tr, profiler.KindHandoff, h.name, sent, done, attrs...)
	p.Emit(tr, profiler.KindHandoff, "queue", sent, dequeued)
	p.Emit(tr, profiler.KindHandoff, "copy", dequeued, done)
}

// iteration starts an iteration span (profiler.Step) of a stage loop.
// When the iteration is not recorded — the session started while it ran,
// or the stage's window is not open — its work runs under quiet, the
// loop's profiler.Silent context, so that no layer, kernel or request's work
// of it is recorded without the iteration around it.
func iteration(ctx, quiet context.Context, name string, attrs ...profiler.Attr) (context.Context, profiler.Span) {
	sctx, span := profiler.Step(ctx, name, attrs...)
	if !span.Recording() {
		return quiet, span
	}
	return sctx, span
}

// requestWork runs f, request req's own work inside an iteration of
// stage, as a span nested in the iteration (ctx is the iteration's: see
// iteration; nothing is recorded when it is not). The first one recorded for
// the request on the stage is an operator slice with the request's id —
// the anchor the Chrome sink draws the request's flow arrows between
// (thinker → talker → vocoder) — and later ones are module spans with a
// request attribute, so that the arrows do not zigzag between stages that
// run side by side in streaming mode. Work shared by the batch (the
// layers) stays in the iteration, counted once.
func (e *Engine) requestWork(ctx context.Context, stage int, req string, anchored *bool, name string, f func(context.Context) error, attrs ...profiler.Attr) error {
	if !*anchored && profiler.Recording(ctx) {
		// Emitted with its times once done, not entered as an activation:
		// a profile stopped meanwhile then drops it whole, where an open
		// activation would be cut at the stop with its spans running on.
		*anchored = true
		start := profiler.Now()
		err := f(ctx)
		e.prof.Emit(stageTrack(stage, loopLane, loopLaneNames[stage], req), profiler.KindOperator, name, start, profiler.Now(), attrs...)
		return err
	}
	if profiler.Recording(ctx) {
		attrs = append(attrs, profiler.String("request", req))
	}
	sctx, span := profiler.Start(ctx, name, attrs...)
	err := f(sctx)
	span.End()
	return err
}
