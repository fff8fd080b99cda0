package safetensors_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// BenchmarkOpen measures Open and Close of a file with many small tensors,
// named like a transformer's: header parsing and validation dominate.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("tensors=%d", n), func(b *testing.B) {
			in := map[string]*tensor.Tensor{}
			for i := range n {
				in[fmt.Sprintf("model.layers.%d.self_attn.q_proj.weight", i)] = filled(b, tensor.BFloat16, byte(i), 8, 8)
			}
			path := filepath.Join(b.TempDir(), "m.safetensors")
			if err := safetensors.WriteFile(path, in, map[string]string{"format": "pt"}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				f, err := safetensors.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/tensor")
		})
	}
}

// BenchmarkTensor measures reading one large tensor from a mapped file:
// TensorCopy (a copy, reported in GB/s; the page cache is warm after the
// first iteration) and Tensor (a zero-copy view).
func BenchmarkTensor(b *testing.B) {
	const mib = 1 << 20
	for _, size := range []int{1 * mib, 64 * mib} {
		path := filepath.Join(b.TempDir(), "m.safetensors")
		x := filled(b, tensor.Float32, 0, size/4)
		if err := safetensors.WriteFile(path, map[string]*tensor.Tensor{"w": x}, nil); err != nil {
			b.Fatal(err)
		}
		f, err := safetensors.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("copy/%dMiB", size/mib), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				c, err := f.TensorCopy("w")
				if err != nil {
					b.Fatal(err)
				}
				c.Release()
			}
			b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
		b.Run(fmt.Sprintf("view/%dMiB", size/mib), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Tensor("w"); err != nil {
					b.Fatal(err)
				}
			}
		})
		f.Close()
	}
}
