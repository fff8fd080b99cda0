package cpu

import (
	"fmt"
	"math"
	"testing"
)

// refConv is the direct convolution in float64, by the definition (torch's
// Conv1d/2d/3d docs): out[n, o, p] = bias[o] + Σ_{c, taps} w[o, c, tap] x[n, g*cg + c, p*stride - padBegin + tap*dilation],
// zero outside x. It returns the tolerance for a float32 GEMM beside it:
// a dot product of length len is off by at most γ_len·Σ|w·x| (Higham 2002,
// eq. 3.5), plus one rounding for the bias.
func refConv(p ConvParams, x, w, bias []float32) (want, tol []float64) {
	r := len(p.In)
	// Spatial parameters padded to three dims with leading (size 1) dims.
	pad := func(s []int, def int) [3]int {
		a := [3]int{1, 1, 1}
		for i := range r {
			a[3-r+i] = def
			if s != nil {
				a[3-r+i] = s[i]
			}
		}
		return a
	}
	in, k := pad(p.In, 1), pad(p.Kernel, 1)
	st, dl := pad(p.Stride, 1), pad(p.Dilation, 1)
	pb, pe := pad(p.PadBegin, 0), pad(p.PadEnd, 0)
	for i := range 3 - r {
		pb[i], pe[i] = 0, 0
	}
	if p.Causal {
		pb[3-r], pe[3-r] = pb[3-r]+pe[3-r], 0
	}
	var out [3]int
	for i := range 3 {
		out[i] = (in[i]+pb[i]+pe[i]-dl[i]*(k[i]-1)-1)/st[i] + 1
	}
	g := max(p.Groups, 1)
	cg, og := p.InC/g, p.OutC/g
	inSize, kSize, pSize := in[0]*in[1]*in[2], k[0]*k[1]*k[2], out[0]*out[1]*out[2]
	want, tol = make([]float64, p.N*p.OutC*pSize), make([]float64, p.N*p.OutC*pSize)
	for n := range p.N {
		for o := range p.OutC {
			gi := o / og
			for od := range out[0] {
				for oh := range out[1] {
					for ow := range out[2] {
						s, a := 0.0, 0.0
						for c := range cg {
							for kd := range k[0] {
								for kh := range k[1] {
									for kw := range k[2] {
										id := od*st[0] - pb[0] + kd*dl[0]
										ih := oh*st[1] - pb[1] + kh*dl[1]
										iw := ow*st[2] - pb[2] + kw*dl[2]
										if id < 0 || id >= in[0] || ih < 0 || ih >= in[1] || iw < 0 || iw >= in[2] {
											continue
										}
										xv := float64(x[(n*p.InC+gi*cg+c)*inSize+(id*in[1]+ih)*in[2]+iw])
										wv := float64(w[(o*cg+c)*kSize+(kd*k[1]+kh)*k[2]+kw])
										s += xv * wv
										a += math.Abs(xv * wv)
									}
								}
							}
						}
						b := 0.0
						if bias != nil {
							b = float64(bias[o])
						}
						i := (n*p.OutC+o)*pSize + (od*out[1]+oh)*out[2] + ow
						want[i] = s + b
						tol[i] = float64(cg*kSize+2)*u32*(a+math.Abs(b)) + 1e-30
					}
				}
			}
		}
	}
	return want, tol
}

func TestConv(t *testing.T) {
	rng := newRand(70)
	cases := []struct {
		name string
		p    ConvParams
		bias bool
	}{
		{"1d", ConvParams{N: 2, InC: 3, OutC: 5, In: []int{20}, Kernel: []int{3}}, true},
		{"1d-pad-stride-dil", ConvParams{N: 1, InC: 4, OutC: 6, In: []int{37}, Kernel: []int{5}, Stride: []int{2}, Dilation: []int{3}, PadBegin: []int{4}, PadEnd: []int{4}}, true},
		{"1d-causal", ConvParams{N: 2, InC: 8, OutC: 8, In: []int{30}, Kernel: []int{7}, PadBegin: []int{3}, PadEnd: []int{3}, Causal: true}, true},
		{"1d-causal-dilated", ConvParams{N: 1, InC: 4, OutC: 4, In: []int{50}, Kernel: []int{3}, Dilation: []int{5}, PadBegin: []int{10}, Causal: true}, false},
		{"1d-groups", ConvParams{N: 1, InC: 8, OutC: 12, Groups: 4, In: []int{25}, Kernel: []int{3}, PadBegin: []int{1}, PadEnd: []int{1}}, true},
		{"1d-depthwise", ConvParams{N: 2, InC: 6, OutC: 6, Groups: 6, In: []int{40}, Kernel: []int{9}, PadBegin: []int{4}, PadEnd: []int{4}}, true},
		{"1d-long", ConvParams{N: 1, InC: 16, OutC: 32, In: []int{3000}, Kernel: []int{7}, PadBegin: []int{3}, PadEnd: []int{3}}, true},
		{"1d-pointwise", ConvParams{N: 2, InC: 10, OutC: 7, In: []int{33}, Kernel: []int{1}}, true},
		{"2d", ConvParams{N: 2, InC: 3, OutC: 4, In: []int{9, 11}, Kernel: []int{3, 3}, PadBegin: []int{1, 1}, PadEnd: []int{1, 1}}, true},
		{"2d-stride2-asym", ConvParams{N: 1, InC: 5, OutC: 6, In: []int{16, 13}, Kernel: []int{3, 2}, Stride: []int{2, 2}, PadBegin: []int{0, 1}, PadEnd: []int{1, 0}}, false},
		{"2d-big", ConvParams{N: 1, InC: 32, OutC: 48, In: []int{40, 40}, Kernel: []int{3, 3}, PadBegin: []int{1, 1}, PadEnd: []int{1, 1}}, true},
		{"2d-pointwise", ConvParams{N: 2, InC: 16, OutC: 8, In: []int{12, 10}, Kernel: []int{1, 1}}, true},
		{"2d-dilated-groups", ConvParams{N: 1, InC: 6, OutC: 4, Groups: 2, In: []int{14, 15}, Kernel: []int{3, 3}, Dilation: []int{2, 3}, PadBegin: []int{2, 3}, PadEnd: []int{2, 3}}, true},
		{"3d", ConvParams{N: 1, InC: 3, OutC: 4, In: []int{5, 6, 7}, Kernel: []int{3, 3, 3}, PadBegin: []int{1, 1, 1}, PadEnd: []int{1, 1, 1}}, true},
		{"3d-causal-wan", ConvParams{N: 2, InC: 4, OutC: 6, In: []int{5, 8, 9}, Kernel: []int{3, 3, 3}, PadBegin: []int{1, 1, 1}, PadEnd: []int{1, 1, 1}, Causal: true}, true},
		{"3d-stride-time", ConvParams{N: 1, InC: 4, OutC: 4, In: []int{9, 6, 6}, Kernel: []int{3, 1, 1}, Stride: []int{2, 1, 1}}, true},
		{"3d-patch-embed", ConvParams{N: 1, InC: 4, OutC: 8, In: []int{3, 8, 8}, Kernel: []int{1, 2, 2}, Stride: []int{1, 2, 2}}, true},
	}
	for _, c := range cases {
		for _, threads := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("%s/threads=%d", c.name, threads), func(t *testing.T) {
				p := c.p
				g := max(p.Groups, 1)
				kSize := 1
				for _, k := range p.Kernel {
					kSize *= k
				}
				inSize := 1
				for _, v := range p.In {
					inSize *= v
				}
				x := randNormal(rng, p.N*p.InC*inSize, 1)
				w := randNormal(rng, p.OutC*p.InC/g*kSize, 0.3)
				var bias []float32
				if c.bias {
					bias = randNormal(rng, p.OutC, 1)
				}
				want, tol := refConv(p, x, w, bias)
				outSize := 1
				for _, v := range p.OutSize() {
					outSize *= v
				}
				if outSize*p.N*p.OutC != len(want) {
					t.Fatalf("OutSize %v disagrees with the reference (%d elements)", p.OutSize(), len(want))
				}
				dst := make([]float32, len(want))
				for i := range dst {
					dst[i] = float32(math.NaN()) // every element must be written
				}
				switch len(p.In) {
				case 1:
					Conv1D(threads, dst, x, w, bias, p)
				case 2:
					Conv2D(threads, dst, x, w, bias, p)
				case 3:
					Conv3D(threads, dst, x, w, bias, p)
				}
				checkTol(t, "Conv", dst, want, tol)
			})
		}
	}
}

// TestConvCausalStream checks the chunked-streaming recipe in ConvParams'
// doc: a causal conv over a whole sequence equals, chunk by chunk, a conv
// over the chunk with the previous chunk's last k-1 frames prepended and no
// front padding.
func TestConvCausalStream(t *testing.T) {
	rng := newRand(71)
	const c, k, total, chunk = 3, 3, 12, 4
	x := randNormal(rng, c*total*5, 1) // [1, c, T, 5] as conv2d over (T, W) with a causal T
	w := randNormal(rng, c*c*k*3, 0.5)
	full := ConvParams{N: 1, InC: c, OutC: c, In: []int{total, 5}, Kernel: []int{k, 3}, PadBegin: []int{1, 1}, PadEnd: []int{1, 1}, Causal: true}
	want := make([]float32, c*total*5)
	Conv2D(1, want, x, w, nil, full)
	for t0 := 0; t0 < total; t0 += chunk {
		ctx := min(t0, k-1) // cached frames
		in := make([]float32, 0, c*(chunk+ctx)*5)
		for ch := range c {
			in = append(in, x[(ch*total+t0-ctx)*5:(ch*total+t0+chunk)*5]...)
		}
		p := ConvParams{N: 1, InC: c, OutC: c, In: []int{chunk + ctx, 5}, Kernel: []int{k, 3},
			PadBegin: []int{k - 1 - ctx, 1}, PadEnd: []int{0, 1}}
		got := make([]float32, c*chunk*5)
		Conv2D(1, got, in, w, nil, p)
		for ch := range c {
			checkClose(t, fmt.Sprintf("chunk %d ch %d", t0, ch), got[ch*chunk*5:(ch+1)*chunk*5],
				f64s(want[(ch*total+t0)*5:(ch*total+t0+chunk)*5]), 0, 0) // same products in the same order: identical
		}
	}
}

func TestConvPanics(t *testing.T) {
	x := make([]float32, 100)
	mustPanic(t, "groups", func() {
		Conv1D(1, x, x, x, nil, ConvParams{N: 1, InC: 3, OutC: 4, Groups: 2, In: []int{5}, Kernel: []int{1}})
	})
	mustPanic(t, "rank", func() { Conv2D(1, x, x, x, nil, ConvParams{N: 1, InC: 1, OutC: 1, In: []int{5}, Kernel: []int{1}}) })
	mustPanic(t, "kernel too big", func() { Conv1D(1, x, x, x, nil, ConvParams{N: 1, InC: 1, OutC: 1, In: []int{2}, Kernel: []int{3}}) })
	mustPanic(t, "short w", func() {
		Conv1D(1, x[:5], x[:5], x[:2], nil, ConvParams{N: 1, InC: 1, OutC: 1, In: []int{5}, Kernel: []int{3}, PadBegin: []int{1}, PadEnd: []int{1}})
	})
	mustPanic(t, "stride len", func() {
		Conv1D(1, x, x, x, nil, ConvParams{N: 1, InC: 1, OutC: 1, In: []int{5}, Kernel: []int{1}, Stride: []int{1, 1}})
	})
}

// refConvT is the transposed convolution by its definition (torch's
// ConvTranspose1d): out[n, o, i*stride - pad + kt*dilation] += x[n, c, i] w[c, o_local, kt].
func refConvT(p ConvTranspose1DParams, x, w, bias []float32) (want, tol []float64) {
	p = p.norm()
	lout := p.OutLen()
	g := p.Groups
	cg, og := p.InC/g, p.OutC/g
	want, tol = make([]float64, p.N*p.OutC*lout), make([]float64, p.N*p.OutC*lout)
	abs := make([]float64, len(want))
	cnt := make([]int, len(want))
	for n := range p.N {
		for o := range p.OutC {
			if bias != nil {
				for j := range lout {
					want[(n*p.OutC+o)*lout+j] = float64(bias[o])
					abs[(n*p.OutC+o)*lout+j] = math.Abs(float64(bias[o]))
				}
			}
			gi, ol := o/og, o%og
			for c := range cg {
				for i := range p.In {
					for kt := range p.Kernel {
						j := i*p.Stride - p.Pad + kt*p.Dilation
						if j < 0 || j >= lout {
							continue
						}
						v := float64(x[(n*p.InC+gi*cg+c)*p.In+i]) * float64(w[((gi*cg+c)*og+ol)*p.Kernel+kt])
						want[(n*p.OutC+o)*lout+j] += v
						abs[(n*p.OutC+o)*lout+j] += math.Abs(v)
						cnt[(n*p.OutC+o)*lout+j]++
					}
				}
			}
		}
	}
	for i := range tol {
		// A dot product of length cg per column (γ_cg, Higham 2002), then up to
		// Kernel/Stride*Dilation further additions in col2im and the bias.
		tol[i] = float64(cg+cnt[i]+2)*u32*abs[i] + 1e-30
	}
	return want, tol
}

func TestConvTranspose1D(t *testing.T) {
	rng := newRand(72)
	for _, c := range []struct {
		name string
		p    ConvTranspose1DParams
		bias bool
	}{
		{"hifigan-up8", ConvTranspose1DParams{N: 1, InC: 32, OutC: 16, In: 20, Kernel: 16, Stride: 8, Pad: 4}, true},
		{"hifigan-up2", ConvTranspose1DParams{N: 2, InC: 8, OutC: 4, In: 33, Kernel: 4, Stride: 2, Pad: 1}, true},
		{"output-pad", ConvTranspose1DParams{N: 1, InC: 3, OutC: 5, In: 7, Kernel: 3, Stride: 2, Pad: 1, OutputPad: 1}, true},
		{"dilation-groups", ConvTranspose1DParams{N: 2, InC: 6, OutC: 9, Groups: 3, In: 11, Kernel: 3, Stride: 3, Dilation: 2, Pad: 2}, false},
		{"stride1", ConvTranspose1DParams{N: 1, InC: 4, OutC: 4, In: 10, Kernel: 5}, true},
		{"long", ConvTranspose1DParams{N: 1, InC: 16, OutC: 8, In: 3000, Kernel: 10, Stride: 5, Pad: 3}, true},
	} {
		for _, threads := range []int{1, 2, 7} {
			t.Run(fmt.Sprintf("%s/threads=%d", c.name, threads), func(t *testing.T) {
				p := c.p
				g := max(p.Groups, 1)
				x := randNormal(rng, p.N*p.InC*p.In, 1)
				w := randNormal(rng, p.InC*p.OutC/g*p.Kernel, 0.3)
				var bias []float32
				if c.bias {
					bias = randNormal(rng, p.OutC, 1)
				}
				want, tol := refConvT(p, x, w, bias)
				dst := make([]float32, len(want))
				for i := range dst {
					dst[i] = float32(math.NaN())
				}
				ConvTranspose1D(threads, dst, x, w, bias, p)
				checkTol(t, "ConvTranspose1D", dst, want, tol)
			})
		}
	}
	x := make([]float32, 100)
	mustPanic(t, "output pad", func() {
		ConvTranspose1D(1, x, x, x, nil, ConvTranspose1DParams{N: 1, InC: 1, OutC: 1, In: 3, Kernel: 3, Stride: 2, OutputPad: 2})
	})
}

func BenchmarkConv(b *testing.B) {
	for _, c := range []struct {
		name string
		p    ConvParams
	}{
		// Wan VAE decoder-like: 3x3x3 causal conv, 96 channels, 60x104 latent-scale frames.
		{"conv3d/c96-t4-60x104-k3", ConvParams{N: 1, InC: 96, OutC: 96, In: []int{4, 60, 104}, Kernel: []int{3, 3, 3}, PadBegin: []int{1, 1, 1}, PadEnd: []int{1, 1, 1}, Causal: true}},
		// SD-VAE-like 3x3 conv.
		{"conv2d/c128-128x128-k3", ConvParams{N: 1, InC: 128, OutC: 128, In: []int{128, 128}, Kernel: []int{3, 3}, PadBegin: []int{1, 1}, PadEnd: []int{1, 1}}},
		// HiFi-GAN residual block conv1d.
		{"conv1d/c256-l4096-k7-d3", ConvParams{N: 1, InC: 256, OutC: 256, In: []int{4096}, Kernel: []int{7}, Dilation: []int{3}, PadBegin: []int{9}, PadEnd: []int{9}}},
		{"conv2d-1x1/c512-64x64", ConvParams{N: 1, InC: 512, OutC: 512, In: []int{64, 64}, Kernel: []int{1, 1}}},
	} {
		b.Run("cpu/f32/"+c.name, func(b *testing.B) {
			p := c.p
			rng := newRand(1)
			inSize, kSize, outSize := 1, 1, 1
			for i := range p.In {
				inSize *= p.In[i]
				kSize *= p.Kernel[i]
			}
			for _, v := range p.OutSize() {
				outSize *= v
			}
			x := randNormal(rng, p.N*p.InC*inSize, 1)
			w := randNormal(rng, p.OutC*p.InC*kSize, 0.1)
			bias := randNormal(rng, p.OutC, 1)
			dst := make([]float32, p.N*p.OutC*outSize)
			b.ReportAllocs()
			for b.Loop() {
				Conv(0, dst, x, w, bias, p)
			}
			reportGFLOPs(b, 2*float64(p.N*p.OutC*outSize*p.InC*kSize))
		})
	}
	b.Run("cpu/f32/convtranspose1d/c512-256-l512-k16-s8", func(b *testing.B) {
		p := ConvTranspose1DParams{N: 1, InC: 512, OutC: 256, In: 512, Kernel: 16, Stride: 8, Pad: 4}
		rng := newRand(1)
		x, w := randNormal(rng, p.InC*p.In, 1), randNormal(rng, p.InC*p.OutC*p.Kernel, 0.1)
		dst := make([]float32, p.OutC*p.OutLen())
		b.ReportAllocs()
		for b.Loop() {
			ConvTranspose1D(0, dst, x, w, nil, p)
		}
		reportGFLOPs(b, 2*float64(p.InC*p.OutC*p.Kernel*p.In))
	})
}
