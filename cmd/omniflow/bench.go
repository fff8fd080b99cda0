package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/tensor"
)

const benchUsageText = `Usage: omniflow bench [flags] [KERNEL...]

Times device kernels on seeded inputs and prints calls, time per call,
GFLOP/s and GB/s, one row per kernel, size and thread count. With no
KERNEL, all of them run. With OMNIFLOW_PROFILER_DIR (or
VLLM_TORCH_PROFILER_DIR) set, the run is also profiled into that folder:
every call is a kernel span, and summary.txt has the same rates.

Kernels: %s

Flags:
  --size S      small, medium or large (default medium)
  --threads L   comma-separated goroutine counts (default: 1 and GOMAXPROCS)
  --time D      minimum time per row (default 1s)
  --json        print the rows as JSON

Examples:
  omniflow bench matmul --size large --threads 1,2
  OMNIFLOW_PROFILER_DIR=./profiles omniflow bench attention_prefill attention_decode
`

// benchCase builds a kernel call on seeded inputs for a size.
type benchCase struct {
	name  string
	setup func(size string) (label string, flops, bytes float64, run func(ctx context.Context) error)
}

func randTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.Zeros(tensor.Float32, shape...)
	for i := range t.Float32s() {
		t.Float32s()[i] = float32(rng.NormFloat64())
	}
	return t
}

// pick returns the value for small, medium or large.
func pick(size string, s, m, l int) int {
	switch size {
	case "small":
		return s
	case "large":
		return l
	}
	return m
}

func benchCases() []benchCase {
	rng := rand.New(rand.NewPCG(1, 2))
	release := func(t *tensor.Tensor, err error) error {
		if t != nil {
			t.Release()
		}
		return err
	}
	return []benchCase{
		{"matmul", func(size string) (string, float64, float64, func(context.Context) error) {
			n := pick(size, 256, 1024, 2048)
			a, b := randTensor(rng, n, n), randTensor(rng, n, n)
			return fmt.Sprintf("%d×%d×%d", n, n, n), 2 * float64(n) * float64(n) * float64(n), 12 * float64(n*n),
				func(ctx context.Context) error { return release(device.MatMul(ctx, a, b, false, false)) }
		}},
		{"linear", func(size string) (string, float64, float64, func(context.Context) error) {
			rows, in, out := pick(size, 32, 128, 512), pick(size, 512, 2048, 3584), pick(size, 512, 2048, 3584)
			x, w := randTensor(rng, rows, in), randTensor(rng, out, in)
			return fmt.Sprintf("[%d,%d]·[%d,%d]ᵀ", rows, in, out, in), 2 * float64(rows*in*out), 4 * float64(rows*in+in*out+rows*out),
				func(ctx context.Context) error { return release(device.Linear(ctx, x, w, nil)) }
		}},
		{"attention_prefill", func(size string) (string, float64, float64, func(context.Context) error) {
			t, hq, hk, d := pick(size, 128, 512, 1024), 8, 2, 64
			q, k, v := randTensor(rng, 1, t, hq, d), randTensor(rng, 1, t, hk, d), randTensor(rng, 1, t, hk, d)
			return fmt.Sprintf("T=%d Hq=%d Hkv=%d D=%d causal", t, hq, hk, d), 4 * float64(hq*d) * float64(t*(t+1)/2), 4 * float64(2*t*hq*d+2*t*hk*d),
				func(ctx context.Context) error {
					return release(device.Attention(ctx, q, k, v, device.AttentionOptions{Causal: true}))
				}
		}},
		{"attention_decode", func(size string) (string, float64, float64, func(context.Context) error) {
			t, hq, hk, d := pick(size, 256, 2048, 8192), 8, 2, 64
			q, k, v := randTensor(rng, 1, 1, hq, d), randTensor(rng, 1, t, hk, d), randTensor(rng, 1, t, hk, d)
			return fmt.Sprintf("1 query over %d keys", t), 4 * float64(hq*d*t), 4 * float64(2*t*hk*d),
				func(ctx context.Context) error {
					return release(device.Attention(ctx, q, k, v, device.AttentionOptions{Causal: true, Past: t - 1}))
				}
		}},
		{"conv2d", func(size string) (string, float64, float64, func(context.Context) error) {
			c, hw := pick(size, 32, 64, 128), pick(size, 32, 64, 128)
			x, w := randTensor(rng, 1, c, hw, hw), randTensor(rng, c, c, 3, 3)
			return fmt.Sprintf("%d→%d ch, %d², 3×3", c, c, hw), 2 * float64(c*c*9*hw*hw), 4 * float64(2*c*hw*hw+c*c*9),
				func(ctx context.Context) error {
					return release(device.Conv(ctx, x, w, nil, device.ConvOptions{Padding: []int{1}}))
				}
		}},
		{"conv3d_causal", func(size string) (string, float64, float64, func(context.Context) error) {
			c, t, hw := pick(size, 16, 32, 64), 4, pick(size, 16, 32, 64)
			x, w := randTensor(rng, 1, c, t, hw, hw), randTensor(rng, c, c, 3, 3, 3)
			return fmt.Sprintf("%d ch, %d×%d², 3³", c, t, hw), 2 * float64(c*c*27*t*hw*hw), 4 * float64(2*c*t*hw*hw+c*c*27),
				func(ctx context.Context) error {
					return release(device.Conv(ctx, x, w, nil, device.ConvOptions{Padding: []int{1}, Causal: true}))
				}
		}},
		{"softmax", func(size string) (string, float64, float64, func(context.Context) error) {
			r, c := pick(size, 64, 512, 2048), pick(size, 1024, 4096, 8192)
			x := randTensor(rng, r, c)
			return fmt.Sprintf("[%d,%d]", r, c), 5 * float64(r*c), 8 * float64(r*c),
				func(ctx context.Context) error { return release(device.Softmax(ctx, x)) }
		}},
		{"rms_norm", func(size string) (string, float64, float64, func(context.Context) error) {
			r, c := pick(size, 64, 512, 2048), pick(size, 1024, 2048, 4096)
			x, w := randTensor(rng, r, c), randTensor(rng, c)
			return fmt.Sprintf("[%d,%d]", r, c), 4 * float64(r*c), 8 * float64(r*c),
				func(ctx context.Context) error { return release(device.RMSNorm(ctx, x, w, 1e-6)) }
		}},
		{"gelu", func(size string) (string, float64, float64, func(context.Context) error) {
			n := pick(size, 1<<16, 1<<20, 1<<23)
			x := randTensor(rng, n)
			return fmt.Sprintf("%d elements", n), 8 * float64(n), 8 * float64(n),
				func(ctx context.Context) error { return release(device.GELU(ctx, x)) }
		}},
	}
}

type benchRow struct {
	Kernel  string  `json:"kernel"`
	Shape   string  `json:"shape"`
	Threads int     `json:"threads"`
	Calls   int     `json:"calls"`
	MsCall  float64 `json:"ms_per_call"`
	GFLOPS  float64 `json:"gflops"`
	GBPS    float64 `json:"gbps"`
}

func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cases := benchCases()
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	usage := fmt.Sprintf(benchUsageText, strings.Join(names, ", "))
	fs := flag.NewFlagSet("omniflow bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	size := fs.String("size", "medium", "")
	threadsFlag := fs.String("threads", "", "")
	minTime := fs.Duration("time", time.Second, "")
	asJSON := fs.Bool("json", false, "")
	usageErr := usageFailer("bench", usage, stderr)
	if code, done := parseFlags(fs, args, usage, stdout, usageErr); done {
		return code
	}
	if *size != "small" && *size != "medium" && *size != "large" {
		return usageErr("--size %q: want small, medium or large", *size)
	}
	if *minTime <= 0 {
		return usageErr("--time %v: want a positive duration", *minTime)
	}
	threads := []int{1, device.DefaultCPU().Threads()}
	if *threadsFlag != "" {
		threads = nil
		for _, s := range strings.Split(*threadsFlag, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				return usageErr("--threads %q: want positive integers separated by commas", *threadsFlag)
			}
			threads = append(threads, n)
		}
	}
	threads = slices.Compact(threads)
	selected := cases
	if fs.NArg() > 0 {
		selected = nil
		for _, want := range fs.Args() {
			i := slices.Index(names, want)
			if i < 0 {
				return usageErr("unknown kernel %q", want)
			}
			selected = append(selected, cases[i])
		}
	}

	prof, err := profiler.FromEnv(profiler.WithSink(chrome.New()), profiler.WithName("bench"))
	if err != nil {
		fmt.Fprintf(stderr, "omniflow bench: %v\n", err)
		return 2
	}
	if prof.Enabled() {
		if err := prof.Start(ctx, profiler.Meta("size", *size)); err != nil {
			fmt.Fprintf(stderr, "omniflow bench: %v\n", err)
			return 1
		}
	}
	var rows []benchRow
	var runErr error
	for _, c := range selected {
		label, flops, bytes, run := c.setup(*size)
		for _, th := range threads {
			cpu := device.NewCPU(device.WithThreads(th))
			kctx, act := prof.Enter(device.WithDevice(ctx, cpu), profiler.Track{Stage: 0, StageName: "bench",
				Lane: th, LaneName: fmt.Sprintf("%d threads", th)}, c.name)
			row, err := timeKernel(kctx, run, *minTime)
			act.End(err)
			if err != nil {
				runErr = fmt.Errorf("%s: %w", c.name, err)
				break
			}
			row.Kernel, row.Shape, row.Threads = c.name, label, th
			row.GFLOPS = flops / (row.MsCall * 1e6)
			row.GBPS = bytes / (row.MsCall * 1e6)
			rows = append(rows, row)
		}
		if runErr != nil || ctx.Err() != nil {
			break
		}
	}
	if prof.Enabled() {
		res, err := prof.Stop(ctx)
		switch {
		case err == nil:
			fmt.Fprintf(stderr, "profile: %s\n", res.Dir)
		case !errors.Is(err, profiler.ErrNotStarted):
			fmt.Fprintf(stderr, "omniflow bench: profile: %v\n", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "kernel\tshape\tthreads\tcalls\tms/call\tGFLOP/s\tGB/s\t")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%.1f\t%.1f\t\n", r.Kernel, r.Shape, r.Threads, r.Calls, r.MsCall, r.GFLOPS, r.GBPS)
		}
		tw.Flush()
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "omniflow bench: %v\n", runErr)
		return 1
	}
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

// timeKernel runs once to warm up, then until minTime has passed.
func timeKernel(ctx context.Context, run func(context.Context) error, minTime time.Duration) (benchRow, error) {
	if err := run(ctx); err != nil {
		return benchRow{}, err
	}
	start := time.Now()
	n := 0
	for time.Since(start) < minTime && ctx.Err() == nil {
		if err := run(ctx); err != nil {
			return benchRow{}, err
		}
		n++
	}
	if n == 0 {
		return benchRow{}, ctx.Err()
	}
	el := time.Since(start)
	return benchRow{Calls: n, MsCall: float64(el) / float64(n) / 1e6}, nil
}
