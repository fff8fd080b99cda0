package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/omniflow-go/omniflow/device/cpu"
)

// GEMMTableConfig says what GEMMTable measures.
type GEMMTableConfig struct {
	Sizes   []int         // n of the n×n×n products
	Threads []int         // thread counts
	Rounds  int           // rounds over every (n, threads, GEMM); the best round counts
	MinTime time.Duration // least time one measurement runs products for
	// Pause is the idle time after each measurement: OpenBLAS's workers
	// spin for a while after a call and would steal the next GEMM's CPU.
	Pause time.Duration
}

// GEMMResult is the best throughput of one GEMM at one size and thread
// count, and the median over the rounds.
type GEMMResult struct {
	N, Threads   int
	Name         string
	Best, Median float64 // GFLOP/s
}

// MeasureGEMM runs mul on n×n operands (seeded) once to warm up, then
// repeatedly for at least minTime, and returns GFLOP/s.
func MeasureGEMM(mul func(n int, a, b, c []float32), n int, a, b, c []float32, minTime time.Duration) float64 {
	mul(n, a, b, c)
	reps := 0
	start := time.Now()
	for {
		mul(n, a, b, c)
		reps++
		if el := time.Since(start); el >= minTime {
			return 2 * float64(n) * float64(n) * float64(n) * float64(reps) / el.Seconds() / 1e9
		}
	}
}

// GEMMOperands returns seeded n×n operands A, B and a C to overwrite.
func GEMMOperands(n int) (a, b, c []float32) {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	mk := func() []float32 {
		x := make([]float32, n*n)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		return x
	}
	return mk(), mk(), make([]float32, n*n)
}

// GEMMTable measures every GEMM on every size and thread count. Within a
// round the GEMMs run one after the other on the same operands, so each
// comparison sees the same machine state; across rounds, the best is
// kept, which filters out the other processes of a shared machine.
func GEMMTable(gemms []GEMM, cfg GEMMTableConfig) []GEMMResult {
	type key struct {
		n, t int
		name string
	}
	runs := map[key][]float64{}
	for range max(cfg.Rounds, 1) {
		for _, n := range cfg.Sizes {
			a, b, c := GEMMOperands(n)
			for _, t := range cfg.Threads {
				for _, g := range gemms {
					mul, stop := g.Start(t)
					gf := MeasureGEMM(mul, n, a, b, c, cfg.MinTime)
					stop()
					k := key{n, t, g.Name}
					runs[k] = append(runs[k], gf)
					time.Sleep(cfg.Pause)
				}
			}
		}
	}
	var res []GEMMResult
	for _, n := range cfg.Sizes {
		for _, t := range cfg.Threads {
			for _, g := range gemms {
				r := runs[key{n, t, g.Name}]
				slices.Sort(r)
				res = append(res, GEMMResult{N: n, Threads: t, Name: g.Name, Best: r[len(r)-1], Median: r[len(r)/2]})
			}
		}
	}
	return res
}

// WriteGEMMTable writes results as a markdown table: one row per (n,
// threads), best GFLOP/s (median in parentheses) per GEMM, and the ratio
// of omniflow's best to each other GEMM's best.
func WriteGEMMTable(w io.Writer, gemms []GEMM, res []GEMMResult) {
	fmt.Fprintf(w, "GOOS=%s GOARCH=%s GOMAXPROCS=%d, omniflow kernel: %s", runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), cpu.SgemmKernel())
	if cfg := OpenBLASConfig(); cfg != "" {
		fmt.Fprintf(w, ", OpenBLAS: %s", strings.TrimSpace(cfg))
	}
	fmt.Fprintf(w, "\n\nGFLOP/s, best of the rounds (median in parentheses); ratio = omniflow best / other best.\n\n")
	hdr := []string{"n", "threads"}
	for _, g := range gemms {
		hdr = append(hdr, g.Name)
	}
	for _, g := range gemms[1:] {
		hdr = append(hdr, gemms[0].Name+"/"+g.Name)
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(hdr, " | "), strings.Repeat("---:|", len(hdr)))
	for i := 0; i+len(gemms) <= len(res); i += len(gemms) {
		row := res[i : i+len(gemms)]
		cells := []string{fmt.Sprint(row[0].N), fmt.Sprint(row[0].Threads)}
		for _, r := range row {
			cells = append(cells, fmt.Sprintf("%.1f (%.1f)", r.Best, r.Median))
		}
		for _, r := range row[1:] {
			cells = append(cells, fmt.Sprintf("%.2f×", row[0].Best/r.Best))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}
