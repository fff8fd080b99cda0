package audio

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func TestSlaneyMelScale(t *testing.T) {
	// From the Slaney formulas: 200/3 Hz per mel below 1 kHz (so 1 kHz is
	// mel 15), then 27 mels per factor 6.4 (so 6.4 kHz is mel 42).
	for hz, mel := range map[float64]float64{0: 0, 200.0 / 3: 1, 500: 7.5, 1000: 15, 6400: 42, 6400 * 6.4: 69,
		8000: 15 + 27*math.Log(8)/math.Log(6.4)} {
		if got := HzToMel(hz); math.Abs(got-mel) > 1e-12 {
			t.Errorf("HzToMel(%v) = %v, want %v", hz, got, mel)
		}
		if got := MelToHz(mel); math.Abs(got-hz) > 1e-9*(1+hz) {
			t.Errorf("MelToHz(%v) = %v, want %v", mel, got, hz)
		}
	}
}

// slaneyFilterbank is librosa.filters.mel written out again in float64,
// the way librosa does it (vectorised ramps over fdiff), straight from the
// formulas: mel(f) = f/f_sp below 1 kHz with f_sp = 200/3, and
// 15 + ln(f/1000)/logstep above, logstep = ln(6.4)/27.
func slaneyFilterbank(sr, nFFT, nMels int, fmin, fmax float64) [][]float64 {
	fsp := 200.0 / 3
	logstep := math.Log(6.4) / 27
	hzToMel := func(f float64) float64 {
		if f < 1000 {
			return f / fsp
		}
		return 1000/fsp + math.Log(f/1000)/logstep
	}
	melToHz := func(m float64) float64 {
		if m < 1000/fsp {
			return fsp * m
		}
		return 1000 * math.Exp(logstep*(m-1000/fsp))
	}
	bins := 1 + nFFT/2
	fftfreqs := make([]float64, bins) // np.fft.rfftfreq(n_fft, 1/sr)
	for k := range fftfreqs {
		fftfreqs[k] = float64(sr) / 2 * float64(k) / float64(bins-1)
	}
	lo, hi := hzToMel(fmin), hzToMel(fmax)
	melF := make([]float64, nMels+2) // mel_frequencies(n_mels + 2, fmin, fmax)
	for i := range melF {
		melF[i] = melToHz(lo + float64(i)*(hi-lo)/float64(nMels+1))
	}
	weights := make([][]float64, nMels)
	for i := range weights {
		weights[i] = make([]float64, bins)
		fdiffLo, fdiffHi := melF[i+1]-melF[i], melF[i+2]-melF[i+1]
		enorm := 2 / (melF[i+2] - melF[i])
		for k, f := range fftfreqs {
			lower := -(melF[i] - f) / fdiffLo
			upper := (melF[i+2] - f) / fdiffHi
			weights[i][k] = math.Max(0, math.Min(lower, upper)) * enorm
		}
	}
	return weights
}

func TestMelFilterbankAgainstSlaneyFormulas(t *testing.T) {
	for _, tc := range []struct {
		sr, nFFT, nMels int
		fmin, fmax      float64
	}{
		{16000, 400, 128, 0, 8000}, // Qwen2.5-Omni, Whisper v3
		{16000, 400, 80, 0, 8000},  // Whisper v1/v2
		{22050, 1024, 80, 0, 8000}, // a vocoder's
		{44100, 2048, 64, 300, 16000},
	} {
		t.Run(fmt.Sprintf("%d/%d/%d", tc.sr, tc.nFFT, tc.nMels), func(t *testing.T) {
			got, err := MelFilterbank(tc.sr, tc.nFFT, tc.nMels, tc.fmin, tc.fmax)
			if err != nil {
				t.Fatal(err)
			}
			want := slaneyFilterbank(tc.sr, tc.nFFT, tc.nMels, tc.fmin, tc.fmax)
			for i := range want {
				nonzero := 0
				for k := range want[i] {
					if math.Abs(got[i][k]-want[i][k]) > 1e-12*math.Max(1, want[i][k]) {
						t.Fatalf("filter %d bin %d = %.17g, want %.17g", i, k, got[i][k], want[i][k])
					}
					if got[i][k] > 0 {
						nonzero++
					}
				}
				if nonzero == 0 {
					t.Errorf("filter %d is empty", i)
				}
			}
		})
	}
	// The area of each triangle in Hz is 1 (Slaney normalization), so for
	// wide filters the sum over bins × bin width is close to 1.
	w, _ := MelFilterbank(16000, 400, 80, 0, 8000)
	for _, i := range []int{60, 70, 79} {
		var s float64
		for _, v := range w[i] {
			s += v * 40 // 16000/400 Hz per bin
		}
		if math.Abs(s-1) > 0.02 {
			t.Errorf("filter %d: area %v, want ≈ 1", i, s)
		}
	}
	for _, bad := range [][5]float64{{0, 400, 80, 0, 8000}, {16000, 400, 0, 0, 8000}, {16000, 400, 80, 0, 9000}, {16000, 400, 80, 500, 500}} {
		if _, err := MelFilterbank(int(bad[0]), int(bad[1]), int(bad[2]), bad[3], bad[4]); err == nil {
			t.Errorf("MelFilterbank%v succeeded", bad)
		}
	}
}

// naiveLogMel is Whisper's log_mel_spectrogram in float64 with a direct
// DFT, reflect padding by hand and the test's own filterbank.
func naiveLogMel(x []float32, nMels int, dropLast bool) [][]float64 {
	const nFFT, hop = 400, 160
	n := len(x)
	padded := make([]float64, n+nFFT)
	for i := range padded {
		j := i - nFFT/2
		if n == 1 {
			j = 0
		}
		for j < 0 || j >= n { // mirror without repeating the edge, repeatedly
			if j < 0 {
				j = -j
			}
			if j >= n {
				j = 2*(n-1) - j
			}
		}
		padded[i] = float64(x[j])
	}
	frames := 1 + n/hop
	if dropLast {
		frames--
	}
	filt := slaneyFilterbank(16000, nFFT, nMels, 0, 8000)
	out := make([][]float64, nMels)
	for i := range out {
		out[i] = make([]float64, frames)
	}
	peak := math.Inf(-1)
	for t := range frames {
		power := make([]float64, nFFT/2+1)
		for k := range power {
			var re, im float64
			for j := range nFFT {
				w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(j)/nFFT)
				a := 2 * math.Pi * float64((j*k)%nFFT) / nFFT
				v := padded[t*hop+j] * w
				re += v * math.Cos(a)
				im -= v * math.Sin(a)
			}
			power[k] = re*re + im*im
		}
		for i := range nMels {
			var e float64
			for k, p := range power {
				e += filt[i][k] * p
			}
			out[i][t] = math.Log10(math.Max(e, 1e-10))
			peak = math.Max(peak, out[i][t])
		}
	}
	for i := range out {
		for t := range out[i] {
			out[i][t] = (math.Max(out[i][t], peak-8) + 4) / 4
		}
	}
	return out
}

func TestLogMelAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 1234)
	for i := range x {
		// a chirp plus noise, with a quiet stretch to exercise the clamp
		v := 0.5*math.Sin(2*math.Pi*(200+float64(i))*float64(i)/16000) + 0.05*rng.NormFloat64()
		if i > 600 && i < 900 {
			v *= 1e-6
		}
		x[i] = float32(v)
	}
	for _, tc := range []struct {
		nMels    int
		dropLast bool
	}{{128, false}, {80, false}, {128, true}} {
		t.Run(fmt.Sprintf("%d/drop=%v", tc.nMels, tc.dropLast), func(t *testing.T) {
			cfg := DefaultMelConfig()
			cfg.NMels, cfg.DropLastFrame = tc.nMels, tc.dropLast
			m, err := NewLogMel(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Compute(x)
			if err != nil {
				t.Fatal(err)
			}
			want := naiveLogMel(x, tc.nMels, tc.dropLast)
			if s := got.Shape(); s[0] != tc.nMels || s[1] != len(want[0]) {
				t.Fatalf("shape %v, want [%d %d]", s, tc.nMels, len(want[0]))
			}
			g := got.Float32s()
			frames := len(want[0])
			for i := range want {
				for f := range want[i] {
					if d := math.Abs(float64(g[i*frames+f]) - want[i][f]); d > 2e-5 {
						t.Fatalf("mel %d frame %d = %v, want %v", i, f, g[i*frames+f], want[i][f])
					}
				}
			}
		})
	}
}

func TestLogMelPureTone(t *testing.T) {
	m, err := NewLogMel(DefaultMelConfig())
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 16000) // 1 s of 1 kHz
	for i := range x {
		x[i] = float32(0.5 * math.Sin(2*math.Pi*1000*float64(i)/16000))
	}
	mel, err := m.Compute(x)
	if err != nil {
		t.Fatal(err)
	}
	if s := mel.Shape(); s[0] != 128 || s[1] != 101 {
		t.Fatalf("shape %v, want [128 101] (1 + 16000/160 frames)", s)
	}
	// 1 kHz is FFT bin 25 exactly (40 Hz bins), and 25 cycles fill the
	// 400-sample window, so the Hann window's spectrum puts power 1 at bin
	// 25 and 1/4 at bins 24 and 26, nothing elsewhere. The peak mel bin is
	// then the argmax of w[25] + (w[24] + w[26])/4 over the filters.
	ref := slaneyFilterbank(16000, 400, 128, 0, 8000)
	want, best := -1, 0.0
	for i, w := range ref {
		if e := w[25] + (w[24]+w[26])/4; e > best {
			want, best = i, e
		}
	}
	lo, hi := HzToMel(0), HzToMel(8000)
	center := MelToHz(lo + (hi-lo)*float64(want+1)/129)
	if math.Abs(center-1000) > 50 {
		t.Fatalf("expected peak filter %d is centred at %v Hz", want, center)
	}
	v := mel.Float32s()
	for f := 5; f < 96; f++ { // away from the padded edges
		arg := 0
		for i := range 128 {
			if v[i*101+f] > v[arg*101+f] {
				arg = i
			}
		}
		if arg != want {
			t.Fatalf("frame %d peaks at mel bin %d, want %d (centre %.0f Hz)", f, arg, want, center)
		}
	}
	// Far from the tone the clamp holds everything at max - 8 (in log10),
	// that is 2 below the peak after the (x+4)/4 scaling.
	var peak float32
	for _, x := range v {
		peak = max(peak, x)
	}
	if got := v[127*101+50]; math.Abs(float64(got-(peak-2))) > 1e-6 {
		t.Errorf("top mel bin = %v, want the clamp floor %v", got, peak-2)
	}
}

func TestLogMelFrames(t *testing.T) {
	m, _ := NewLogMel(DefaultMelConfig())
	cfg := DefaultMelConfig()
	cfg.DropLastFrame = true
	drop, _ := NewLogMel(cfg)
	for _, n := range []int{1, 2, 100, 159, 160, 161, 480000} {
		if got, want := m.Frames(n), 1+n/160; got != want {
			t.Errorf("Frames(%d) = %d, want %d", n, got, want)
		}
		if got, want := drop.Frames(n), n/160; got != want {
			t.Errorf("drop: Frames(%d) = %d, want %d", n, got, want)
		}
	}
	// Inputs shorter than the reflection pad work (numpy's reflect mode
	// mirrors again), and match the naive version.
	for _, n := range []int{1, 2, 50, 199, 200, 201} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*0.7)) * 0.3
		}
		got, err := m.Compute(x)
		if err != nil {
			t.Fatal(err)
		}
		if got.Shape()[1] != 1+n/160 {
			t.Errorf("n=%d: %d frames", n, got.Shape()[1])
		}
		want := naiveLogMel(x, 128, false)
		g := got.Float32s()
		for i := range want {
			for f := range want[i] {
				if d := math.Abs(float64(g[i*len(want[i])+f]) - want[i][f]); d > 2e-5 {
					t.Fatalf("n=%d: mel %d frame %d = %v, want %v", n, i, f, g[i*len(want[i])+f], want[i][f])
				}
			}
		}
	}
	if _, err := m.Compute(nil); err == nil {
		t.Error("Compute(nil) succeeded")
	}
	if _, err := drop.Compute(make([]float32, 100)); err == nil {
		t.Error("DropLastFrame with fewer than hop samples succeeded")
	}
}

func TestReflectIndex(t *testing.T) {
	// np.pad([0, 1, 2, 3], 3, mode="reflect") = [3 2 1 0 1 2 3 2 1 0], and
	// beyond one period it repeats.
	want := []int{3, 2, 1, 0, 1, 2, 3, 2, 1, 0}
	for i, w := range want {
		if got := reflectIndex(i-3, 4); got != w {
			t.Errorf("reflectIndex(%d, 4) = %d, want %d", i-3, got, w)
		}
	}
	for i := -20; i < 20; i++ {
		if reflectIndex(i, 1) != 0 {
			t.Fatal("n=1 must map to 0")
		}
		if a, b := reflectIndex(i, 3), reflectIndex(i+4, 3); a != b {
			t.Fatalf("period 4 for n=3: %d vs %d", a, b)
		}
	}
}

func TestLogMelParallelMatchesSerial(t *testing.T) {
	x := make([]float32, 16000*5)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 0.1)
	}
	cfg := DefaultMelConfig()
	cfg.Workers = 1
	serial, _ := NewLogMel(cfg)
	cfg.Workers = 4
	par, _ := NewLogMel(cfg)
	a, _ := serial.Compute(x)
	b, _ := par.Compute(x)
	av, bv := a.Float32s(), b.Float32s()
	for i := range av {
		if av[i] != bv[i] {
			t.Fatalf("element %d: serial %v, parallel %v", i, av[i], bv[i])
		}
	}
}

// BenchmarkLogMel reports the real-time factor: seconds of 16 kHz audio
// turned into 128-bin log-mel per second of compute.
func BenchmarkLogMel(b *testing.B) {
	for _, secs := range []int{1, 30} {
		for _, workers := range []int{1, 0} {
			name := fmt.Sprintf("%ds/workers=%d", secs, workers)
			if workers == 0 {
				name = fmt.Sprintf("%ds/workers=GOMAXPROCS(%d)", secs, runtime.GOMAXPROCS(0))
			}
			b.Run(name, func(b *testing.B) {
				cfg := DefaultMelConfig()
				cfg.Workers = workers
				m, _ := NewLogMel(cfg)
				x := make([]float32, 16000*secs)
				rng := rand.New(rand.NewPCG(1, 1))
				for i := range x {
					x[i] = float32(rng.NormFloat64() * 0.1)
				}
				b.ReportAllocs()
				b.SetBytes(int64(4 * len(x)))
				start := time.Now()
				for b.Loop() {
					if _, err := m.Compute(x); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(secs)*float64(b.N)/time.Since(start).Seconds(), "x_realtime")
			})
		}
	}
}
