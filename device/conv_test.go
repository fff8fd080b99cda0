package device_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/omniflow-go/omniflow/device"
	"github.com/omniflow-go/omniflow/device/devicetest"
	"github.com/omniflow-go/omniflow/tensor"
)

// refConv is a direct float64 convolution over 1-3 spatial dims (PyTorch's
// definition: out[n,o,p] = b[o] + Σ_{c,k} w[o,c,k]·x[n, g·Cg+c, p·s − pb + k·d]).
func refConv(x, w, b *tensor.Tensor, stride, dil, pb, pe []int, groups int) ([]int, []float64) {
	sd := x.Rank() - 2
	n, inC, outC := x.Dim(0), x.Dim(1), w.Dim(0)
	cg, og := inC/groups, outC/groups
	out := make([]int, sd)
	for i := range out {
		out[i] = (x.Dim(2+i)+pb[i]+pe[i]-dil[i]*(w.Dim(2+i)-1)-1)/stride[i] + 1
	}
	shape := append([]int{n, outC}, out...)
	total := 1
	for _, v := range shape {
		total *= v
	}
	res := make([]float64, total)
	pos := make([]int, sd)
	ker := make([]int, sd)
	idx := 0
	for nn := 0; nn < n; nn++ {
		for o := 0; o < outC; o++ {
			g := o / og
			// iterate output positions
			np := 1
			for _, v := range out {
				np *= v
			}
			for pi := 0; pi < np; pi++ {
				r := pi
				for d := sd - 1; d >= 0; d-- {
					pos[d] = r % out[d]
					r /= out[d]
				}
				s := 0.0
				if b != nil {
					s = b.At(o)
				}
				nk := 1
				for d := 0; d < sd; d++ {
					nk *= w.Dim(2 + d)
				}
				for c := 0; c < cg; c++ {
					for ki := 0; ki < nk; ki++ {
						r := ki
						for d := sd - 1; d >= 0; d-- {
							ker[d] = r % w.Dim(2+d)
							r /= w.Dim(2 + d)
						}
						xi := []int{nn, g*cg + c}
						ok := true
						for d := 0; d < sd; d++ {
							p := pos[d]*stride[d] - pb[d] + ker[d]*dil[d]
							if p < 0 || p >= x.Dim(2+d) {
								ok = false
								break
							}
							xi = append(xi, p)
						}
						if !ok {
							continue
						}
						wi := append([]int{o, c}, ker...)
						s += w.At(wi...) * x.At(xi...)
					}
				}
				res[idx] = s
				idx++
			}
		}
	}
	return shape, res
}

func TestConv(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(19, 20))
		for _, tc := range []struct {
			name   string
			x, w   []int
			opt    device.ConvOptions
			pb, pe []int
		}{
			{"conv1d pad", []int{2, 3, 10}, []int{4, 3, 3}, device.ConvOptions{Padding: []int{1}}, []int{1}, []int{1}},
			{"conv1d causal dilated", []int{1, 2, 9}, []int{2, 2, 3}, device.ConvOptions{Padding: []int{2}, Dilation: []int{2}, Causal: true}, []int{4}, []int{0}},
			{"conv2d stride groups", []int{1, 4, 7, 6}, []int{6, 2, 3, 3}, device.ConvOptions{Stride: []int{2}, Padding: []int{1}, Groups: 2}, []int{1, 1}, []int{1, 1}},
			{"conv3d causal time", []int{1, 2, 4, 5, 5}, []int{3, 2, 3, 3, 3}, device.ConvOptions{Padding: []int{1}, Causal: true}, []int{2, 1, 1}, []int{0, 1, 1}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				x, w, b := randT(rng, tc.x...), randT(rng, tc.w...), randT(rng, tc.w[0])
				out, err := device.Conv(ctx, devicetest.Put(t, dev, x), devicetest.Put(t, dev, w), devicetest.Put(t, dev, b), tc.opt)
				if err != nil {
					t.Fatal(err)
				}
				sd := len(tc.x) - 2
				ones := make([]int, sd)
				for i := range ones {
					ones[i] = 1
				}
				stride, dil := ones, ones
				if tc.opt.Stride != nil {
					stride = make([]int, sd)
					for i := range stride {
						stride[i] = tc.opt.Stride[0]
					}
				}
				if tc.opt.Dilation != nil {
					dil = make([]int, sd)
					for i := range dil {
						dil[i] = tc.opt.Dilation[0]
					}
				}
				shape, want := refConv(x, w, b, stride, dil, tc.pb, tc.pe, max(tc.opt.Groups, 1))
				h := devicetest.Get(t, dev, out)
				if !tensor.SameShape(h.Shape(), shape) {
					t.Fatalf("shape %v, want %v", h.Shape(), shape)
				}
				// Sums of at most 54 float32 products of N(0,1) values:
				// 1e-4 absolute is several times k·u·Σ|w||x|.
				for i, v := range h.Float32s() {
					if math.Abs(float64(v)-want[i]) > 1e-4 {
						t.Fatalf("element %d: %g, want %g", i, v, want[i])
					}
				}
			})
		}
		if _, err := device.Conv(ctx, randT(rng, 1, 3, 4), randT(rng, 2, 2, 3), nil, device.ConvOptions{}); !errors.Is(err, device.ErrShape) {
			t.Fatalf("channel mismatch: %v", err)
		}
		if _, err := device.Conv(ctx, randT(rng, 1, 2, 2), randT(rng, 2, 2, 5), nil, device.ConvOptions{}); !errors.Is(err, device.ErrShape) {
			t.Fatalf("kernel longer than the input: %v", err)
		}
	})
}

// refConvTranspose1d: out[n, o, i·s − p + k·d] += w[c, o, k]·x[n, c, i] (+ bias).
func TestConvTranspose1d(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		rng := rand.New(rand.NewPCG(21, 22))
		x, w, b := randT(rng, 2, 3, 5), randT(rng, 3, 4, 4), randT(rng, 4)
		const s, p, op = 2, 1, 1
		out, err := device.ConvTranspose1d(context.Background(), devicetest.Put(t, dev, x), devicetest.Put(t, dev, w), devicetest.Put(t, dev, b),
			device.ConvTranspose1dOptions{Stride: s, Padding: p, OutputPadding: op})
		if err != nil {
			t.Fatal(err)
		}
		l := (5-1)*s - 2*p + (4 - 1) + op + 1
		want := make([]float64, 2*4*l)
		for n := 0; n < 2; n++ {
			for o := 0; o < 4; o++ {
				for j := 0; j < l; j++ {
					want[(n*4+o)*l+j] = b.At(o)
				}
				for c := 0; c < 3; c++ {
					for i := 0; i < 5; i++ {
						for k := 0; k < 4; k++ {
							j := i*s - p + k
							if j >= 0 && j < l {
								want[(n*4+o)*l+j] += w.At(c, o, k) * x.At(n, c, i)
							}
						}
					}
				}
			}
		}
		h := devicetest.Get(t, dev, out)
		if !tensor.SameShape(h.Shape(), []int{2, 4, l}) {
			t.Fatalf("shape %v", h.Shape())
		}
		for i, v := range h.Float32s() {
			if math.Abs(float64(v)-want[i]) > 1e-5 {
				t.Fatalf("element %d: %g, want %g", i, v, want[i])
			}
		}
	})
}

func TestEmbedding(t *testing.T) {
	devicetest.Each(t, func(t *testing.T, dev device.Device) {
		rng := rand.New(rand.NewPCG(23, 24))
		table := randT(rng, 10, 4)
		ids, _ := tensor.FromInt32([]int32{3, 0, 9, 3}, 2, 2)
		out, err := device.Embedding(context.Background(), devicetest.Put(t, dev, ids), devicetest.Put(t, dev, table))
		if err != nil {
			t.Fatal(err)
		}
		h := devicetest.Get(t, dev, out)
		for i, id := range []int{3, 0, 9, 3} {
			for j := 0; j < 4; j++ {
				if h.At(i/2, i%2, j) != table.At(id, j) {
					t.Fatalf("row %d", i)
				}
			}
		}
		bad, _ := tensor.FromInt32([]int32{10}, 1)
		if _, err := device.Embedding(context.Background(), bad, table); !errors.Is(err, device.ErrTokenID) {
			t.Fatalf("id 10 of 10: %v", err)
		}
	})
}
