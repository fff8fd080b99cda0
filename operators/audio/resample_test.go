package audio

import (
	"fmt"
	"math"
	"testing"
)

func tone(n, rate int, hz, amp float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(amp * math.Sin(2*math.Pi*hz*float64(i)/float64(rate)))
	}
	return x
}

// dftAmplitude is the amplitude of the sinusoid at DFT bin k of x (k not
// 0 or len/2): 2|X[k]|/N, in float64.
func dftAmplitude(x []float32, k int) float64 {
	var re, im float64
	n := len(x)
	for j, v := range x {
		a := 2 * math.Pi * float64((j*k)%n) / float64(n)
		re += float64(v) * math.Cos(a)
		im -= float64(v) * math.Sin(a)
	}
	return 2 * math.Hypot(re, im) / float64(n)
}

func energy(x []float32) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return e
}

// The output is measured on 1600 samples (0.1 s at 16 kHz) from the
// middle, where the filter sees no edge: a 1 kHz tone is exactly 100
// cycles there, so it sits in DFT bin 100 with no leakage.
const probeN, probeStart = 1600, 8000

func TestResamplePreservesTone(t *testing.T) {
	for _, from := range []int{48000, 44100, 22050, 32000, 8000, 44101} {
		t.Run(fmt.Sprint(from), func(t *testing.T) {
			const amp = 0.8
			x := tone(from, from, 1000, amp) // 1 s
			y, err := Resample(x, from, 16000)
			if err != nil {
				t.Fatal(err)
			}
			if len(y) != 16000 {
				t.Fatalf("%d samples, want 16000", len(y))
			}
			seg := y[probeStart : probeStart+probeN]
			a := dftAmplitude(seg, 100)
			if math.Abs(a-amp) > amp*1e-3 {
				t.Errorf("amplitude at 1 kHz = %.6f, want %.6f (±0.1%%)", a, amp)
			}
			// All the energy is at 1 kHz: the rest is more than 60 dB down.
			rest := energy(seg) - a*a/2*probeN
			if ratio := rest / (a * a / 2 * probeN); ratio > 1e-6 {
				t.Errorf("energy off the tone: %.3g of the tone's (%.1f dB)", ratio, 10*math.Log10(ratio))
			}
		})
	}
}

func TestResampleRejectsAboveNyquist(t *testing.T) {
	// Tones above 8 kHz would alias into the 16 kHz output at |f - 16k|.
	for _, tc := range []struct {
		from      int
		hz, alias float64
	}{
		{48000, 10000, 6000},
		{48000, 8500, 7500},
		{44100, 9000, 7000},
		{22050, 10000, 6000},
		{44101, 12000, 4000},
	} {
		t.Run(fmt.Sprintf("%d/%.0f", tc.from, tc.hz), func(t *testing.T) {
			const amp = 0.8
			y, err := Resample(tone(tc.from, tc.from, tc.hz, amp), tc.from, 16000)
			if err != nil {
				t.Fatal(err)
			}
			seg := y[probeStart : probeStart+probeN]
			k := int(tc.alias * probeN / 16000)
			a := dftAmplitude(seg, k)
			db := 20 * math.Log10(a/amp)
			if db > -40 {
				t.Errorf("alias at %.0f Hz is %.1f dB, want < -40 dB", tc.alias, db)
			}
			rms := math.Sqrt(energy(seg) / probeN)
			if rdb := 20 * math.Log10(rms/(amp/math.Sqrt2)); rdb > -40 {
				t.Errorf("output level %.1f dB, want < -40 dB", rdb)
			}
			t.Logf("alias %.1f dB, total %.1f dB", db, 20*math.Log10(rms/(amp/math.Sqrt2)))
		})
	}
}

func TestResampleUpsampleRemovesImages(t *testing.T) {
	// 8 kHz → 16 kHz: zero-stuffing would image 1 kHz at 7 kHz.
	y, err := Resample(tone(8000, 8000, 1000, 0.8), 8000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	seg := y[probeStart : probeStart+probeN]
	if a := dftAmplitude(seg, 700); 20*math.Log10(a/0.8) > -60 {
		t.Errorf("image at 7 kHz: %.1f dB", 20*math.Log10(a/0.8))
	}
}

func TestResampleDCAndIdentity(t *testing.T) {
	x := make([]float32, 4410)
	for i := range x {
		x[i] = 0.25
	}
	y, _ := Resample(x, 44100, 16000)
	if len(y) != 1600 {
		t.Fatalf("len %d, want 1600", len(y))
	}
	for i := 200; i < 1400; i++ {
		if math.Abs(float64(y[i])-0.25) > 1e-6 {
			t.Fatalf("DC sample %d = %v, want 0.25", i, y[i])
		}
	}
	same, _ := Resample(x[:7], 16000, 16000)
	for i := range same {
		if same[i] != x[i] {
			t.Fatal("same-rate resample changed the samples")
		}
	}
	r, _ := NewResampler(44100, 16000, ResampleOptions{})
	for n, want := range map[int]int{0: 0, 1: 1, 441: 160, 442: 161, 44100: 16000} {
		if got := r.OutputLen(n); got != want {
			t.Errorf("OutputLen(%d) = %d, want %d", n, got, want)
		}
	}
	for _, bad := range [][2]int{{0, 16000}, {16000, 0}, {-1, 8000}, {MaxSampleRate + 1, 16000}} {
		if _, err := Resample(x, bad[0], bad[1]); err == nil {
			t.Errorf("Resample %v succeeded", bad)
		}
	}
	for _, o := range []ResampleOptions{{ZeroCrossings: -1}, {Rolloff: 1.5}, {Beta: -2}} {
		if _, err := NewResampler(48000, 16000, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

func BenchmarkResample(b *testing.B) {
	for _, from := range []int{48000, 44100} {
		b.Run(fmt.Sprintf("%d-16000/10s", from), func(b *testing.B) {
			r, _ := NewResampler(from, 16000, ResampleOptions{})
			x := tone(from*10, from, 440, 0.5)
			b.ReportAllocs()
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				r.Resample(x)
			}
			b.ReportMetric(10*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
		})
	}
}

// The documented band edges of the default filter: flat within 0.01 dB up
// to 0.85 × the output Nyquist (6.8 kHz), more than 60 dB down just above
// the output Nyquist (8.1 kHz aliases to 7.9 kHz).
func TestResampleBandEdges(t *testing.T) {
	for _, from := range []int{48000, 44100, 22050} {
		y, _ := Resample(tone(from, from, 6800, 0.8), from, 16000)
		if a := dftAmplitude(y[probeStart:probeStart+probeN], 680); math.Abs(20*math.Log10(a/0.8)) > 0.01 {
			t.Errorf("%d Hz: 6.8 kHz at %.4f dB, want within 0.01 dB", from, 20*math.Log10(a/0.8))
		}
		y, _ = Resample(tone(from, from, 8100, 0.8), from, 16000)
		if a := dftAmplitude(y[probeStart:probeStart+probeN], 790); 20*math.Log10(a/0.8) > -60 {
			t.Errorf("%d Hz: 8.1 kHz aliases at %.1f dB, want < -60 dB", from, 20*math.Log10(a/0.8))
		}
	}
}
