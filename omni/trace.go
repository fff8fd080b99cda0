package omni

import (
	"strconv"

	"github.com/omniflow-go/omniflow/profiler"
)

// Lanes of a stage's track. Lane 0 is the stage loop (its activation,
// iterations, layers and kernels); lanes 1..MaxBatch are the batch slots,
// where each request's share of each iteration is a slice carrying its
// request id; hand-off spans take lanes from handoffLaneBase on.
const (
	loopLane        = 0
	handoffLaneBase = 1000
	// maxHandoffLanes bounds the hand-off lanes of a stage; a hand-off
	// that finds them all busy is not recorded (lanes never partly overlap).
	maxHandoffLanes = 256
)

func stageTrack(stage, lane int, laneName, req string) profiler.Track {
	return profiler.Track{Stage: stage, StageName: stageNames[stage], Lane: lane, LaneName: laneName, Request: req}
}

// slotLanes names the slot lanes of one stage once.
type slotLanes []string

func newSlotLanes(n int) slotLanes {
	s := make(slotLanes, n)
	for i := range s {
		s[i] = "slot " + strconv.Itoa(i)
	}
	return s
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

// emit records a hand-off of request req that was enqueued at sent and
// dequeued at recv (profiler clock), if the stage is being recorded.
func (h *handoffLanes) emit(p *profiler.Profiler, req string, sent, recv int64, attrs ...profiler.Attr) {
	if !p.Recording(h.stage) {
		return
	}
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
	h.ends[k] = recv
	attrs = append(attrs, profiler.String("request", req))
	p.Emit(stageTrack(h.stage, handoffLaneBase+k, h.names[k], req), profiler.KindHandoff, h.name, sent, recv, attrs...)
}

// requestSlice records request req's share of an iteration on its slot
// lane: the first one of a request on a stage is an operator slice — the
// anchor the Chrome sink draws the request's flow arrow to (thinker →
// talker → vocoder) — and later ones are module slices, so that the arrows
// do not zigzag between stages that run side by side in streaming mode.
func requestSlice(p *profiler.Profiler, stage, lane int, laneName, req string, first bool, name string, start, end int64, attrs ...profiler.Attr) {
	kind := profiler.KindModule
	if first {
		kind = profiler.KindOperator
	}
	p.Emit(stageTrack(stage, lane, laneName, req), kind, name, start, end, attrs...)
}
