// Package chrome writes profiling sessions as Chrome Trace Event Format
// files (trace.json.gz in the session folder) that Perfetto
// (ui.perfetto.dev) and chrome://tracing open, and reads such traces back
// — ours or the PyTorch profiler's — as intervals for profiler.Summarize.
//
//	p, err := profiler.New(profiler.WithDir("profiles"), profiler.WithSink(chrome.New()))
//	err = p.Start(ctx)
//	...
//	res, err := p.Stop(ctx) // res.Files has <session folder>/trace.json.gz
//
// The layout follows the engine's: one process per stage (pid = stage+2,
// so work outside any stage is pid 1, "host"), one thread per lane (tid =
// lane+1), named by metadata events. Spans are complete events ("X") whose
// category is their kind (operator, iteration, module, kernel, handoff);
// their args carry the request id, the iteration, the span and parent ids,
// and the span's attributes. Instants are thread-scoped "i" events and
// counters "C" events. Timestamps are microseconds on the profiler's one
// clock, written exactly to the nanosecond (at most three decimals); the
// session starts at 1000 µs, so that no event sits at zero.
//
// Flow arrows follow each request from stage to stage: one into the
// request's first operator slice on each lane it reaches, from its latest
// slice until then on the lane it reached before (by start time). A stage
// that pauses while it waits for input has many slices per request; arrows
// between all of them would zigzag between stages that stream to each
// other, while these trace the request's way through the pipeline. Both ends carry the exact category, pid, tid and ts of
// the slice they bind to, which is how Chrome's importer finds it; the
// finishing end binds to its enclosing slice ("bp":"e"), and both ends
// share a name ("request <id>") and a unique id, which is how Perfetto
// pairs them. Chrome DevTools also takes an arrow's direction from the
// order in which it meets the two slices in the file, and records arrive
// in the order spans end, from several shards; so the operator slices of
// requests are held back — encoded, in a temporary file, with 32 bytes
// each in memory, bounded by WithMaxFlowAnchors — and written at Shutdown
// in order of start, followed by the arrows. A request that has a slice
// over the bound gets no arrows rather than wrong ones, and otherData
// counts what was dropped.
//
// Everything else is written as the records arrive — each batch is
// encoded with strconv into a reused buffer and goes straight into the
// gzip stream — under a temporary name in the session folder, renamed
// into place only when Shutdown has completed it, so a file under the
// final name is always whole.
//
// The package chrometest decodes and checks such traces for tests.
package chrome
