package graph

import (
	"context"
	"fmt"
	stdio "io"

	"github.com/omniflow-go/omniflow/profiler"
)

// IO is an operator's view of one request: its inputs and outputs. Reads
// block until the value or chunk arrives (the node's spans are paused
// meanwhile, so a stage records only while it executes); writes block while
// the consumer's channel is full. IO belongs to the goroutine running the
// operator.
type IO struct {
	s     *Session
	pn    *planNode
	req   *Request
	ctx   context.Context
	ev    NodeEvent
	spans []NodeSpan
	ins   []inState
	outs  []outState
}

type inState struct {
	ch     chan msg
	edge   *edge
	peek   msg
	peeked bool
	recvAt int64
	have   bool // value received (or failure seen)
	ended  bool // stream finished
	val    any
	err    error
}

type outState struct {
	chans []chan msg
	sent  []bool // value outputs: delivered per edge
	set   bool
	ended bool
}

func (s *Session) newIO(pn *planNode, r *Request) *IO {
	io := &IO{s: s, pn: pn, req: r, ins: make([]inState, len(pn.ins)), outs: make([]outState, len(pn.outs))}
	for i, in := range pn.ins {
		if in.edge != nil {
			io.ins[i].ch = s.chans[in.edge.index]
			io.ins[i].edge = in.edge
		}
	}
	for i, o := range pn.outs {
		st := &io.outs[i]
		for _, e := range o.edges {
			st.chans = append(st.chans, s.chans[e.index])
		}
		st.sent = make([]bool, len(o.edges))
	}
	return io
}

// Request returns the id of the request being served.
func (io *IO) Request() string { return io.req.id }

// Node returns the name of the node running.
func (io *IO) Node() string { return io.pn.n.name }

// Connected reports whether the input port has an edge.
func (io *IO) Connected(port string) bool {
	i, ok := io.pn.inByNm[port]
	return ok && io.ins[i].ch != nil
}

func (io *IO) input(port string, stream bool) (*inState, error) {
	i, ok := io.pn.inByNm[port]
	if !ok {
		return nil, fmt.Errorf("no input port %q", port)
	}
	if io.pn.ins[i].port.Stream != stream {
		if stream {
			return nil, fmt.Errorf("input %q is a value port: use Get", port)
		}
		return nil, fmt.Errorf("input %q is a stream port: use Recv", port)
	}
	in := &io.ins[i]
	if in.ch == nil {
		return nil, fmt.Errorf("input %q: %w", port, ErrNotConnected)
	}
	return in, nil
}

// recv takes the next message of an input, honouring abort (the request's
// cancellation; nil while draining).
func (io *IO) recv(in *inState, abort <-chan struct{}) (msg, error) {
	if in.peeked {
		in.peeked = false
		io.handoff(in, in.peek, in.recvAt)
		return in.peek, nil
	}
	var m msg
	var ok bool
	select {
	case m, ok = <-in.ch:
	default:
		pause(io.spans)
		select {
		case m, ok = <-in.ch:
		case <-abort:
			resume(io.spans)
			return msg{}, context.Cause(io.req.ctx)
		case <-io.s.ctx.Done():
			resume(io.spans)
			return msg{}, ErrClosed
		}
		resume(io.spans)
	}
	if !ok {
		return msg{}, ErrClosed
	}
	if m.req != io.req {
		return msg{}, fmt.Errorf("graph: internal error: edge %s delivered request %q while serving %q", in.edge, m.req.id, io.req.id)
	}
	io.handoff(in, m, profiler.Now())
	return m, nil
}

func (io *IO) handoff(in *inState, m msg, at int64) {
	if len(io.s.hand) == 0 || m.kind == mEnd || m.kind == mFail || io.spans == nil {
		return
	}
	ev := HandoffEvent{From: in.edge.from.name, FromStage: in.edge.from.stage, To: io.ev, Port: in.edge.toPort.Name,
		Edge: in.edge.index, Stream: in.edge.toPort.Stream, Sent: m.sent, Received: at}
	for _, h := range io.s.hand {
		h.Handoff(io.ctx, ev)
	}
}

// Get returns the value of a value input, waiting for it to arrive. When an
// upstream node failed the request the error wraps ErrUpstream.
func (io *IO) Get(port string) (any, error) {
	in, err := io.input(port, false)
	if err != nil {
		return nil, err
	}
	if in.have {
		return in.val, in.err
	}
	m, err := io.recv(in, io.req.ctx.Done())
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", port, err)
	}
	in.have = true
	switch m.kind {
	case mValue:
		in.val = m.v
	case mFail:
		in.err = fmt.Errorf("input %q: %w", port, ErrUpstream)
	default:
		in.err = fmt.Errorf("input %q: internal error: stream message on a value edge", port)
	}
	return in.val, in.err
}

// Recv returns the next chunk of a stream input, waiting for it, and io.EOF
// after the last one.
func (io *IO) Recv(port string) (any, error) {
	in, err := io.input(port, true)
	if err != nil {
		return nil, err
	}
	if in.ended {
		if in.err != nil {
			return nil, in.err
		}
		return nil, stdio.EOF
	}
	m, err := io.recv(in, io.req.ctx.Done())
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", port, err)
	}
	switch m.kind {
	case mChunk:
		return m.v, nil
	case mEnd:
		in.ended = true
		return nil, stdio.EOF
	case mFail:
		in.ended = true
		in.err = fmt.Errorf("input %q: %w", port, ErrUpstream)
		return nil, in.err
	}
	in.ended = true
	in.err = fmt.Errorf("input %q: internal error: value message on a stream edge", port)
	return nil, in.err
}

func (io *IO) output(port string, stream bool) (*outState, error) {
	i, ok := io.pn.outBy[port]
	if !ok {
		return nil, fmt.Errorf("no output port %q", port)
	}
	if io.pn.outs[i].port.Stream != stream {
		if stream {
			return nil, fmt.Errorf("output %q is a value port: use Put", port)
		}
		return nil, fmt.Errorf("output %q is a stream port: use Send", port)
	}
	return &io.outs[i], nil
}

// Put writes a value output (once per request). It blocks while a consumer's
// channel is full.
func (io *IO) Put(port string, v any) error {
	o, err := io.output(port, false)
	if err != nil {
		return err
	}
	if o.set {
		return fmt.Errorf("output %q written twice", port)
	}
	o.set = true
	for i, ch := range o.chans {
		if err := io.s.send(ch, msg{req: io.req, kind: mValue, v: v}, io.req.ctx.Done(), io.spans); err != nil {
			return fmt.Errorf("output %q: %w", port, err)
		}
		o.sent[i] = true
	}
	return nil
}

// Send writes one chunk of a stream output; the consumer can take it right
// away. The stream ends when Run returns.
func (io *IO) Send(port string, chunk any) error {
	o, err := io.output(port, true)
	if err != nil {
		return err
	}
	if o.ended {
		return fmt.Errorf("output %q: send after the stream ended", port)
	}
	for _, ch := range o.chans {
		if err := io.s.send(ch, msg{req: io.req, kind: mChunk, v: chunk}, io.req.ctx.Done(), io.spans); err != nil {
			return fmt.Errorf("output %q: %w", port, err)
		}
	}
	return nil
}

// checkOutputs reports value outputs a successful Run did not write.
func (io *IO) checkOutputs() error {
	var missing []string
	for i, o := range io.pn.outs {
		if !o.port.Stream && !io.outs[i].set && len(o.edges) > 0 {
			missing = append(missing, o.port.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("Run returned without writing output(s) %v", missing)
	}
	return nil
}

// finish completes the request on every edge so that the nodes around stay
// aligned: unwritten value outputs get a failure marker, streams an end (or
// failure) marker, and unread inputs are drained. It returns false when the
// session is torn down meanwhile.
func (io *IO) finish(failed bool) bool {
	for i := range io.outs {
		o := &io.outs[i]
		stream := io.pn.outs[i].port.Stream
		for j, ch := range o.chans {
			var kind msgKind
			switch {
			case stream && failed:
				kind = mFail
			case stream:
				kind = mEnd
			case o.sent[j]:
				continue
			default:
				kind = mFail
			}
			if err := io.s.send(ch, msg{req: io.req, kind: kind}, nil, nil); err != nil {
				return false
			}
		}
		o.ended = true
	}
	io.spans = nil
	for i := range io.ins {
		in := &io.ins[i]
		if in.ch == nil {
			continue
		}
		stream := io.pn.ins[i].port.Stream
		for (!stream && !in.have) || (stream && !in.ended) {
			m, err := io.recv(in, nil)
			if err != nil {
				return false
			}
			if !stream || m.kind == mEnd || m.kind == mFail {
				in.have, in.ended = true, true
			}
		}
	}
	return true
}
