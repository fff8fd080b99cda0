// Package otel is a profiler sink that sends omniflow's profile records to
// OpenTelemetry as spans, through any trace.TracerProvider: the SDK's (and
// from there OTLP to a collector, Jaeger, Tempo, ...), a noop one, or a
// program's own. It sits beside sinks/chrome: one profiler may feed both,
// and each sees the same records.
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(otlpExporter))
//	p, err := profiler.New(profiler.WithSink(otel.New(tp)))
//	err = p.Start(ctx)
//	...
//	res, err := p.Stop(ctx) // the provider has been flushed
//
// For OTLP, otlptracegrpc.New and otlptracehttp.New read the standard
// OTEL_EXPORTER_OTLP_* variables (endpoint, headers, TLS), and the SDK's
// resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; this
// package adds none of its own.
//
// # What becomes what
//
// Each span record (operator slice, iteration, module, kernel, hand-off)
// becomes one span of kind Internal, named as the record, with its exact
// start and end times (SessionInfo.Wall of the record's clock readings),
// the attributes KeyKind, KeyStage, KeyStageName, KeyLaneName,
// KeyRequestID and KeyIteration (the last four when they apply), and the
// record's own attributes under their own keys. A record with a string
// attribute "error" (an activation that ended with an error) gets the
// status Error with that message.
//
// Instant records become events on their parent span; counter records are
// skipped unless WithCounters asks for them as events too. The profiler's
// batches come from several shards, so an event may arrive after its span:
// the most recently exported spans stay open for it (WithEventWindow)
// before they are ended with their recorded end time. An event that
// arrives later than that is dropped and counted (Exporter.Stats); events
// outside any span go to the session span (WithSessionSpan) or are
// dropped.
//
// # Keeping the tree
//
// Records name their parent by id, and the profiler hands them over in
// batches roughly in end order, so a child usually arrives before its
// parent; the OpenTelemetry API, however, makes a child only from its
// parent's span context. A session therefore holds a record back until its
// parent has been exported, then exports it and, recursively, what waited
// for it. At Shutdown, records still waiting (their parent ended after the
// stop, or was never recorded) are exported as roots. The records held back
// are capped (WithMaxBuffered); what the session keeps of an exported span
// is 28 bytes (trace id, span id, flags), for at most the profiler's event
// cap of spans.
//
// # One trace per request
//
// A request's work on each stage is a root of its own in the profile (an
// operator slice per stage). The first of them exported becomes the parent
// of the rest, so each request is one trace across all its stages, as it
// is one chain of flow arrows in the Chrome trace (WithMaxRequestTraces
// bounds how many requests a session keeps this way).
//
// # Joining a caller's trace
//
// A server that receives a W3C traceparent header passes the extracted span
// context to Exporter.SetRequestParent under the request's id, and the
// request's root records become children of the caller's span: the profile
// shows up inside the client's trace.
package otel
