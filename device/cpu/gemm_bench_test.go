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
