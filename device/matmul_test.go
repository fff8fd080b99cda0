package device_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/device/devicetest"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/tensor"
)

func randT(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.Zeros(tensor.Float32, shape...)
	for i := range t.Float32s() {
		t.Float32s()[i] = float32(rng.NormFloat64())
	}
	return t
}

// refMatMulAbs is the float64 reference (broadcast the batch, then sum
// over k); it also returns Σ|a||b| per element, for the error bound.
func refMatMulAbs(a, b *tensor.Tensor, ta, tb bool) ([]int, []float64, []float64) {
	ab, bb := a.Shape()[:a.Rank()-2], b.Shape()[:b.Rank()-2]
	nb := max(len(ab), len(bb))
	batch := make([]int, nb)
	for i := range batch {
		da, db := 1, 1
		if j := len(ab) - nb + i; j >= 0 {
			da = ab[j]
		}
		if j := len(bb) - nb + i; j >= 0 {
			db = bb[j]
		}
		batch[i] = max(da, db)
	}
	m, k := a.Dim(-2), a.Dim(-1)
	if ta {
		m, k = k, m
	}
	n := b.Dim(-1)
	if tb {
		n = b.Dim(-2)
	}
	total := 1
	for _, d := range batch {
		total *= d
	}
	out := make([]float64, total*m*n)
	abs := make([]float64, total*m*n)
	idx := make([]int, nb)
	for bi := 0; bi < total; bi++ {
		rem := bi
		for d := nb - 1; d >= 0; d-- {
			idx[d] = rem % batch[d]
			rem /= batch[d]
		}
		sub := func(t *tensor.Tensor, bs []int, r, c int) float64 {
			full := make([]int, t.Rank())
			for d := range bs {
				x := idx[nb-len(bs)+d]
				if bs[d] == 1 {
					x = 0
				}
				full[d] = x
			}
			full[t.Rank()-2], full[t.Rank()-1] = r, c
			return t.At(full...)
		}
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for p := 0; p < k; p++ {
					var av, bv float64
					if ta {
						av = sub(a, ab, p, i)
					} else {
						av = sub(a, ab, i, p)
					}
					if tb {
						bv = sub(b, bb, j, p)
					} else {
						bv = sub(b, bb, p, j)
					}
					s += av * bv
					abs[(bi*m+i)*n+j] += math.Abs(av * bv)
				}
				out[(bi*m+i)*n+j] = s
			}
		}
	}
	return append(batch, m, n), out, abs
}

// closeTo checks got against the float64 reference with the forward error
// bound of a float32 dot product of length k: |err| <= k·u·Σ|a_i b_i|
// (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1),
// u = 2^-24, with a factor 2 for the rounding of the inputs' products.
func closeTo(t *testing.T, got *tensor.Tensor, shape []int, want, abs []float64, k int) {
	t.Helper()
	if !tensor.SameShape(got.Shape(), shape) {
		t.Fatalf("shape %v, want %v", got.Shape(), shape)
	}
	g := got.Float32s()
	u := math.Pow(2, -24)
	for i := range want {
		tol := 2*float64(k)*u*abs[i] + 1e-30
		if math.Abs(float64(g[i])-want[i]) > tol {
			t.Fatalf("element %d: %g, want %g (tol %g)", i, g[i], want[i], tol)
		}
	}
}

func TestMatMul(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, tc := range []struct {
			name   string
			a, b   []int
			ta, tb bool
		}{
			{"2d", []int{5, 7}, []int{7, 3}, false, false},
			{"rows x weight", []int{2, 3, 5, 7}, []int{7, 4}, false, false},
			{"transB", []int{4, 6}, []int{9, 6}, false, true},
			{"transA", []int{6, 4}, []int{6, 9}, true, false},
			{"batched", []int{3, 5, 7}, []int{3, 7, 2}, false, false},
			{"broadcast b", []int{2, 3, 5, 7}, []int{1, 3, 7, 2}, false, false},
			{"broadcast a", []int{3, 5, 7}, []int{2, 3, 7, 2}, false, false},
			{"irregular broadcast", []int{2, 1, 5, 7}, []int{1, 3, 7, 2}, false, true},
			{"attention scores", []int{2, 4, 9, 8}, []int{2, 4, 11, 8}, false, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.name == "irregular broadcast" {
					tc.b = []int{1, 3, 2, 7}
				}
				a, b := randT(rng, tc.a...), randT(rng, tc.b...)
				shape, want, abs := refMatMulAbs(a, b, tc.ta, tc.tb)
				da, db := devicetest.Put(t, dev, a), devicetest.Put(t, dev, b)
				out, err := device.MatMul(context.Background(), da, db, tc.ta, tc.tb)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := dev.(*device.CPU); !ok && out.OnHost() {
					t.Fatal("fallback result left on the host")
				}
				k := a.Dim(-1)
				if tc.ta {
					k = a.Dim(-2)
				}
				closeTo(t, devicetest.Get(t, dev, out), shape, want, abs, k)
			})
		}
		if sim, ok := dev.(*devicetest.Sim); ok && sim.MatMulCalls.Load() == 0 {
			t.Error("the backend's MatMul was never tried")
		}
	})
}

func TestMatMulErrors(t *testing.T) {
	ctx := context.Background()
	a, b := tensor.Zeros(tensor.Float32, 2, 3), tensor.Zeros(tensor.Float32, 4, 5)
	if _, err := device.MatMul(ctx, a, b, false, false); !errors.Is(err, device.ErrShape) {
		t.Fatalf("inner mismatch: %v", err)
	}
	if _, err := device.MatMul(ctx, tensor.Zeros(tensor.Float32, 3), b, false, false); !errors.Is(err, device.ErrShape) {
		t.Fatalf("rank 1: %v", err)
	}
	x := tensor.Zeros(tensor.Float32, 2, 3, 3)
	y := tensor.Zeros(tensor.Float32, 4, 3, 3)
	if _, err := device.MatMul(ctx, x, y, false, false); !errors.Is(err, device.ErrShape) {
		t.Fatalf("batch mismatch: %v", err)
	}
	ints := tensor.Zeros(tensor.Int32, 3, 3)
	if _, err := device.MatMul(ctx, ints, ints, false, false); !errors.Is(err, device.ErrDType) {
		t.Fatalf("int matmul: %v", err)
	}
}

func TestLinear(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		rng := rand.New(rand.NewPCG(3, 4))
		x, w, bias := randT(rng, 2, 3, 8), randT(rng, 5, 8), randT(rng, 5)
		out, err := device.Linear(context.Background(), devicetest.Put(t, dev, x), devicetest.Put(t, dev, w), devicetest.Put(t, dev, bias))
		if err != nil {
			t.Fatal(err)
		}
		wt, _ := w.Transpose(0, 1)
		shape, want, abs := refMatMulAbs(x, wt, false, false)
		for i := range want {
			want[i] += float64(bias.Float32s()[i%5])
			abs[i] += math.Abs(float64(bias.Float32s()[i%5]))
		}
		closeTo(t, devicetest.Get(t, dev, out), shape, want, abs, 9)
		if _, err := device.Linear(context.Background(), x, randT(rng, 5, 7), nil); !errors.Is(err, device.ErrShape) {
			t.Fatalf("bad weight: %v", err)
		}
	})
}

func TestMatMulBFloat16Inputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a, b := randT(rng, 4, 6), randT(rng, 6, 3)
	ab, _ := a.ConvertTo(tensor.BFloat16)
	bb, _ := b.ConvertTo(tensor.BFloat16)
	a2, _ := ab.ConvertTo(tensor.Float32) // the values bf16 can hold
	b2, _ := bb.ConvertTo(tensor.Float32)
	out, err := device.MatMul(context.Background(), ab, bb, false, false)
	if err != nil {
		t.Fatal(err)
	}
	shape, want, abs := refMatMulAbs(a2, b2, false, false)
	closeTo(t, out, shape, want, abs, 6)
}

func TestKernelSpan(t *testing.T) {
	cpu := device.NewCPU(device.WithThreads(1))
	var out *tensor.Tensor
	recs := record(t, cpu, func(ctx context.Context) {
		a, b := tensor.Zeros(tensor.Float32, 64, 32), tensor.Zeros(tensor.Float32, 32, 16)
		var err error
		if out, err = device.MatMul(ctx, a, b, false, false); err != nil {
			t.Fatal(err)
		}
	})
	var k *profiler.Record
	counters := 0
	for i := range recs {
		if recs[i].Kind == profiler.KindKernel {
			k = &recs[i]
		}
		if recs[i].Kind == profiler.KindCounter && recs[i].Name == "memory.cpu" {
			counters++
			if recs[i].Value != float64(out.SizeBytes()) {
				t.Errorf("memory counter %v, want %d", recs[i].Value, out.SizeBytes())
			}
		}
	}
	if k == nil || k.Name != "matmul" {
		t.Fatalf("no matmul kernel span in %v", recs)
	}
	want := map[string]string{"device": "cpu", "dtype": "float32", "flops": "65536", "bytes": "14336", "shape.in0": "[64,32]", "shape.in1": "[32,16]"}
	for key, v := range want {
		a, ok := k.Attr(key)
		if !ok || string(a.AppendJSON(nil)) != v && a.AsString() != v {
			t.Errorf("attr %s = %v, want %s", key, a, v)
		}
	}
	if counters != 1 {
		t.Errorf("%d memory counter samples, want 1", counters)
	}
	out.Release()
	if cpu.InUse() != 0 {
		t.Errorf("cpu memory in use after release: %d", cpu.InUse())
	}
}
