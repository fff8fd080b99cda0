package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/omniflow-go/omniflow/profiler"
)

var (
	// ErrUpstream is wrapped by IO errors when an upstream node failed the
	// request; the request's error names the node that failed first.
	ErrUpstream = errors.New("upstream node failed")
	// ErrClosed is returned by Submit on a closed session, and is the error
	// of requests still in flight when a session is torn down.
	ErrClosed = errors.New("graph: session closed")
	// ErrNotConnected is returned when reading an optional input that has
	// no edge.
	ErrNotConnected = errors.New("input not connected")
)

// Plan is a checked, compiled graph. It is immutable and can serve any
// number of sessions.
type Plan struct {
	g       *Graph
	cfg     planConfig
	nodes   []*planNode
	inputs  []*planOut // one per graph input, fed by the session's feeder
	outputs []*edge
	edges   []*edge
	stages  []StageInfo
}

// StageInfo lists a stage's nodes.
type StageInfo struct {
	ID    int
	Name  string
	Nodes []string
}

type planNode struct {
	n      *Node
	ins    []planIn
	outs   []planOut
	first  int // index in ins of the first connected input, -1 when none
	lane   int
	inByNm map[string]int
	outBy  map[string]int
}

type planIn struct {
	port Port
	edge *edge // nil when an optional input is unconnected
}

type planOut struct {
	port  Port
	edges []*edge
}

func newPlan(g *Graph, cfg planConfig, inEdge map[*Node]map[string]*edge) *Plan {
	p := &Plan{g: g, cfg: cfg, outputs: g.outputs, edges: g.edges}
	outEdges := map[*Node]map[string][]*edge{}
	for _, e := range g.edges {
		m := outEdges[e.from]
		if m == nil {
			m = map[string][]*edge{}
			outEdges[e.from] = m
		}
		m[e.fromPort.Name] = append(m[e.fromPort.Name], e)
	}
	lanes := map[int]int{}
	stageIdx := map[int]int{}
	for _, n := range g.nodes {
		pn := &planNode{n: n, first: -1, lane: lanes[n.stage], inByNm: map[string]int{}, outBy: map[string]int{}}
		lanes[n.stage]++
		for i, port := range n.contract.Inputs {
			e := inEdge[n][port.Name]
			pn.ins = append(pn.ins, planIn{port: port, edge: e})
			pn.inByNm[port.Name] = i
			if e != nil && pn.first < 0 {
				pn.first = i
			}
		}
		for i, port := range n.contract.Outputs {
			pn.outs = append(pn.outs, planOut{port: port, edges: outEdges[n][port.Name]})
			pn.outBy[port.Name] = i
		}
		p.nodes = append(p.nodes, pn)
		si, ok := stageIdx[n.stage]
		if !ok {
			si = len(p.stages)
			stageIdx[n.stage] = si
			p.stages = append(p.stages, StageInfo{ID: n.stage, Name: n.stageName})
		}
		p.stages[si].Nodes = append(p.stages[si].Nodes, n.name)
	}
	for _, in := range g.inputs {
		p.inputs = append(p.inputs, &planOut{port: in.contract.Outputs[0], edges: outEdges[in][in.name]})
	}
	return p
}

// Name returns the graph's name.
func (p *Plan) Name() string { return p.g.name }

// Stages lists the plan's stages in order of first appearance.
func (p *Plan) Stages() []StageInfo {
	out := make([]StageInfo, len(p.stages))
	for i, s := range p.stages {
		out[i] = StageInfo{ID: s.ID, Name: s.Name, Nodes: append([]string(nil), s.Nodes...)}
	}
	return out
}

// Inputs returns the graph inputs' names and types.
func (p *Plan) Inputs() []Port {
	out := make([]Port, len(p.inputs))
	for i, in := range p.inputs {
		out[i] = in.port
	}
	return out
}

// Outputs returns the graph outputs' names and types.
func (p *Plan) Outputs() []Port {
	out := make([]Port, len(p.outputs))
	for i, e := range p.outputs {
		out[i] = e.fromPort
		out[i].Name = e.output
	}
	return out
}

// String describes the plan: stages, nodes and edges.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %q\n", p.g.name)
	for _, s := range p.stages {
		fmt.Fprintf(&b, "  stage %d: %s\n", s.ID, s.Name)
		for _, name := range s.Nodes {
			n := p.g.byName[name]
			fmt.Fprintf(&b, "    %s (%s)\n", name, n.contract.Name)
		}
	}
	for _, e := range p.edges {
		fmt.Fprintf(&b, "  %s  %s\n", e, e.fromPort.Type)
	}
	return b.String()
}

// Feeds are a request's graph inputs, by name.
type Feeds map[string]any

// Results are a request's graph outputs, by name. A stream output's value
// is the []any of the chunks not already taken with Request.Next.
type Results map[string]any

// Run runs one request through a fresh session and returns its outputs.
// The first error cancels the rest of the run and is returned wrapped with
// the failing node's name; an operator's panic becomes such an error.
// Cancelling ctx stops the run promptly. No goroutine outlives Run.
func (p *Plan) Run(ctx context.Context, feeds Feeds) (Results, error) {
	s, err := p.Serve(ctx)
	if err != nil {
		return nil, err
	}
	req, err := s.Submit(ctx, feeds)
	var res Results
	if err == nil {
		res, err = req.Wait(ctx)
	}
	if cerr := s.Close(ctx); cerr != nil && err == nil {
		err = cerr
	}
	return res, err
}

type msgKind uint8

const (
	mValue msgKind = iota
	mChunk
	mEnd
	mFail
)

type msg struct {
	req  *Request
	kind msgKind
	v    any
	sent int64
}

// Session serves many requests at once: each node runs in its own goroutine
// and takes requests in submission order, so different requests occupy
// different stages at the same time, and stream edges deliver chunks as they
// are produced. Every channel is bounded; a slow stage back-pressures the
// ones before it, and Submit blocks when the pipeline is full.
type Session struct {
	plan   *Plan
	parent context.Context // Serve's
	ctx    context.Context
	cancel context.CancelFunc
	hooks  []Hook
	hand   []HandoffHook

	chans  []chan msg      // per edge
	ctrl   []chan *Request // per node
	submit chan *Request

	mu     sync.RWMutex
	closed bool

	wg     sync.WaitGroup
	nextID atomic.Uint64

	reqMu    sync.Mutex
	inflight map[*Request]struct{}

	opened    []Operator
	loops     func() // releases the plan's loop stages (ExpectIterations)
	closeOnce sync.Once
	closeErr  error
}

// Serve opens the plan's operators (Open, in node order; if one fails the
// ones already opened are closed) and starts a session. Cancelling ctx tears
// the session down; Close must still be called.
func (p *Plan) Serve(ctx context.Context) (*Session, error) {
	s := &Session{
		plan:     p,
		chans:    make([]chan msg, len(p.edges)),
		ctrl:     make([]chan *Request, len(p.nodes)),
		submit:   make(chan *Request, p.cfg.buffer),
		inflight: map[*Request]struct{}{},
	}
	prof := p.cfg.prof
	if prof == nil {
		prof = profiler.Default()
	}
	ph := newProfHook(prof, p.edges)
	s.hooks = append([]Hook{ph}, p.cfg.hooks...)
	for _, h := range s.hooks {
		if hh, ok := h.(HandoffHook); ok {
			s.hand = append(s.hand, hh)
		}
	}
	for i := range s.chans {
		s.chans[i] = make(chan msg, p.cfg.buffer)
	}
	for i := range s.ctrl {
		s.ctrl[i] = make(chan *Request, p.cfg.buffer)
	}
	for _, pn := range p.nodes {
		o, ok := pn.n.op.(Opener)
		if ok {
			if err := guard(func() error { return o.Open(ctx) }); err != nil {
				err = fmt.Errorf("graph %q: node %q (%s): open: %w", p.g.name, pn.n.name, pn.n.contract.Name, err)
				return nil, errors.Join(err, s.closeOps())
			}
		}
		s.opened = append(s.opened, pn.n.op)
	}
	var loops []int
	for _, pn := range p.nodes {
		if pn.n.contract.Loop {
			loops = append(loops, pn.n.stage)
		}
	}
	s.loops = prof.ExpectIterations(loops...)
	s.parent = ctx
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go s.feed()
	for _, pn := range p.nodes {
		s.wg.Add(1)
		go s.runNode(pn)
	}
	for _, e := range p.outputs {
		s.wg.Add(1)
		go s.collect(e)
	}
	return s, nil
}

// closeOps closes the opened operators in reverse order.
func (s *Session) closeOps() error {
	var errs []error
	for i := len(s.opened) - 1; i >= 0; i-- {
		if c, ok := s.opened[i].(Closer); ok {
			if err := guard(c.Close); err != nil {
				errs = append(errs, fmt.Errorf("graph %q: close %s: %w", s.plan.g.name, s.plan.nodes[i].n.name, err))
			}
		}
	}
	s.opened = nil
	return errors.Join(errs...)
}

// SubmitOption configures one request.
type SubmitOption func(*Request)

// RequestID sets the request's id (default: a sequence number). The id is
// what the trace shows and what flow arrows follow.
func RequestID(id string) SubmitOption { return func(r *Request) { r.id = id } }

// Submit starts a request. It blocks while the pipeline is full. ctx bounds
// the whole request: cancelling it cancels the request. The caller must
// take the request's results (Wait, or Next until io.EOF) or cancel ctx:
// stream outputs are back-pressured like every other edge.
func (s *Session) Submit(ctx context.Context, feeds Feeds, opts ...SubmitOption) (*Request, error) {
	if err := s.checkFeeds(feeds); err != nil {
		return nil, err
	}
	r := &Request{s: s, feeds: feeds, done: make(chan struct{}), values: map[string]any{}}
	for _, o := range opts {
		if o != nil {
			o(r)
		}
	}
	if r.id == "" {
		r.id = strconv.FormatUint(s.nextID.Add(1), 10)
	}
	nStreams := 0
	for _, e := range s.plan.outputs {
		if e.fromPort.Stream {
			nStreams++
		}
	}
	if nStreams > 0 {
		r.chunks = make(chan Chunk, s.plan.cfg.buffer)
	} else {
		r.chunks = make(chan Chunk)
		close(r.chunks)
	}
	r.remaining.Store(int32(len(s.plan.nodes) + len(s.plan.outputs)))
	r.ctx, r.cancel = context.WithCancelCause(s.ctx)
	r.stop = context.AfterFunc(ctx, func() { r.fail(fmt.Errorf("request %q: %w", r.id, context.Cause(ctx))) })

	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		r.release()
		return nil, ErrClosed
	}
	s.reqMu.Lock()
	s.inflight[r] = struct{}{}
	s.reqMu.Unlock()
	var err error
	select {
	case s.submit <- r:
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.ctx.Done():
		err = ErrClosed
		if s.parent.Err() != nil { // the session's own context ended
			err = fmt.Errorf("graph %q: %w", s.plan.g.name, s.parent.Err())
		}
	}
	if cerr := ctx.Err(); err != nil && cerr != nil { // a caller that gave up hears so, whichever case won
		err = cerr
	}
	s.mu.RUnlock()
	if err != nil {
		s.reqMu.Lock()
		delete(s.inflight, r)
		s.reqMu.Unlock()
		r.release()
		return nil, err
	}
	return r, nil
}

func (s *Session) checkFeeds(feeds Feeds) error {
	var errs []error
	for _, in := range s.plan.inputs {
		v, ok := feeds[in.port.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("missing feed %q (%s)", in.port.Name, in.port.Type))
		} else if v == nil {
			errs = append(errs, fmt.Errorf("feed %q is nil", in.port.Name))
		}
	}
	for name := range feeds {
		found := false
		for _, in := range s.plan.inputs {
			found = found || in.port.Name == name
		}
		if !found {
			errs = append(errs, fmt.Errorf("unknown feed %q", name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("graph %q: %w", s.plan.g.name, errors.Join(errs...))
	}
	return nil
}

// Close stops accepting requests, lets the ones in flight finish, stops the
// goroutines and closes the operators. If ctx ends first, the requests in
// flight are cancelled instead (they fail with ErrClosed). Close is
// idempotent.
func (s *Session) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		stop := context.AfterFunc(ctx, s.cancel)
		s.mu.Lock()
		s.closed = true
		close(s.submit)
		s.mu.Unlock()
		s.wg.Wait()
		stop()
		aborted := s.ctx.Err() != nil
		s.cancel()
		s.reqMu.Lock()
		left := make([]*Request, 0, len(s.inflight))
		for r := range s.inflight {
			left = append(left, r)
		}
		s.reqMu.Unlock()
		for _, r := range left {
			r.fail(ErrClosed)
			r.finish()
		}
		var errs []error
		if aborted && ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("graph %q: close: %w", s.plan.g.name, ctx.Err()))
		}
		errs = append(errs, s.closeOps())
		s.loops()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// send delivers m on ch. It blocks under back-pressure (pausing the node's
// spans), and gives up when abort or the session is done.
func (s *Session) send(ch chan msg, m msg, abort <-chan struct{}, spans []NodeSpan) error {
	m.sent = profiler.Now()
	select {
	case <-abort: // a cancelled request stops producing at once
		return context.Cause(m.req.ctx)
	case ch <- m:
		return nil
	default:
	}
	pause(spans)
	defer resume(spans)
	select {
	case ch <- m:
		return nil
	case <-abort:
		return context.Cause(m.req.ctx)
	case <-s.ctx.Done():
		return ErrClosed
	}
}

// pause and resume run the hooks in opposite orders, so that each later
// hook's pause lies inside the earlier hooks' (the profiler's is outermost).
func pause(spans []NodeSpan) {
	for _, sp := range spans {
		sp.Pause()
	}
}

func resume(spans []NodeSpan) {
	for i := len(spans) - 1; i >= 0; i-- {
		spans[i].Resume()
	}
}

// feed hands each submitted request to every node, then sends its feeds.
func (s *Session) feed() {
	defer s.wg.Done()
	defer func() {
		for _, in := range s.plan.inputs {
			for _, e := range in.edges {
				close(s.chans[e.index])
			}
		}
		for _, c := range s.ctrl {
			close(c)
		}
	}()
	for r := range s.submit {
		for _, c := range s.ctrl {
			select {
			case c <- r:
			case <-s.ctx.Done():
				return
			}
		}
		for _, in := range s.plan.inputs {
			for _, e := range in.edges {
				if err := s.send(s.chans[e.index], msg{req: r, kind: mValue, v: r.feeds[in.port.Name]}, nil, nil); err != nil {
					return
				}
			}
		}
	}
}

// collect delivers one graph output to the requests.
func (s *Session) collect(e *edge) {
	defer s.wg.Done()
	ch := s.chans[e.index]
	for {
		var m msg
		var ok bool
		select {
		case m, ok = <-ch:
			if !ok {
				return
			}
		case <-s.ctx.Done():
			return
		}
		r := m.req
		switch m.kind {
		case mValue:
			r.mu.Lock()
			r.values[e.output] = m.v
			r.mu.Unlock()
			r.doneOne()
		case mChunk:
			select {
			case r.chunks <- Chunk{Output: e.output, Value: m.v}:
			case <-r.ctx.Done(): // the request was cancelled: nobody reads
			case <-s.ctx.Done():
				return
			}
		case mEnd, mFail:
			r.doneOne()
		}
	}
}

func (s *Session) runNode(pn *planNode) {
	defer s.wg.Done()
	defer func() {
		for _, o := range pn.outs {
			for _, e := range o.edges {
				close(s.chans[e.index])
			}
		}
	}()
	ctrl := s.ctrl[pn.n.index]
	for {
		select {
		case r, ok := <-ctrl:
			if !ok {
				return
			}
			if !s.process(pn, r) {
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// process runs one request through one node. It returns false when the
// session is being torn down.
func (s *Session) process(pn *planNode, r *Request) bool {
	io := s.newIO(pn, r)
	if pn.first >= 0 { // start the activation only when there is work
		in := &io.ins[pn.first]
		select {
		case m, ok := <-in.ch:
			if !ok {
				return false
			}
			in.peek, in.peeked, in.recvAt = m, true, profiler.Now()
		case <-s.ctx.Done():
			return false
		}
	}
	var err error
	if cause := context.Cause(r.ctx); cause != nil {
		err = fmt.Errorf("%w: %w", errSkipped, cause)
	} else {
		ev := NodeEvent{Graph: s.plan.g.name, Node: pn.n.name, Op: pn.n.contract.Name, Stage: pn.n.stage,
			StageName: pn.n.stageName, Lane: pn.lane, Request: r.id}
		ctx := r.ctx
		spans := make([]NodeSpan, 0, len(s.hooks))
		for _, h := range s.hooks {
			var sp NodeSpan
			ctx, sp = h.NodeStart(ctx, ev)
			if sp != nil {
				spans = append(spans, sp)
			}
		}
		io.ctx, io.spans, io.ev = ctx, spans, ev
		err = runOp(pn.n.op, ctx, io)
		if err == nil {
			err = io.checkOutputs()
		}
		for i := len(spans) - 1; i >= 0; i-- {
			spans[i].End(err)
		}
		io.spans = nil
	}
	if err != nil && !errors.Is(err, ErrUpstream) && !errors.Is(err, errSkipped) {
		r.fail(fmt.Errorf("node %q (%s): %w", pn.n.name, pn.n.contract.Name, err))
	}
	if !io.finish(err != nil) {
		return false
	}
	r.doneOne()
	return true
}

var errSkipped = errors.New("skipped: request already failed or cancelled")

// runOp calls op.Run, turning a panic into an error.
func runOp(op Operator, ctx context.Context, io *IO) error {
	return guard(func() error { return op.Run(ctx, io) })
}

// guard calls f, turning a panic into an error that carries the stack.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			stack := debug.Stack()
			if len(stack) > 4096 {
				stack = stack[:4096]
			}
			err = fmt.Errorf("panic: %v\n%s", p, stack)
		}
	}()
	return f()
}

// Chunk is one piece of a stream output.
type Chunk struct {
	Output string
	Value  any
}

// Request is one request in flight through a session.
type Request struct {
	s      *Session
	id     string
	feeds  Feeds
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   func() bool

	errOnce sync.Once
	err     error

	remaining atomic.Int32
	doneOnce  sync.Once
	done      chan struct{}

	mu      sync.Mutex
	values  map[string]any
	streams map[string][]any
	chunks  chan Chunk
	eof     bool
}

// ID returns the request's id.
func (r *Request) ID() string { return r.id }

// Done is closed when the request has finished (all its outputs delivered
// or it failed).
func (r *Request) Done() <-chan struct{} { return r.done }

// Err returns the request's error once it is done (nil before).
func (r *Request) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

func (r *Request) fail(err error) {
	r.errOnce.Do(func() {
		r.err = err
		r.cancel(err)
	})
}

func (r *Request) doneOne() {
	if r.remaining.Add(-1) == 0 {
		r.finish()
	}
}

func (r *Request) finish() {
	r.doneOnce.Do(func() {
		r.errOnce.Do(func() {}) // no error from now on
		if len(r.s.plan.outputs) > 0 {
			for _, e := range r.s.plan.outputs {
				if e.fromPort.Stream {
					close(r.chunks)
					break
				}
			}
		}
		r.release()
		s := r.s
		s.reqMu.Lock()
		delete(s.inflight, r)
		s.reqMu.Unlock()
		close(r.done)
	})
}

func (r *Request) release() {
	if r.stop != nil {
		r.stop()
	}
	if r.cancel != nil {
		r.cancel(context.Canceled)
	}
}

// Next returns the next chunk of any stream output, as it is produced, and
// io.EOF after the last one (then Wait gives the value outputs and the
// error).
func (r *Request) Next(ctx context.Context) (Chunk, error) {
	select {
	case c, ok := <-r.chunks:
		if !ok {
			return Chunk{}, io.EOF
		}
		return c, nil
	case <-ctx.Done():
		return Chunk{}, ctx.Err()
	}
}

// Wait waits for the request to finish and returns its outputs; stream
// outputs hold the chunks that Next did not take.
func (r *Request) Wait(ctx context.Context) (Results, error) {
drain:
	for {
		select {
		case c, ok := <-r.chunks:
			if !ok {
				break drain
			}
			r.mu.Lock()
			if r.streams == nil {
				r.streams = map[string][]any{}
			}
			r.streams[c.Output] = append(r.streams[c.Output], c.Value)
			r.mu.Unlock()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, r.err
	}
	res := Results{}
	r.mu.Lock()
	for k, v := range r.values {
		res[k] = v
	}
	for _, e := range r.s.plan.outputs {
		if e.fromPort.Stream {
			s := r.streams[e.output]
			if s == nil {
				s = []any{}
			}
			res[e.output] = s
		}
	}
	r.mu.Unlock()
	return res, nil
}
