package graph

import (
	"context"
	"strconv"

	"github.com/omniflow-go/omniflow/profiler"
)

// NodeEvent identifies one node working on one request.
type NodeEvent struct {
	Graph     string
	Node      string
	Op        string // the operator's contract name
	Stage     int
	StageName string
	Lane      int // the node's index within its stage
	Request   string
}

// Hook is the engine's instrumentation point: the plan calls NodeStart when
// a node begins a request (once its first input has arrived), and the span
// it returns is paused while the node blocks on a channel and ended when the
// node is done. The profiler is one Hook; WithHook adds others.
type Hook interface {
	NodeStart(ctx context.Context, ev NodeEvent) (context.Context, NodeSpan)
}

// NodeSpan is a hook's handle on one node activation. *profiler.Activation
// is one.
type NodeSpan interface {
	Pause()
	Resume()
	End(err error)
}

// HandoffEvent describes one value or chunk passed along an edge: when it
// was sent and when the consumer took it (profiler clock, ns).
type HandoffEvent struct {
	From      string // producer node (or graph input) name
	FromStage int
	To        NodeEvent
	Port      string // the consumer's input port
	Edge      int
	Stream    bool
	Sent      int64
	Received  int64
}

// HandoffHook is implemented by hooks that want hand-off events.
type HandoffHook interface {
	Handoff(ctx context.Context, ev HandoffEvent)
}

// profHook records operator activations and hand-offs with a profiler. One
// is made per session; each edge's hand-off lanes are touched only by the
// edge's consumer goroutine.
type profHook struct {
	p     *profiler.Profiler
	lanes [][]handoffLane // per edge
	names []string        // per edge: span name
}

type handoffLane struct {
	end  int64
	name string
}

// handoffLaneBase keeps hand-off lanes apart from node lanes on a stage.
const handoffLaneBase = 1 << 16

// maxHandoffLanes bounds the lanes per edge; hand-offs beyond it share the
// last lane.
const maxHandoffLanes = 16

func newProfHook(p *profiler.Profiler, edges []*edge) *profHook {
	h := &profHook{p: p, lanes: make([][]handoffLane, len(edges)), names: make([]string, len(edges))}
	for _, e := range edges {
		from := e.from.name
		to := "output " + e.output
		if e.to != nil {
			to = e.to.name
		}
		h.names[e.index] = from + " → " + to
	}
	return h
}

func (h *profHook) NodeStart(ctx context.Context, ev NodeEvent) (context.Context, NodeSpan) {
	return h.p.Enter(ctx, profiler.Track{Stage: ev.Stage, StageName: ev.StageName, Lane: ev.Lane, LaneName: ev.Node, Request: ev.Request},
		ev.Node, profiler.String("op", ev.Op))
}

// Handoff records the time a message spent queued as a span on the
// consumer's stage. Queued messages overlap in time, so each edge spreads
// them over lanes (the first lane free at the send time), keeping every lane
// properly nested.
func (h *profHook) Handoff(ctx context.Context, ev HandoffEvent) {
	if !h.p.Recording(ev.To.Stage) {
		return
	}
	lanes := h.lanes[ev.Edge]
	k := -1
	for i := range lanes {
		if lanes[i].end <= ev.Sent {
			k = i
			break
		}
	}
	if k < 0 {
		if len(lanes) < maxHandoffLanes {
			lanes = append(lanes, handoffLane{name: h.names[ev.Edge] + " #" + strconv.Itoa(len(lanes))})
			h.lanes[ev.Edge] = lanes
			k = len(lanes) - 1
		} else {
			k = len(lanes) - 1
		}
	}
	lanes[k].end = ev.Received
	h.p.Emit(profiler.Track{
		Stage: ev.To.Stage, StageName: ev.To.StageName,
		Lane: handoffLaneBase + ev.Edge*maxHandoffLanes + k, LaneName: lanes[k].name,
		Request: ev.To.Request,
	}, profiler.KindHandoff, h.names[ev.Edge], ev.Sent, ev.Received,
		profiler.String("port", ev.Port), profiler.Bool("stream", ev.Stream), profiler.Int("from_stage", ev.FromStage))
}
