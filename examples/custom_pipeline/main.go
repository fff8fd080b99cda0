// Command custom_pipeline composes a three-stage pipeline in Go code, runs a
// few requests through it, and writes one PNG per request.
//
//	stage 0 "encode":  text -> a 256-dim feature vector (hashed character n-grams)
//	stage 1 "iterate": N rounds of v = normalize(tanh(M v + u)); each round is
//	                   one profiler iteration and is streamed on at once
//	stage 2 "render":  turns each streamed vector into a row of an image
//
// With OMNIFLOW_PROFILER_DIR (or VLLM_TORCH_PROFILER_DIR) set it profiles
// itself and prints the session folder; VLLM_PROFILER_MAX_ITERS=N records N
// iterations per stage and stops by itself.
//
//	go run ./examples/custom_pipeline --prompt "a red fox" --requests 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/omniflow-go/omniflow/graph"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
)

const dim = 256

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return // -h printed the usage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "custom_pipeline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("custom_pipeline", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: custom_pipeline [flags]

Runs a three-stage pipeline composed in Go code (encode -> iterate -> render)
on a few concurrent requests and writes one PNG per request. With
OMNIFLOW_PROFILER_DIR or VLLM_TORCH_PROFILER_DIR set it profiles itself and
prints the session folder; VLLM_PROFILER_MAX_ITERS=N records N iterations.

Flags:
`)
		fs.PrintDefaults()
	}
	prompt := fs.String("prompt", "a lighthouse at dusk", "text to encode")
	requests := fs.Int("requests", 3, "number of requests served concurrently")
	iters := fs.Int("iters", 64, "rounds of stage 1 (rows of each image)")
	out := fs.String("output_dir", "out/custom_pipeline", "where the images go")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *requests < 1 || *iters < 1 {
		return errors.New("--requests and --iters must be at least 1")
	}

	// Profile when the environment asks for it (OMNIFLOW_PROFILER_DIR or
	// VLLM_TORCH_PROFILER_DIR); the Chrome sink writes trace.json.gz.
	prof, err := profiler.FromEnv(profiler.WithSink(chrome.New()), profiler.WithName("custom_pipeline"))
	if err != nil {
		return err
	}

	g := graph.New("custom_pipeline")
	text := g.Input("prompt", graph.Text())
	rounds := g.Input("iters", graph.Any())
	enc := g.Add("encode", encoder{}, graph.Stage(0, "encode"))
	it := g.Add("iterate", newIterator(7), graph.Stage(1, "iterate"))
	ren := g.Add("render", renderer{}, graph.Stage(2, "render"))
	for _, e := range [][2]graph.PortRef{
		{text, enc.In("text")},
		{enc.Out("features"), it.In("features")},
		{rounds, it.In("rounds")},
		{it.Out("states"), ren.In("states")},
	} {
		if err := g.Connect(e[0], e[1]); err != nil {
			return err
		}
	}
	if err := g.Output("image", ren.Out("image")); err != nil {
		return err
	}
	plan, err := g.Build(graph.WithProfiler(prof))
	if err != nil {
		return err
	}

	if prof.Enabled() {
		if err := prof.Start(ctx, profiler.Meta("prompt", *prompt)); err != nil {
			return err
		}
	}
	sess, err := plan.Serve(ctx)
	if err != nil {
		return err
	}
	reqs := make([]*graph.Request, *requests)
	for i := range reqs {
		p := fmt.Sprintf("%s #%d", *prompt, i)
		reqs[i], err = sess.Submit(ctx, graph.Feeds{"prompt": p, "iters": *iters}, graph.RequestID(fmt.Sprintf("req-%d", i)))
		if err != nil {
			sess.Close(ctx)
			return err
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var errs []error
	for i, r := range reqs {
		res, err := r.Wait(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(*out, fmt.Sprintf("request-%d.png", i))
		if err := writePNG(path, res["image"].(*image.Gray)); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(stdout, "wrote", path)
	}
	errs = append(errs, sess.Close(ctx))
	if prof.Enabled() {
		res, err := prof.Stop(ctx)
		if err != nil && !errors.Is(err, profiler.ErrNotStarted) {
			errs = append(errs, err)
		} else if err == nil {
			fmt.Fprintf(stdout, "profile: %s (%d events, %d dropped)\n", res.Dir, res.Events, res.Dropped)
		}
	}
	return errors.Join(errs...)
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// encoder hashes character 1-, 2- and 3-grams into a feature vector.
type encoder struct{}

func (encoder) Contract() graph.Contract {
	return graph.Contract{Name: "ngram_encoder",
		Inputs:  []graph.Port{graph.In("text", graph.Text())},
		Outputs: []graph.Port{graph.Out("features", graph.Any())}}
}

func (encoder) Run(ctx context.Context, io *graph.IO) error {
	v, err := graph.Get[string](io, "text")
	if err != nil {
		return err
	}
	f := make([]float64, dim)
	r := []rune(v)
	for n := 1; n <= 3; n++ {
		for i := 0; i+n <= len(r); i++ {
			h := fnv.New64a()
			h.Write([]byte(string(r[i : i+n])))
			x := h.Sum64()
			sign := 1.0
			if x&1 == 1 {
				sign = -1
			}
			f[(x>>1)%dim] += sign / float64(n)
		}
	}
	return io.Put("features", f)
}

// iterator runs v <- normalize(tanh(M v + u)) and streams every state.
type iterator struct{ m [][]float64 }

func newIterator(seed uint64) *iterator {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := make([][]float64, dim)
	for i := range m {
		m[i] = make([]float64, dim)
		for j := range m[i] {
			m[i][j] = rng.NormFloat64() / math.Sqrt(dim) * 1.5
		}
	}
	return &iterator{m: m}
}

func (*iterator) Contract() graph.Contract {
	return graph.Contract{Name: "iterate", Loop: true,
		Inputs:  []graph.Port{graph.In("features", graph.Any()), graph.In("rounds", graph.Any())},
		Outputs: []graph.Port{graph.StreamOut("states", graph.Any())}}
}

func (it *iterator) Run(ctx context.Context, io *graph.IO) error {
	u, err := graph.Get[[]float64](io, "features")
	if err != nil {
		return err
	}
	rounds, err := graph.Get[int](io, "rounds")
	if err != nil {
		return err
	}
	v := append([]float64(nil), u...)
	for k := 0; k < rounds; k++ {
		sctx, step := profiler.Step(ctx, "round", profiler.Int("round", k))
		_, mv := profiler.Start(sctx, "matvec", profiler.Int("flops", 2*dim*dim))
		next := make([]float64, dim)
		for i, row := range it.m {
			s := u[i]
			for j, x := range row {
				s += x * v[j]
			}
			next[i] = math.Tanh(s)
		}
		mv.End()
		var norm float64
		for _, x := range next {
			norm += x * x
		}
		norm = math.Sqrt(norm) + 1e-12
		for i := range next {
			next[i] /= norm
		}
		v = next
		step.End()
		if err := io.Send("states", next); err != nil {
			return err
		}
	}
	return nil
}

// renderer turns each state into a row of a grayscale image.
type renderer struct{}

func (renderer) Contract() graph.Contract {
	return graph.Contract{Name: "render",
		Inputs:  []graph.Port{graph.StreamIn("states", graph.Any())},
		Outputs: []graph.Port{graph.Out("image", graph.Image())}}
}

func (renderer) Run(ctx context.Context, io *graph.IO) error {
	var rows [][]float64
	for {
		s, err := graph.Recv[[]float64](io, "states")
		if errors.Is(err, graph.EOF) {
			break
		}
		if err != nil {
			return err
		}
		rows = append(rows, s)
	}
	img := image.NewGray(image.Rect(0, 0, dim, len(rows)))
	for y, row := range rows {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range row {
			lo, hi = min(lo, x), max(hi, x)
		}
		for x, val := range row {
			img.SetGray(x, y, color.Gray{Y: uint8(255 * (val - lo) / (hi - lo + 1e-12))})
		}
	}
	return io.Put("image", img)
}
