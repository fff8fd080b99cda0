package audio

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/omniflow-go/omniflow/tensor"
)

// The Slaney mel scale (librosa's htk=False, Auditory Toolbox): linear
// below 1 kHz at 200/3 Hz per mel, logarithmic above, with 27 mels per
// factor of 6.4 in frequency.
const (
	melFSP       = 200.0 / 3
	melMinLogHz  = 1000.0
	melMinLogMel = melMinLogHz / melFSP // 15
)

var melLogStep = math.Log(6.4) / 27

// HzToMel converts a frequency to the Slaney mel scale.
func HzToMel(hz float64) float64 {
	if hz >= melMinLogHz {
		return melMinLogMel + math.Log(hz/melMinLogHz)/melLogStep
	}
	return hz / melFSP
}

// MelToHz is the inverse of HzToMel.
func MelToHz(mel float64) float64 {
	if mel >= melMinLogMel {
		return melMinLogHz * math.Exp(melLogStep*(mel-melMinLogMel))
	}
	return melFSP * mel
}

// MelFilterbank returns librosa.filters.mel(sr=sampleRate, n_fft=nFFT,
// n_mels=nMels, fmin, fmax, htk=False, norm="slaney") — the filters
// Whisper and Qwen2-Audio use — as [nMels][nFFT/2+1] weights: triangles
// between nMels+2 points spaced evenly on the Slaney mel scale from fMin to
// fMax, each scaled by 2/(upper − lower edge in Hz) for equal area.
func MelFilterbank(sampleRate, nFFT, nMels int, fMin, fMax float64) ([][]float64, error) {
	switch {
	case sampleRate < 1 || nFFT < 2 || nMels < 1:
		return nil, fmt.Errorf("audio: mel filterbank: rate %d, n_fft %d, n_mels %d", sampleRate, nFFT, nMels)
	case !(fMin >= 0 && fMin < fMax && fMax <= float64(sampleRate)/2):
		return nil, fmt.Errorf("audio: mel filterbank: want 0 ≤ fmin (%v) < fmax (%v) ≤ %v", fMin, fMax, float64(sampleRate)/2)
	}
	bins := nFFT/2 + 1
	fft := make([]float64, bins)
	for k := range fft {
		fft[k] = float64(k) * float64(sampleRate) / float64(nFFT)
	}
	lo, hi := HzToMel(fMin), HzToMel(fMax)
	pts := make([]float64, nMels+2)
	for i := range pts {
		pts[i] = MelToHz(lo + (hi-lo)*float64(i)/float64(nMels+1))
	}
	w := make([][]float64, nMels)
	for i := range w {
		w[i] = make([]float64, bins)
		left, center, right := pts[i], pts[i+1], pts[i+2]
		norm := 2 / (right - left)
		for k, f := range fft {
			lower := (f - left) / (center - left)
			upper := (right - f) / (right - center)
			if v := math.Min(lower, upper); v > 0 {
				w[i][k] = v * norm
			}
		}
	}
	return w, nil
}

// MelConfig configures a log-mel spectrogram.
type MelConfig struct {
	SampleRate int     // Hz the input must have (16000)
	NFFT       int     // window and FFT length (400: 25 ms)
	Hop        int     // frame step (160: 10 ms)
	NMels      int     // mel bins (128 for Qwen2.5-Omni and Whisper v3, 80 for Whisper v1/v2)
	FMin, FMax float64 // filterbank range; FMax 0 means SampleRate/2
	// DropLastFrame drops the last STFT frame as Whisper's
	// log_mel_spectrogram and Hugging Face's WhisperFeatureExtractor do
	// (stft[..., :-1]), giving len/hop frames instead of 1 + len/hop; the
	// max for the dynamic-range clamp is then taken without it.
	DropLastFrame bool
	// Workers bounds the goroutines Compute uses (0: GOMAXPROCS).
	Workers int
}

// DefaultMelConfig is Qwen2.5-Omni's audio front end (Whisper's with 128
// mel bins): 16 kHz, 25 ms windows, 10 ms hop.
func DefaultMelConfig() MelConfig {
	return MelConfig{SampleRate: 16000, NFFT: 400, Hop: 160, NMels: 128}
}

// LogMel computes Whisper-style log-mel spectrograms. It is immutable and
// safe for concurrent use.
type LogMel struct {
	cfg    MelConfig
	window []float64 // periodic Hann
	fft    *realFFT
	// filters, sparse: bank i is weights[i] over FFT bins first[i]...
	first   []int
	weights [][]float64
	dense   [][]float64
}

// NewLogMel prepares the window, FFT and filterbank for cfg.
func NewLogMel(cfg MelConfig) (*LogMel, error) {
	if cfg.FMax == 0 {
		cfg.FMax = float64(cfg.SampleRate) / 2
	}
	if cfg.NFFT < 2 || cfg.NFFT > 1<<16 || cfg.Hop < 1 || cfg.NMels > 4096 || cfg.Workers < 0 {
		return nil, fmt.Errorf("audio: log-mel config n_fft %d, hop %d, n_mels %d, workers %d", cfg.NFFT, cfg.Hop, cfg.NMels, cfg.Workers)
	}
	dense, err := MelFilterbank(cfg.SampleRate, cfg.NFFT, cfg.NMels, cfg.FMin, cfg.FMax)
	if err != nil {
		return nil, err
	}
	f, err := newRealFFT(cfg.NFFT)
	if err != nil {
		return nil, err
	}
	m := &LogMel{cfg: cfg, fft: f, dense: dense, window: make([]float64, cfg.NFFT)}
	for i := range m.window {
		// Periodic Hann (torch.hann_window's default): the period is NFFT.
		m.window[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(cfg.NFFT))
	}
	for _, row := range dense {
		lo, hi := 0, 0
		for k, v := range row {
			if v != 0 {
				if hi == 0 {
					lo = k
				}
				hi = k + 1
			}
		}
		m.first = append(m.first, lo)
		m.weights = append(m.weights, row[lo:hi])
	}
	return m, nil
}

// Config returns the configuration (with FMax filled in).
func (m *LogMel) Config() MelConfig { return m.cfg }

// Filters returns the mel filterbank, [NMels][NFFT/2+1]. Do not modify it.
func (m *LogMel) Filters() [][]float64 { return m.dense }

// Frames is the number of frames Compute makes from n ≥ 1 samples: with
// the centred STFT, 1 + (n + 2·(NFFT/2) − NFFT)/hop, which is 1 + n/hop
// for an even NFFT; one fewer with DropLastFrame.
func (m *LogMel) Frames(n int) int {
	if n < 1 {
		return 0
	}
	f := 1 + (n+2*(m.cfg.NFFT/2)-m.cfg.NFFT)/m.cfg.Hop
	if m.cfg.DropLastFrame {
		f--
	}
	return f
}

// Compute returns the log-mel spectrogram of samples (mono, at
// cfg.SampleRate) as a float32 tensor [NMels, frames], computed as
// Whisper's log_mel_spectrogram:
//
//  1. pad NFFT/2 samples on each side by reflection (without repeating the
//     edge sample; numpy's mode="reflect", which also handles inputs
//     shorter than the pad by reflecting again);
//  2. frame t covers padded[t·hop, t·hop+NFFT), times a periodic Hann
//     window; power spectrum |FFT|² of bins 0..NFFT/2;
//  3. mel energies through the Slaney filterbank; log10(max(e, 1e-10));
//  4. x = max(x, max over the whole spectrogram − 8), then (x + 4) / 4.
func (m *LogMel) Compute(samples []float32) (*tensor.Tensor, error) {
	n := len(samples)
	if n == 0 {
		return nil, fmt.Errorf("audio: log-mel of no samples")
	}
	frames := m.Frames(n)
	if frames == 0 {
		return nil, fmt.Errorf("audio: %d samples make no frame with DropLastFrame (hop %d)", n, m.cfg.Hop)
	}
	nMels := m.cfg.NMels
	out := make([]float32, nMels*frames)
	pad := m.cfg.NFFT / 2
	padded := make([]float64, n+2*pad)
	for i := range padded {
		padded[i] = float64(samples[reflectIndex(i-pad, n)])
	}

	workers := m.cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	const minFramesPerWorker = 128
	workers = max(1, min(workers, frames/minFramesPerWorker))
	maxes := make([]float64, workers)
	var wg sync.WaitGroup
	per := (frames + workers - 1) / workers
	for w := range workers {
		lo, hi := w*per, min(frames, (w+1)*per)
		wg.Go(func() { maxes[w] = m.frames(out, padded, frames, lo, hi) })
	}
	wg.Wait()
	peak := math.Inf(-1)
	for _, v := range maxes {
		peak = math.Max(peak, v)
	}
	floor := float32(peak - 8)
	for i, v := range out {
		out[i] = (max(v, floor) + 4) / 4
	}
	return tensor.FromFloat32(out, nMels, frames)
}

// frames computes log10 mel energies of frames [lo, hi) into out (rows of
// length total) and returns their maximum.
func (m *LogMel) frames(out []float32, padded []float64, total, lo, hi int) float64 {
	nfft := m.cfg.NFFT
	buf := make([]float64, nfft)
	spec := make([]complex128, nfft/2+1)
	power := make([]float64, nfft/2+1)
	work := make([]complex128, m.fft.workLen())
	peak := math.Inf(-1)
	for t := lo; t < hi; t++ {
		frame := padded[t*m.cfg.Hop : t*m.cfg.Hop+nfft]
		for i, v := range frame {
			buf[i] = v * m.window[i]
		}
		m.fft.transform(spec, buf, work)
		for k, c := range spec {
			power[k] = real(c)*real(c) + imag(c)*imag(c)
		}
		for i, w := range m.weights {
			p := power[m.first[i] : m.first[i]+len(w)]
			var e float64
			for k, v := range w {
				e += v * p[k]
			}
			l := math.Log10(math.Max(e, 1e-10))
			peak = math.Max(peak, l)
			out[i*total+t] = float32(l)
		}
	}
	return peak
}

// reflectIndex maps i to [0, n) by mirroring at the ends without repeating
// the edge sample (…, 2, 1, 0, 1, 2, …, n-1, n-2, …), periodically.
func reflectIndex(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}
