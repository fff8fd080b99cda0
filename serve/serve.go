// Package serve is omniflow's HTTP server: generation endpoints, and the
// profiling control vLLM users know — POST /start_profile and
// POST /stop_profile toggle profiling on a running server without a
// restart — plus /health and /metrics.
//
//	srv := serve.New(prof, serve.WithStages(0, 1, 2), serve.WithEndpoint("POST /v1/generate", generate))
//	http.ListenAndServe(":8000", srv)
//
//	curl -X POST localhost:8000/start_profile -d '{"stages":[0,2]}'
//	curl -X POST localhost:8000/stop_profile      # {"dir": ..., "files": [...], ...}
//
// A /start_profile naming a stage the pipeline does not have (see
// WithStages) is refused with a 400 naming it and the stages there are.
//
// Stopping a profile never delays or drops a generation in flight: the
// profiler's Stop is a separate control path. A W3C traceparent header on
// a generation request is handed to WithTraceParent's function with the
// request id, so the OpenTelemetry sink can join the caller's trace.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/omniflow-go/omniflow/profiler"
)

// maxControlBody bounds the body of /start_profile.
const maxControlBody = 64 << 10

// Handler serves one generation request; id is the request id the server
// assigned (from the X-Request-Id header when the client sent one), to be
// used as the pipeline's request id so the trace's flow arrows and the
// OpenTelemetry parent line up.
type Handler func(ctx context.Context, id string, w http.ResponseWriter, r *http.Request) error

// Server is an http.Handler.
type Server struct {
	prof    *profiler.Profiler
	mux     *http.ServeMux
	log     *slog.Logger
	parent  func(requestID, traceparent string)
	stages  []int             // for a /start_profile that names none
	valid   []int             // the pipeline's stages (nil: any the profiler takes)
	meta    map[string]string // under the request's own meta
	nextID  atomic.Uint64
	started time.Time

	requests  atomic.Int64
	failures  atomic.Int64
	inFlight  atomic.Int64
	profiles  atomic.Int64
	lastFiles atomic.Int64
}

// Option configures a Server.
type Option func(*Server)

// WithEndpoint serves pattern (an http.ServeMux pattern such as
// "POST /v1/generate") with h.
func WithEndpoint(pattern string, h Handler) Option {
	return func(s *Server) { s.mux.Handle(pattern, s.generation(h)) }
}

// WithLogger sets where request errors are logged.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithTraceParent calls f with each generation request's id and its W3C
// traceparent header (when present).
func WithTraceParent(f func(requestID, traceparent string)) Option {
	return func(s *Server) { s.parent = f }
}

// WithProfileDefaults sets what a POST /start_profile gets when its body
// leaves it out: the stages to record (an engine that knows its stages
// passes them all, so that with MAX_ITERS the profile waits for every one
// of them), and metadata for the manifest (the request's own keys win).
// Without WithStages, these stages are also the only ones a
// /start_profile may name.
func WithProfileDefaults(stages []int, meta map[string]string) Option {
	return func(s *Server) {
		s.stages = slices.Clone(stages)
		s.meta = maps.Clone(meta)
	}
}

// WithStages names the stage ids the served pipeline has. A
// /start_profile naming any other is refused with a 400 that names it and
// these: a stage that does not exist would record nothing, and a MAX_ITERS
// profile waiting for its window would never stop. Without WithStages or
// WithProfileDefaults, any id the profiler can record is taken.
func WithStages(ids ...int) Option {
	return func(s *Server) { s.valid = slices.Clone(ids) }
}

// New returns a server controlling prof.
func New(prof *profiler.Profiler, opts ...Option) *Server {
	s := &Server{prof: prof, mux: http.NewServeMux(), log: slog.New(slog.DiscardHandler), started: time.Now()}
	s.mux.HandleFunc("POST /start_profile", s.startProfile)
	s.mux.HandleFunc("POST /stop_profile", s.stopProfile)
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /metrics", s.metrics)
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	if s.valid == nil && len(s.stages) > 0 {
		s.valid = slices.Clone(s.stages)
	}
	if s.valid != nil {
		slices.Sort(s.valid)
		s.valid = slices.Compact(s.valid)
	}
	return s
}

// checkStages returns an error naming the first of ids that is not one of
// the pipeline's stages (nil when the server does not know them: the
// profiler then checks the range).
func (s *Server) checkStages(ids []int) error {
	if s.valid == nil {
		return nil
	}
	for _, id := range ids {
		if !slices.Contains(s.valid, id) {
			names := make([]string, len(s.valid))
			for i, v := range s.valid {
				names[i] = strconv.Itoa(v)
			}
			return fmt.Errorf("stage %d does not exist; this server's stages are %s", id, strings.Join(names, ", "))
		}
	}
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Error is the JSON body of every error response.
type Error struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, Error{Error: fmt.Sprintf(format, args...)})
}

// StartRequest is the optional body of POST /start_profile.
type StartRequest struct {
	Stages []int             `json:"stages,omitempty"`
	Name   string            `json:"name,omitempty"`
	Meta   map[string]string `json:"meta,omitempty"`
}

// StopResponse is the body of a successful POST /stop_profile.
type StopResponse struct {
	Dir     string   `json:"dir"`
	Files   []string `json:"files"`
	Events  uint64   `json:"events"`
	Dropped uint64   `json:"dropped"`
	Reason  string   `json:"reason"`
	Error   string   `json:"error,omitempty"`
}

// decodeBody reads an optional JSON body into v, refusing unknown fields,
// trailing data and bodies over limit.
func decodeBody(r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("body larger than %d bytes", limit)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("bad JSON body: data after the object")
	}
	return nil
}

func (s *Server) startProfile(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	if err := decodeBody(r, maxControlBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if len(req.Stages) == 0 {
		req.Stages = s.stages
		if err := s.checkStages(req.Stages); err != nil {
			writeError(w, http.StatusInternalServerError, "the server's default stages: %v", err)
			return
		}
	} else if err := s.checkStages(req.Stages); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	opts := []profiler.StartOption{profiler.Stages(req.Stages...)}
	if req.Name != "" {
		opts = append(opts, profiler.Name(req.Name))
	}
	for k, v := range s.meta {
		if _, ok := req.Meta[k]; !ok {
			opts = append(opts, profiler.Meta(k, v))
		}
	}
	for k, v := range req.Meta {
		opts = append(opts, profiler.Meta(k, v))
	}
	err := s.prof.Start(r.Context(), opts...)
	switch {
	case errors.Is(err, profiler.ErrAlreadyStarted):
		writeError(w, http.StatusConflict, "%v", err)
	case errors.Is(err, profiler.ErrStage):
		writeError(w, http.StatusBadRequest, "stages: %v", err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "%v", err)
	default:
		s.profiles.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"status": "started", "stages": req.Stages})
	}
}

func (s *Server) stopProfile(w http.ResponseWriter, r *http.Request) {
	res, err := s.prof.Stop(r.Context())
	if errors.Is(err, profiler.ErrNotStarted) {
		writeError(w, http.StatusConflict, "%v", err)
		return
	}
	out := StopResponse{Dir: res.Dir, Files: res.Files, Events: res.Events, Dropped: res.Dropped, Reason: string(res.Reason)}
	if out.Files == nil {
		out.Files = []string{}
	}
	if err != nil {
		out.Error = err.Error()
	}
	s.lastFiles.Store(int64(len(res.Files)))
	writeJSON(w, http.StatusOK, out)
}

// generation wraps a Handler with request ids, trace parents and counters.
func (s *Server) generation(h Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = "http-" + strconv.FormatUint(s.nextID.Add(1), 10)
		}
		w.Header().Set("X-Request-Id", id)
		if tp := r.Header.Get("Traceparent"); tp != "" && s.parent != nil {
			s.parent(id, tp)
		}
		s.requests.Add(1)
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		if err := h(r.Context(), id, w, r); err != nil {
			s.failures.Add(1)
			s.log.Warn("generation failed", "request", id, "err", err)
			var he *HTTPError
			if errors.As(err, &he) {
				writeError(w, he.Code, "%v", he.Err)
				return
			}
			writeError(w, http.StatusInternalServerError, "%v", err)
		}
	})
}

// HTTPError is an error with the status code to answer with (a Handler
// returns one for bad input: 400).
type HTTPError struct {
	Code int
	Err  error
}

func (e *HTTPError) Error() string { return e.Err.Error() }
func (e *HTTPError) Unwrap() error { return e.Err }

// BadRequest wraps err as a 400.
func BadRequest(format string, args ...any) error {
	return &HTTPError{Code: http.StatusBadRequest, Err: fmt.Errorf(format, args...)}
}

// DecodeJSON reads a request body into v (for Handlers), with a size limit;
// errors are 400s.
func DecodeJSON(r *http.Request, limit int64, v any) error {
	if err := decodeBody(r, limit, v); err != nil {
		return &HTTPError{Code: http.StatusBadRequest, Err: err}
	}
	return nil
}

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	active := 0
	if s.prof.Active() {
		active = 1
	}
	fmt.Fprintf(w, "# TYPE omniflow_requests_total counter\nomniflow_requests_total %d\n", s.requests.Load())
	fmt.Fprintf(w, "# TYPE omniflow_request_failures_total counter\nomniflow_request_failures_total %d\n", s.failures.Load())
	fmt.Fprintf(w, "# TYPE omniflow_requests_in_flight gauge\nomniflow_requests_in_flight %d\n", s.inFlight.Load())
	fmt.Fprintf(w, "# TYPE omniflow_profile_active gauge\nomniflow_profile_active %d\n", active)
	fmt.Fprintf(w, "# TYPE omniflow_profiles_started_total counter\nomniflow_profiles_started_total %d\n", s.profiles.Load())
	fmt.Fprintf(w, "# TYPE omniflow_uptime_seconds gauge\nomniflow_uptime_seconds %.0f\n", time.Since(s.started).Seconds())
}
