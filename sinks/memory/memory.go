// Package memory is a profiler sink that keeps records in memory, for tests
// and for programs that analyse their own runs.
//
//	mem := memory.New()
//	p, _ := profiler.New(profiler.WithSink(mem))
//	p.Start(ctx); ...; p.Stop(ctx)
//	for _, r := range mem.Records() { ... }
package memory

import (
	"context"
	"errors"
	"sync"

	"github.com/omniflow-go/omniflow/profiler"
)

// Store is a SinkFactory whose sessions keep every record they receive.
type Store struct {
	mu       sync.Mutex
	sessions []*Session
}

// New returns an empty store.
func New() *Store { return &Store{} }

// Open starts recording a session.
func (st *Store) Open(_ context.Context, info profiler.SessionInfo) (profiler.Sink, error) {
	s := &Session{Info: info}
	st.mu.Lock()
	st.sessions = append(st.sessions, s)
	st.mu.Unlock()
	return s, nil
}

// Sessions returns every session opened so far, oldest first.
func (st *Store) Sessions() []*Session {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]*Session(nil), st.sessions...)
}

// Last returns the newest session (nil if none).
func (st *Store) Last() *Session {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.sessions) == 0 {
		return nil
	}
	return st.sessions[len(st.sessions)-1]
}

// Records returns a copy of the newest session's records.
func (st *Store) Records() []profiler.Record {
	if s := st.Last(); s != nil {
		return s.Records()
	}
	return nil
}

// Session is one profiling session's records.
type Session struct {
	Info profiler.SessionInfo

	mu       sync.Mutex
	records  []profiler.Record
	shutdown bool
}

// ErrShutdown is returned by Export after Shutdown.
var ErrShutdown = errors.New("memory sink: export after shutdown")

// Export appends a copy of the batch.
func (s *Session) Export(_ context.Context, batch []profiler.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return ErrShutdown
	}
	s.records = append(s.records, batch...)
	return nil
}

// Shutdown marks the session complete.
func (s *Session) Shutdown(context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	s.mu.Unlock()
	return nil
}

// Complete reports whether Shutdown was called.
func (s *Session) Complete() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// Records returns a copy of the records received so far.
func (s *Session) Records() []profiler.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]profiler.Record(nil), s.records...)
}
