// Package gostreams makes a graph Session usable as a go-streams Flow
// (github.com/reugn/go-streams), so an omniflow pipeline drops into an
// existing go-streams program:
//
//	f := gostreams.New(ctx, sess, func(v any) (graph.Feeds, error) {
//		return graph.Feeds{"prompt": v}, nil
//	})
//	defer f.Wait()
//	source.Via(f).To(sink) // sink receives gostreams.Result values, in order
//
// go-streams has no errors and no context; the adapter carries both:
// every element comes out as a Result holding the request's outputs or its
// error, in input order, and cancelling ctx ends the flow. The adapter's
// two goroutines end when the input is closed and every result is out (or
// ctx is done); Wait joins them.
package gostreams

import (
	"context"
	"sync"

	streams "github.com/reugn/go-streams"
	"github.com/reugn/go-streams/flow"

	"github.com/omniflow-go/omniflow/graph"
)

// Result is one element's outcome.
type Result struct {
	Input   any
	Outputs graph.Results
	Err     error
}

// Flow is a go-streams Flow backed by a graph Session.
type Flow struct {
	in      chan any
	out     chan any
	pending chan pending
	wg      sync.WaitGroup
}

type pending struct {
	input any
	req   *graph.Request
	err   error
}

var _ streams.Flow = (*Flow)(nil)

// New starts a flow that submits each input element to sess (after feeds
// turns it into the request's feeds) and emits a Result per element, in
// order. Up to buffer requests are in flight at once (default 8 when <= 0
// through NewWithBuffer).
func New(ctx context.Context, sess *graph.Session, feeds func(any) (graph.Feeds, error)) *Flow {
	return NewWithBuffer(ctx, sess, feeds, 8)
}

// NewWithBuffer is New with the number of requests in flight.
func NewWithBuffer(ctx context.Context, sess *graph.Session, feeds func(any) (graph.Feeds, error), buffer int) *Flow {
	if buffer <= 0 {
		buffer = 8
	}
	f := &Flow{in: make(chan any), out: make(chan any), pending: make(chan pending, buffer)}
	f.wg.Add(2)
	go f.submit(ctx, sess, feeds)
	go f.collect(ctx)
	return f
}

func (f *Flow) submit(ctx context.Context, sess *graph.Session, feeds func(any) (graph.Feeds, error)) {
	defer f.wg.Done()
	defer close(f.pending)
	for {
		var v any
		var ok bool
		select {
		case v, ok = <-f.in:
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
		p := pending{input: v}
		fd, err := feeds(v)
		if err == nil {
			p.req, err = sess.Submit(ctx, fd)
		}
		p.err = err
		select {
		case f.pending <- p:
		case <-ctx.Done():
			return
		}
	}
}

func (f *Flow) collect(ctx context.Context) {
	defer f.wg.Done()
	defer close(f.out)
	for p := range f.pending {
		r := Result{Input: p.input, Err: p.err}
		if p.req != nil {
			r.Outputs, r.Err = p.req.Wait(ctx)
		}
		select {
		case f.out <- r:
		case <-ctx.Done():
			for range f.pending { // let submit finish
			}
			return
		}
	}
}

// In is the flow's input channel; close it to end the flow.
func (f *Flow) In() chan<- any { return f.in }

// Out emits a Result per input element, in order.
func (f *Flow) Out() <-chan any { return f.out }

// Via streams the results into the next flow.
func (f *Flow) Via(next streams.Flow) streams.Flow {
	go flow.DoStream(f, next)
	return next
}

// To streams the results into sink and waits for it to complete.
func (f *Flow) To(sink streams.Sink) {
	flow.DoStream(f, sink)
	sink.AwaitCompletion()
}

// Wait blocks until the flow's goroutines have ended.
func (f *Flow) Wait() { f.wg.Wait() }
