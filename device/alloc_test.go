package device_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/device/devicetest"
	"github.com/omniflow-go/omniflow/tensor"
)

// checkedCPU returns a CPU device whose every buffer (results, operand
// copies, conversions, the Sim's host scratch) comes from a checked
// allocator; the test fails at its end unless all of them were freed.
func checkedCPU(t *testing.T) *device.CPU {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return device.NewCPU(device.WithThreads(2), device.WithAllocator(mem))
}

// TestBuffersReleased runs every dispatch case on every device with
// float32, bfloat16 and strided operands, under a checked allocator: once
// the results are released, no buffer may be left, on the host or the Sim.
func TestBuffersReleased(t *testing.T) {
	for _, dev := range devicetest.Devices() {
		t.Run(dev.Name(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(31, 32))
			for _, tc := range dispatchCases(rng) {
				for _, kind := range []string{"f32", "bf16", "strided"} {
					t.Run(tc.kernel+"/"+kind, func(t *testing.T) {
						ctx := device.WithDevice(context.Background(), checkedCPU(t))
						in := make([]*tensor.Tensor, len(tc.in))
						for i, x := range tc.in {
							in[i] = operandOn(t, dev, x, kind)
						}
						out, err := tc.run(ctx, in)
						if err != nil {
							t.Fatal(err)
						}
						out.Release()
						for _, x := range in {
							x.Release()
						}
						if sim, ok := dev.(*devicetest.Sim); ok && sim.InUse() != 0 {
							t.Errorf("%d sim bytes still in use", sim.InUse())
						}
					})
				}
			}
		})
	}
}

// operandOn puts x on dev as kind: "f32", "bf16", or "strided" (for rank
// >= 2: the transposed view of a contiguous xᵀ on dev, so the values are
// x's and the view is strided in dev's own memory).
func operandOn(t *testing.T, dev device.Device, x *tensor.Tensor, kind string) *tensor.Tensor {
	t.Helper()
	r := x.Rank()
	switch {
	case kind == "bf16":
		bf, err := x.ConvertTo(tensor.BFloat16)
		if err != nil {
			t.Fatal(err)
		}
		return devicetest.Put(t, dev, bf)
	case kind == "strided" && r >= 2 && x.Dim(-1) > 1 && x.Dim(-2) > 1:
		xt, err := x.Transpose(r-2, r-1)
		if err != nil {
			t.Fatal(err)
		}
		c, err := xt.Clone()
		if err != nil {
			t.Fatal(err)
		}
		d := devicetest.Put(t, dev, c)
		c.Release()
		v, err := d.Transpose(r-2, r-1)
		d.Release() // the view holds the storage now
		if err != nil {
			t.Fatal(err)
		}
		if v.IsContiguous() {
			t.Fatal("strided operand is contiguous")
		}
		return v
	}
	return devicetest.Put(t, dev, x)
}

// TestBuffersReleasedOnError checks the error paths that fail after
// buffers were made (an id out of range found by the kernel after the
// table was converted, operands on two different devices, a full cache),
// under a checked allocator.
func TestBuffersReleasedOnError(t *testing.T) {
	for _, dev := range devicetest.Devices() {
		t.Run(dev.Name(), func(t *testing.T) {
			ctx := device.WithDevice(context.Background(), checkedCPU(t))
			rng := rand.New(rand.NewPCG(1, 2))
			table, _ := randT(rng, 6, 4).ConvertTo(tensor.BFloat16)
			ids, _ := tensor.FromInt32([]int32{1, 9, 2}, 3)
			dt, di := devicetest.Put(t, dev, table), devicetest.Put(t, dev, ids)
			if _, err := device.Embedding(ctx, di, dt); !errors.Is(err, device.ErrTokenID) {
				t.Errorf("embedding: %v, want ErrTokenID", err)
			}
			dt.Release()
			di.Release()

			other := devicetest.NewSim(devicetest.WithName("other"))
			a := devicetest.Put(t, dev, randT(rng, 3, 4))
			b := devicetest.Put(t, other, randT(rng, 3, 4))
			// The fallback copies each operand from its own device; a
			// backend may refuse the foreign one: either way nothing leaks.
			if out, err := device.Add(ctx, a, b); err == nil {
				out.Release()
			}
			a.Release()
			b.Release()
			if other.InUse() != 0 {
				t.Errorf("other sim: %d bytes in use", other.InUse())
			}

			c, err := device.NewKVCache(1, 1, 2, 4)
			if err != nil {
				t.Fatal(err)
			}
			k := devicetest.Put(t, dev, randT(rng, 1, 2, 1, 4))
			if err := c.Append(ctx, k, k); err != nil {
				t.Fatal(err)
			}
			if err := c.Append(ctx, k, k); !errors.Is(err, device.ErrKVCacheFull) {
				t.Errorf("append to a full cache: %v", err)
			}
			q := devicetest.Put(t, dev, randT(rng, 1, 2, 2, 4))
			out, err := device.AttentionCache(ctx, q, c, device.AttentionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out.Release()
			q.Release()
			k.Release()
			if sim, ok := dev.(*devicetest.Sim); ok && sim.InUse() != 0 {
				t.Errorf("%d sim bytes still in use", sim.InUse())
			}
		})
	}
}
