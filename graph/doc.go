// Package graph is omniflow's dataflow engine: operators with typed ports,
// composed into a DAG, checked before any data flows, and run with one
// goroutine per node over bounded channels.
//
// An operator declares its ports up front (its Contract); Build checks every
// edge (kinds, dtypes, ranks, symbolic dims unified across the graph),
// finds cycles and unconnected inputs, and reports every problem at once,
// naming nodes and ports:
//
//	g := graph.New("t2v")
//	prompt := g.Input("prompt", graph.Text())
//	enc := g.Add("encode", textEncoder, graph.Stage(0, "diffusion"))
//	loop := g.Add("denoise", denoiseLoop, graph.Stage(0, "diffusion"))
//	g.Connect(prompt, enc.In("text"))
//	g.Connect(enc.Out("embeddings"), loop.In("cond"))
//	g.Output("latents", loop.Out("latents"))
//	plan, err := g.Build(graph.WithProfiler(p))
//	res, err := plan.Run(ctx, graph.Feeds{"prompt": "a cat"})
//
// Plan.Run serves one request; Plan.Serve starts a Session that serves many
// at once, pipelined: each node takes requests in submission order, so
// different requests occupy different stages at the same time, and stream
// edges hand chunks (tokens, codec frames, audio) downstream as soon as they
// are produced. The first error of a request cancels the rest of it and is
// returned wrapped with the failing node's name; a panic in an operator
// becomes such an error; nothing outlives Run or Session.Close.
//
// The engine, not the operator, is instrumented: Hooks see every node
// activation and every hand-off. The profiler is one hook: each activation
// is an operator span on its stage's track (paused while the node blocks on
// a channel, so a stage records only while it executes), and each hand-off
// is a span on the receiving stage.
package graph
