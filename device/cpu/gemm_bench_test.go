package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func benchGemmOperands(n int) (a, b, c []float32) {
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func() []float32 {
		x := make([]float32, n*n)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		return x
	}
	return mk(), mk(), mk()
}

func benchGemm(b *testing.B, kern *gemmKernel, threads, n int) {
	x, y, z := benchGemmOperands(n)
	sgemm(kern, threads, false, false, n, n, n, 1, x, n, y, n, 0, z, n) // warm the buffer pool
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sgemm(kern, threads, false, false, n, n, n, 1, x, n, y, n, 0, z, n)
	}
	b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemm measures square C = A·B with the kernel Sgemm picks, on
// one and two threads.
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{256, 512, 1024, 2048} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("cpu/f32/%d/t%d", n, threads), func(b *testing.B) { benchGemm(b, gemmKern, threads, n) })
		}
	}
}

// BenchmarkSgemmKernel compares the micro-kernels on one thread.
func BenchmarkSgemmKernel(b *testing.B) {
	for _, kern := range gemmKernels() {
		for _, n := range []int{256, 1024} {
			b.Run(fmt.Sprintf("%s/%d", kern.name, n), func(b *testing.B) { benchGemm(b, kern, 1, n) })
		}
	}
}

// BenchmarkSgemmTrans measures the transposed layouts on one thread (the
// packing differs: A as is and Bᵀ are transposed while packed).
func BenchmarkSgemmTrans(b *testing.B) {
	const n = 1024
	x, y, z := benchGemmOperands(n)
	for _, tr := range []string{"NN", "NT", "TN", "TT"} {
		ta, tb := tr[0] == 'T', tr[1] == 'T'
		b.Run(fmt.Sprintf("cpu/f32/%s/%d", tr, n), func(b *testing.B) {
			Sgemm(1, ta, tb, n, n, n, 1, x, n, y, n, 0, z, n)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				Sgemm(1, ta, tb, n, n, n, 1, x, n, y, n, 0, z, n)
			}
			b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmSmallM measures matrix-vector-like products (a decode
// step's x·Wᵀ and x·W) on one thread, in GB/s of W read.
func BenchmarkSgemmSmallM(b *testing.B) {
	const n, k = 4096, 4096
	w, _, _ := benchGemmOperands(n)
	for _, m := range []int{1, 8} {
		for _, transB := range []bool{false, true} {
			b.Run(fmt.Sprintf("cpu/f32/m%d/transB=%v", m, transB), func(b *testing.B) {
				x := w[:m*k]
				y := make([]float32, m*n)
				b.ReportAllocs()
				for b.Loop() {
					Sgemm(1, false, transB, m, n, k, 1, x, k, w, n, 0, y, n)
				}
				b.ReportMetric(float64(n*k*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}
