package audio

import (
	"fmt"
	"math"
	"math/cmplx"
)

// FFT is a complex discrete Fourier transform of one size: mixed radix
// (radix 4, 2, 3, 5 butterflies and a generic one for other primes, after
// KISS FFT's recursive decimation in time) for sizes whose prime factors
// are small, and Bluestein's chirp-z algorithm (over a power-of-two FFT)
// for sizes with a prime factor above maxRadix. The forward transform is
// X[k] = Σ x[j]·e^{-2πijk/n}. An FFT is immutable and safe for concurrent
// use.
type FFT struct {
	n       int
	factors []int        // radix, remaining length; radix, remaining length; ...
	tw      []complex128 // e^{-2πik/n}
	blue    *bluestein
}

// maxRadix is the largest prime factor handled by the generic butterfly
// (O(n·p)); larger ones go through Bluestein.
const maxRadix = 61

// NewFFT prepares a transform of size n ≥ 1.
func NewFFT(n int) (*FFT, error) {
	if n < 1 || n > 1<<26 {
		return nil, fmt.Errorf("audio: FFT size %d, want 1..%d", n, 1<<26)
	}
	f := &FFT{n: n}
	rest := n
	for _, p := range []int{4, 2, 3, 5} {
		for rest%p == 0 && rest > 1 {
			rest /= p
			f.factors = append(f.factors, p, rest)
		}
	}
	for p := 7; rest > 1; p += 2 {
		if p*p > rest {
			p = rest
		}
		if p > maxRadix {
			f.factors = nil
			b, err := newBluestein(n)
			if err != nil {
				return nil, err
			}
			f.blue = b
			return f, nil
		}
		for rest%p == 0 {
			rest /= p
			f.factors = append(f.factors, p, rest)
		}
	}
	f.tw = make([]complex128, n)
	for k := range f.tw {
		f.tw[k] = cmplx.Rect(1, -2*math.Pi*float64(k)/float64(n))
	}
	return f, nil
}

// Len is the transform size.
func (f *FFT) Len() int { return f.n }

// Transform computes the forward DFT of src into dst (both of length
// Len; they must not overlap).
func (f *FFT) Transform(dst, src []complex128) {
	if len(dst) != f.n || len(src) != f.n {
		panic(fmt.Sprintf("audio: FFT of size %d on %d -> %d values", f.n, len(src), len(dst)))
	}
	if f.blue != nil {
		f.blue.transform(dst, src)
		return
	}
	if f.n == 1 {
		dst[0] = src[0]
		return
	}
	f.work(dst, src, 1, f.factors)
}

// Inverse computes the inverse DFT, x[j] = (1/n) Σ X[k]·e^{+2πijk/n}.
func (f *FFT) Inverse(dst, src []complex128) {
	tmp := make([]complex128, f.n)
	for i, v := range src {
		tmp[i] = cmplx.Conj(v)
	}
	f.Transform(dst, tmp)
	s := 1 / float64(f.n)
	for i, v := range dst {
		dst[i] = complex(real(v)*s, -imag(v)*s)
	}
}

// work is KISS FFT's kf_work: out[0:p·m] = DFT of in[0], in[stride], ...
func (f *FFT) work(out, in []complex128, stride int, factors []int) {
	p, m := factors[0], factors[1]
	if m == 1 {
		for j := range p {
			out[j] = in[j*stride]
		}
	} else {
		for j := range p {
			f.work(out[j*m:(j+1)*m], in[j*stride:], stride*p, factors[2:])
		}
	}
	switch p {
	case 2:
		f.bfly2(out, stride, m)
	case 3:
		f.bfly3(out, stride, m)
	case 4:
		f.bfly4(out, stride, m)
	case 5:
		f.bfly5(out, stride, m)
	default:
		f.bflyGeneric(out, stride, m, p)
	}
}

func (f *FFT) bfly2(out []complex128, stride, m int) {
	a, b := out[:m], out[m:2*m]
	for k := range m {
		t := b[k] * f.tw[k*stride]
		b[k] = a[k] - t
		a[k] += t
	}
}

func (f *FFT) bfly3(out []complex128, stride, m int) {
	// e^{-2πi/3} = -1/2 - i·√3/2
	const s = -0.86602540378443864676 // imaginary part of e^{-2πi/3}
	for k := range m {
		x0 := out[k]
		x1 := out[k+m] * f.tw[k*stride]
		x2 := out[k+2*m] * f.tw[2*k*stride]
		t1 := x1 + x2
		t2 := x0 - t1*0.5
		d := x1 - x2
		rot := complex(-imag(d)*s, real(d)*s) // i·s·d
		out[k] = x0 + t1
		out[k+m] = t2 + rot
		out[k+2*m] = t2 - rot
	}
}

func (f *FFT) bfly4(out []complex128, stride, m int) {
	for k := range m {
		s0 := out[k+m] * f.tw[k*stride]
		s1 := out[k+2*m] * f.tw[2*k*stride]
		s2 := out[k+3*m] * f.tw[3*k*stride]
		s5 := out[k] - s1
		x0 := out[k] + s1
		s3 := s0 + s2
		s4 := s0 - s2
		out[k+2*m] = x0 - s3
		out[k] = x0 + s3
		// forward: multiply s4 by -i
		out[k+m] = complex(real(s5)+imag(s4), imag(s5)-real(s4))
		out[k+3*m] = complex(real(s5)-imag(s4), imag(s5)+real(s4))
	}
}

func (f *FFT) bfly5(out []complex128, stride, m int) {
	// ya = e^{-2πi/5}, yb = e^{-4πi/5}
	const (
		yar = 0.30901699437494742410
		yai = -0.95105651629515357212
		ybr = -0.80901699437494742410
		ybi = -0.58778525229247312917
	)
	for k := range m {
		s0 := out[k]
		s1 := out[k+m] * f.tw[k*stride]
		s2 := out[k+2*m] * f.tw[2*k*stride]
		s3 := out[k+3*m] * f.tw[3*k*stride]
		s4 := out[k+4*m] * f.tw[4*k*stride]
		s7, s10 := s1+s4, s1-s4
		s8, s9 := s2+s3, s2-s3
		out[k] = s0 + s7 + s8
		s5 := complex(real(s0)+real(s7)*yar+real(s8)*ybr, imag(s0)+imag(s7)*yar+imag(s8)*ybr)
		s6 := complex(imag(s10)*yai+imag(s9)*ybi, -real(s10)*yai-real(s9)*ybi)
		out[k+m] = s5 - s6
		out[k+4*m] = s5 + s6
		s11 := complex(real(s0)+real(s7)*ybr+real(s8)*yar, imag(s0)+imag(s7)*ybr+imag(s8)*yar)
		s12 := complex(-imag(s10)*ybi+imag(s9)*yai, real(s10)*ybi-real(s9)*yai)
		out[k+2*m] = s11 + s12
		out[k+3*m] = s11 - s12
	}
}

func (f *FFT) bflyGeneric(out []complex128, stride, m, p int) {
	var scratch [maxRadix]complex128
	for u := range m {
		for q := range p {
			scratch[q] = out[u+q*m]
		}
		for q1 := range p {
			k := u + q1*m
			acc := scratch[0]
			idx := 0
			for q := 1; q < p; q++ {
				idx += stride * k
				idx %= f.n
				acc += scratch[q] * f.tw[idx]
			}
			out[k] = acc
		}
	}
}

// bluestein computes a DFT of any size n as a convolution with a chirp,
// done with power-of-two FFTs of size m ≥ 2n-1.
type bluestein struct {
	n     int
	chirp []complex128 // e^{-iπk²/n}
	bfft  []complex128 // FFT of the conjugate chirp, wrapped
	inner *FFT
}

func newBluestein(n int) (*bluestein, error) {
	m := 1
	for m < 2*n-1 {
		m <<= 1
	}
	inner, err := NewFFT(m)
	if err != nil {
		return nil, err
	}
	b := &bluestein{n: n, chirp: make([]complex128, n), bfft: make([]complex128, m), inner: inner}
	for k := range n {
		// k² mod 2n keeps the angle exact for large k.
		k2 := (int64(k) * int64(k)) % int64(2*n)
		b.chirp[k] = cmplx.Rect(1, -math.Pi*float64(k2)/float64(n))
	}
	tmp := make([]complex128, m)
	tmp[0] = cmplx.Conj(b.chirp[0])
	for k := 1; k < n; k++ {
		tmp[k] = cmplx.Conj(b.chirp[k])
		tmp[m-k] = tmp[k]
	}
	inner.Transform(b.bfft, tmp)
	return b, nil
}

func (b *bluestein) transform(dst, src []complex128) {
	m := len(b.bfft)
	a := make([]complex128, m)
	for k := range b.n {
		a[k] = src[k] * b.chirp[k]
	}
	fa := make([]complex128, m)
	b.inner.Transform(fa, a)
	for i := range fa {
		fa[i] *= b.bfft[i]
	}
	b.inner.Inverse(a, fa)
	for k := range b.n {
		dst[k] = a[k] * b.chirp[k]
	}
}

// realFFT is the DFT of n real samples (n even) through a complex FFT of
// n/2 points: z[j] = x[2j] + i·x[2j+1], then the even/odd split
// X[k] = E[k] + e^{-2πik/n}·O[k] with E, O recovered from Z[k] and
// conj(Z[n/2-k]). Odd n uses a full complex FFT.
type realFFT struct {
	n    int
	half *FFT
	tw   []complex128 // e^{-2πik/n}, k < n/2
}

func newRealFFT(n int) (*realFFT, error) {
	r := &realFFT{n: n}
	size := n
	if n%2 == 0 {
		size = n / 2
		r.tw = make([]complex128, n/2)
		for k := range r.tw {
			r.tw[k] = cmplx.Rect(1, -2*math.Pi*float64(k)/float64(n))
		}
	}
	var err error
	r.half, err = NewFFT(size)
	return r, err
}

// workLen is the length of the work buffer transform needs.
func (r *realFFT) workLen() int { return 2 * r.half.n }

// transform writes X[0..n/2] of real src into dst (length n/2+1), using
// work (length workLen).
func (r *realFFT) transform(dst []complex128, src []float64, work []complex128) {
	h := r.half.n
	z, zf := work[:h], work[h:2*h]
	if r.tw == nil { // odd n
		for j, v := range src {
			z[j] = complex(v, 0)
		}
		r.half.Transform(zf, z)
		copy(dst, zf[:r.n/2+1])
		return
	}
	for j := range h {
		z[j] = complex(src[2*j], src[2*j+1])
	}
	r.half.Transform(zf, z)
	dst[0] = complex(real(zf[0])+imag(zf[0]), 0)
	dst[h] = complex(real(zf[0])-imag(zf[0]), 0)
	for k := 1; k < h; k++ {
		a, b := zf[k], cmplx.Conj(zf[h-k])
		e := (a + b) * 0.5
		o := (a - b) * complex(0, -0.5) // (a - b) / (2i)
		dst[k] = e + r.tw[k]*o
	}
}
