package audio

import (
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"
)

// naiveDFT is the definition, in float64, with the angle reduced exactly
// (jk mod n) so large sizes stay accurate.
func naiveDFT(x []complex128) []complex128 {
	n := len(x)
	out := make([]complex128, n)
	for k := range n {
		var acc complex128
		for j, v := range x {
			idx := (int64(j) * int64(k)) % int64(n)
			acc += v * cmplx.Rect(1, -2*math.Pi*float64(idx)/float64(n))
		}
		out[k] = acc
	}
	return out
}

func maxAbsDiff(a, b []complex128) (d, scale float64) {
	for i := range a {
		d = math.Max(d, cmplx.Abs(a[i]-b[i]))
		scale = math.Max(scale, cmplx.Abs(b[i]))
	}
	return d, scale
}

func TestFFTAgainstNaiveDFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Radix 4, 2, 3, 5 and generic (7, 11, 61) sizes, and Bluestein sizes
	// (prime factors 67, 199, 401, 509).
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 25, 30, 49, 60, 64, 100, 121, 128, 200, 400, 61, 122, 134, 398, 401, 509, 1000, 1024} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f, err := NewFFT(n)
			if err != nil {
				t.Fatal(err)
			}
			x := make([]complex128, n)
			for i := range x {
				x[i] = complex(rng.NormFloat64(), rng.NormFloat64())
			}
			got := make([]complex128, n)
			f.Transform(got, x)
			want := naiveDFT(x)
			if d, s := maxAbsDiff(got, want); d > 1e-12*s*math.Log2(float64(n)+1)*4+1e-13 {
				t.Errorf("max |FFT - DFT| = %.3g (scale %.3g)", d, s)
			}
			back := make([]complex128, n)
			f.Inverse(back, got)
			if d, _ := maxAbsDiff(back, x); d > 1e-12 {
				t.Errorf("inverse round trip error %.3g", d)
			}
		})
	}
	if _, err := NewFFT(0); err == nil {
		t.Error("NewFFT(0) succeeded")
	}
}

func TestFFTUsesBluesteinForLargePrimes(t *testing.T) {
	for n, blue := range map[int]bool{400: false, 61 * 2: false, 67: true, 401: true, 3 * 127: true} {
		f, err := NewFFT(n)
		if err != nil {
			t.Fatal(err)
		}
		if (f.blue != nil) != blue {
			t.Errorf("n=%d: Bluestein %v, want %v", n, f.blue != nil, blue)
		}
	}
}

func TestRealFFTAgainstNaiveDFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{2, 4, 10, 400, 398, 512, 401, 7} {
		r, err := newRealFFT(n)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float64, n)
		xc := make([]complex128, n)
		for i := range x {
			x[i] = rng.NormFloat64()
			xc[i] = complex(x[i], 0)
		}
		got := make([]complex128, n/2+1)
		r.transform(got, x, make([]complex128, r.workLen()))
		want := naiveDFT(xc)[:n/2+1]
		if d, s := maxAbsDiff(got, want); d > 1e-11*s {
			t.Errorf("n=%d: max |rFFT - DFT| = %.3g (scale %.3g)", n, d, s)
		}
	}
}

// dftTable is the alternative to an FFT for n_fft = 400: a direct real DFT
// against precomputed cos/sin rows (201 × 400 multiply-adds, twice). It is
// here to measure against.
type dftTable struct{ cos, sin [][]float64 }

func newDFTTable(n int) *dftTable {
	t := &dftTable{}
	for k := 0; k <= n/2; k++ {
		c, s := make([]float64, n), make([]float64, n)
		for j := range n {
			a := 2 * math.Pi * float64((j*k)%n) / float64(n)
			c[j], s[j] = math.Cos(a), -math.Sin(a)
		}
		t.cos, t.sin = append(t.cos, c), append(t.sin, s)
	}
	return t
}

func (t *dftTable) power(dst, x []float64) {
	for k := range t.cos {
		var re, im float64
		c, s := t.cos[k], t.sin[k]
		for j, v := range x {
			re += v * c[j]
			im += v * s[j]
		}
		dst[k] = re*re + im*im
	}
}

func TestDFTTableMatchesFFT(t *testing.T) {
	const n = 400
	x := make([]float64, n)
	for i := range x {
		x[i] = math.Sin(float64(i) * 0.3)
	}
	r, _ := newRealFFT(n)
	spec := make([]complex128, n/2+1)
	r.transform(spec, x, make([]complex128, r.workLen()))
	p := make([]float64, n/2+1)
	newDFTTable(n).power(p, x)
	for k := range p {
		want := real(spec[k])*real(spec[k]) + imag(spec[k])*imag(spec[k])
		if math.Abs(p[k]-want) > 1e-9*(1+want) {
			t.Fatalf("bin %d: table %v, FFT %v", k, p[k], want)
		}
	}
}

// BenchmarkSpectrum compares ways to get the 201-bin power spectrum of a
// 400-sample frame: the real FFT (200-point complex FFT + split), a
// 400-point complex FFT, and the direct DFT table.
func BenchmarkSpectrum(b *testing.B) {
	const n = 400
	x := make([]float64, n)
	for i := range x {
		x[i] = math.Sin(float64(i) * 0.3)
	}
	p := make([]float64, n/2+1)
	b.Run("rfft", func(b *testing.B) {
		r, _ := newRealFFT(n)
		spec := make([]complex128, n/2+1)
		work := make([]complex128, r.workLen())
		b.ReportAllocs()
		for b.Loop() {
			r.transform(spec, x, work)
			for k, c := range spec {
				p[k] = real(c)*real(c) + imag(c)*imag(c)
			}
		}
	})
	b.Run("cfft400", func(b *testing.B) {
		f, _ := NewFFT(n)
		in, out := make([]complex128, n), make([]complex128, n)
		b.ReportAllocs()
		for b.Loop() {
			for i, v := range x {
				in[i] = complex(v, 0)
			}
			f.Transform(out, in)
			for k := range p {
				p[k] = real(out[k])*real(out[k]) + imag(out[k])*imag(out[k])
			}
		}
	})
	b.Run("dft-table", func(b *testing.B) {
		tab := newDFTTable(n)
		b.ReportAllocs()
		for b.Loop() {
			tab.power(p, x)
		}
	})
}

func BenchmarkFFT(b *testing.B) {
	for _, n := range []int{200, 400, 512, 401} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			f, _ := NewFFT(n)
			in, out := make([]complex128, n), make([]complex128, n)
			for i := range in {
				in[i] = complex(float64(i%7), 0)
			}
			b.ReportAllocs()
			for b.Loop() {
				f.Transform(out, in)
			}
		})
	}
}
