package audio

import (
	"fmt"
	"math"
)

// ResampleOptions shape the resampler's low-pass filter. Zero values take
// the defaults, which keep a tone at or below 0.85 × the lower Nyquist
// within 0.01 dB and put everything above the lower Nyquist more than
// 60 dB down.
type ResampleOptions struct {
	// ZeroCrossings of the sinc on each side (default 48): the filter's
	// length, and so its transition band's width.
	ZeroCrossings int
	// Rolloff is the cutoff as a fraction of the lower Nyquist (default
	// 0.94), leaving room for the transition band below it.
	Rolloff float64
	// Beta is the Kaiser window's shape (default 10, about 100 dB of
	// side-lobe suppression).
	Beta float64
}

func (o ResampleOptions) withDefaults() (ResampleOptions, error) {
	if o.ZeroCrossings == 0 {
		o.ZeroCrossings = 48
	}
	if o.Rolloff == 0 {
		o.Rolloff = 0.94
	}
	if o.Beta == 0 {
		o.Beta = 10
	}
	if o.ZeroCrossings < 1 || o.ZeroCrossings > 1024 || !(o.Rolloff > 0 && o.Rolloff <= 1) || !(o.Beta >= 0 && o.Beta <= 50) {
		return o, fmt.Errorf("audio: resample options %+v out of range", o)
	}
	return o, nil
}

// maxPhases bounds the polyphase table; rate pairs that need more phases
// (to/gcd(from, to) above maxPhases: 44101 → 16000, say) interpolate a
// finely sampled kernel instead.
const (
	maxPhases   = 2048
	finePerUnit = 1024 // kernel samples per input sample in the fine table
)

// Resampler converts a sample rate with a band-limited (Kaiser-windowed
// sinc) polyphase filter: for rates from → to reduced to L/M by their gcd,
// output j is the filter centred at input time j·M/L, whose fractional part
// takes one of L values — one precomputed set of taps ("phase") each. The
// cutoff is Rolloff × min(from, to)/2, so downsampling removes what would
// alias and upsampling removes the images. Outside the input, samples are
// zero. A Resampler is immutable and safe for concurrent use.
type Resampler struct {
	from, to int
	up, down int // L, M
	half     int // taps on each side: ceil(ZeroCrossings / cutoff)
	phases   [][]float32
	fine     []float32 // kernel at finePerUnit samples per input sample, when phases is nil
	cutoff   float64
	opts     ResampleOptions
}

// NewResampler prepares a resampler from rate from to rate to (Hz).
func NewResampler(from, to int, opts ResampleOptions) (*Resampler, error) {
	if from < 1 || to < 1 || from > MaxSampleRate || to > MaxSampleRate {
		return nil, fmt.Errorf("audio: resample %d Hz -> %d Hz: rates must be 1..%d", from, to, MaxSampleRate)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	g := gcd(from, to)
	r := &Resampler{from: from, to: to, up: to / g, down: from / g, opts: o}
	if from == to {
		return r, nil
	}
	// Cutoff in cycles per input sample, relative to the input's Nyquist.
	r.cutoff = o.Rolloff * math.Min(1, float64(to)/float64(from))
	r.half = int(math.Ceil(float64(o.ZeroCrossings) / r.cutoff))
	i0beta := besselI0(o.Beta)
	width := float64(r.half)
	if r.up <= maxPhases {
		r.phases = make([][]float32, r.up)
		taps := make([]float64, 2*r.half)
		for p := range r.up {
			frac := float64(p) / float64(r.up)
			var sum float64
			for m := range taps {
				// tap m multiplies x[k0 - half + 1 + m]; τ = t - i.
				tau := frac + float64(r.half-1-m)
				taps[m] = r.kernel(tau, width, i0beta)
				sum += taps[m]
			}
			ph := make([]float32, len(taps))
			for m, v := range taps {
				ph[m] = float32(v / sum) // unit DC gain in every phase
			}
			r.phases[p] = ph
		}
		return r, nil
	}
	r.fine = make([]float32, r.half*finePerUnit+2)
	for i := range r.fine {
		r.fine[i] = float32(r.kernel(float64(i)/finePerUnit, width, i0beta))
	}
	return r, nil
}

// kernel is the windowed sinc at τ input samples from the output time.
func (r *Resampler) kernel(tau, width, i0beta float64) float64 {
	if math.Abs(tau) >= width {
		return 0
	}
	x := tau / width
	w := besselI0(r.opts.Beta*math.Sqrt(1-x*x)) / i0beta
	return r.cutoff * sinc(r.cutoff*tau) * w
}

// OutputLen is the number of samples Resample makes from n:
// ceil(n · to / from).
func (r *Resampler) OutputLen(n int) int {
	return int((int64(n)*int64(r.up) + int64(r.down) - 1) / int64(r.down))
}

// Resample converts x, returning a new slice.
func (r *Resampler) Resample(x []float32) []float32 {
	out := make([]float32, r.OutputLen(len(x)))
	if r.from == r.to {
		copy(out, x)
		return out
	}
	n := len(x)
	var taps []float32
	if r.phases == nil {
		taps = make([]float32, 2*r.half)
	}
	for j := range out {
		pos := int64(j) * int64(r.down)
		k0 := int(pos / int64(r.up))
		p := int(pos % int64(r.up))
		if r.phases != nil {
			taps = r.phases[p]
		} else {
			r.fineTaps(taps, float64(p)/float64(r.up))
		}
		lo := k0 - r.half + 1
		m0, m1 := 0, len(taps)
		if lo < 0 {
			m0 = -lo
		}
		if lo+m1 > n {
			m1 = n - lo
		}
		var acc float32
		if m0 < m1 {
			xs := x[lo+m0 : lo+m1]
			ts := taps[m0:m1]
			acc = dot(xs, ts)
		}
		out[j] = acc
	}
	return out
}

// fineTaps fills taps for fractional offset frac from the fine kernel
// table by linear interpolation, normalized to unit DC gain.
func (r *Resampler) fineTaps(taps []float32, frac float64) {
	var sum float64
	for m := range taps {
		tau := math.Abs(frac + float64(r.half-1-m))
		f := tau * finePerUnit
		i := int(f)
		if i+1 >= len(r.fine) {
			taps[m] = 0
			continue
		}
		w := float32(f - float64(i))
		taps[m] = r.fine[i]*(1-w) + r.fine[i+1]*w
		sum += float64(taps[m])
	}
	inv := float32(1 / sum)
	for m := range taps {
		taps[m] *= inv
	}
}

// dot is a 4-way unrolled float32 dot product (independent partial sums
// let the CPU overlap the multiply-adds).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Resample converts x from rate from to rate to with the default filter.
func Resample(x []float32, from, to int) ([]float32, error) {
	r, err := NewResampler(from, to, ResampleOptions{})
	if err != nil {
		return nil, err
	}
	return r.Resample(x), nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the modified Bessel function of the first kind, order 0, by
// its power series (converges for every x; the Kaiser window needs
// x ≤ Beta).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1; k < 500; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}
