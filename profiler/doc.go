// Package profiler is omniflow's built-in profiler: spans, iteration
// windows, stage selection, and profiling sessions that write a folder with
// a trace, a manifest and a summary.
//
// It is cheap when off (a span site is one atomic load and no allocation),
// bounded when on (records go into fixed-size batches handed to an exporter
// goroutine; when the queue is full or the event cap is reached they are
// dropped and counted, never waited for), and it never blocks the data path:
// Stop and the automatic stop after MaxIters only flip a flag there.
//
// Spans nest through the context:
//
//	ctx, span := profiler.Start(ctx, "vae.decode", profiler.Int("frames", 16))
//	defer span.End()
//
// Four levels of work give four kinds of span: operator (a graph node's
// activation, emitted by the engine through Profiler.Enter), iteration (one
// loop step, Step), module (a layer or user region, Start) and kernel (one
// kernel, emitted by device dispatch through StartKind). Handoff spans mark
// the time a value spends between stages.
//
// A session is started and stopped from any goroutine:
//
//	p, err := profiler.New(profiler.WithDir("profiles"), profiler.WithSink(chrome.New()))
//	err = p.Start(ctx, profiler.Stages(0, 2))
//	res, err := p.Stop(ctx) // returns when every file is complete
//
// or from the environment, as vLLM users know it: FromEnv reads
// OMNIFLOW_PROFILER_DIR (alias VLLM_TORCH_PROFILER_DIR),
// OMNIFLOW_PROFILER_MAX_ITERS (VLLM_PROFILER_MAX_ITERS),
// OMNIFLOW_PROFILER_DELAY_ITERS (VLLM_PROFILER_DELAY_ITERS),
// OMNIFLOW_PROFILER_RECORD_SHAPES and OMNIFLOW_PROFILER_MAX_EVENTS.
//
// Iteration windows count Step calls per stage: the first DelayIters are
// skipped, the next MaxIters are recorded, and once every selected stage has
// recorded its window the session stops and writes by itself (with all
// stages selected, "every stage" means every stage that has stepped or that
// a running engine declared a loop on with ExpectIterations, as graph plans
// do for nodes whose contract sets Loop). Spans outside iterations are
// recorded while their stage is inside its window, so work before the first
// step (a text encoder) is kept when DelayIters is zero; a stage without a
// loop records from the moment the session's first window opens. An
// operator slice still open at the stop is written truncated at the stop
// time, with the attribute truncated=true.
//
// Sinks (sinks/chrome, sinks/otel, sinks/memory) implement Sink; the
// profiler opens one per session through a SinkFactory. When Go's execution
// tracer is on, activations appear as runtime/trace tasks and spans as
// regions, whether or not a session is recording.
package profiler
