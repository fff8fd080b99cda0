package bench

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// TestGEMMsAgree checks that every implementation computes the same
// product (float64 reference; tolerance γ_{n+1}·Σ|a||b| as in
// device/cpu's tests, from Higham §3.1), so the benchmarks compare like
// with like.
func TestGEMMsAgree(t *testing.T) {
	const n = 67
	a, b, _ := GEMMOperands(n)
	for _, g := range GEMMs() {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/t%d", g.Name, threads), func(t *testing.T) {
				c := make([]float32, n*n)
				mul, stop := g.Start(threads)
				mul(n, a, b, c)
				stop()
				const u = 1.0 / (1 << 24)
				for i := range n {
					for j := range n {
						var dot, abs float64
						for p := range n {
							x := float64(a[i*n+p]) * float64(b[p*n+j])
							dot += x
							abs += math.Abs(x)
						}
						if tol := float64(n+1) * u * abs * 1.01; math.Abs(float64(c[i*n+j])-dot) > tol {
							t.Fatalf("C[%d][%d] = %g, want %g ± %g", i, j, c[i*n+j], dot, tol)
						}
					}
				}
			})
		}
	}
}

func TestGEMMTable(t *testing.T) {
	gemms := GEMMs()
	res := GEMMTable(gemms, GEMMTableConfig{Sizes: []int{32}, Threads: []int{1, 2}, Rounds: 2, MinTime: time.Millisecond})
	if len(res) != 2*len(gemms) {
		t.Fatalf("%d results, want %d", len(res), 2*len(gemms))
	}
	var buf bytes.Buffer
	WriteGEMMTable(&buf, gemms, res)
	out := buf.String()
	for _, want := range []string{"| n | threads | omniflow | gonum", "| 32 | 1 |", "| 32 | 2 |", "omniflow/gonum"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// BenchmarkGEMM runs every implementation on the same operands:
// BenchmarkGEMM/{omniflow,gonum,openblas}/t{1,2}/n{256,...,2048}.
func BenchmarkGEMM(b *testing.B) {
	for _, g := range GEMMs() {
		for _, threads := range []int{1, 2} {
			for _, n := range []int{256, 512, 1024, 2048} {
				b.Run(fmt.Sprintf("%s/t%d/n%d", g.Name, threads, n), func(b *testing.B) {
					x, y, z := GEMMOperands(n)
					mul, stop := g.Start(threads)
					defer stop()
					mul(n, x, y, z)
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						mul(n, x, y, z)
					}
					b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
