// Command gemmtable measures omniflow's fp32 GEMM against gonum (and
// OpenBLAS when built with -tags openblas) side by side in one process and
// prints a markdown table of GFLOP/s and ratios:
//
//	go run -tags openblas ./bench/cmd/gemmtable -n 256,512,1024,2048 -threads 1,2
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/omniflow-go/omniflow/bench"
)

func main() {
	sizes := flag.String("n", "256,512,1024,2048", "comma-separated matrix sizes")
	threads := flag.String("threads", "1,2", "comma-separated thread counts")
	rounds := flag.Int("rounds", 5, "rounds over every configuration; the best counts")
	minTime := flag.Duration("mintime", 300*time.Millisecond, "least time per measurement")
	pause := flag.Duration("pause", 200*time.Millisecond, "idle time after each measurement")
	flag.Parse()
	cfg := bench.GEMMTableConfig{Rounds: *rounds, MinTime: *minTime, Pause: *pause}
	var err error
	if cfg.Sizes, err = ints(*sizes); err == nil {
		cfg.Threads, err = ints(*threads)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gemmtable:", err)
		os.Exit(2)
	}
	gemms := bench.GEMMs()
	bench.WriteGEMMTable(os.Stdout, gemms, bench.GEMMTable(gemms, cfg))
}

func ints(s string) ([]int, error) {
	var xs []int
	for _, f := range strings.Split(s, ",") {
		x, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || x <= 0 {
			return nil, fmt.Errorf("bad list %q: want positive integers", s)
		}
		xs = append(xs, x)
	}
	return xs, nil
}
