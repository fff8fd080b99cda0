// Package audio is the audio front end and back end of the omni stages:
// WAV files in and out, sample-rate conversion, and the Whisper-style
// log-mel spectrogram that Qwen2-Audio's and Qwen2.5-Omni's audio encoders
// take.
//
//	samples, info, err := audio.ReadWAV(f)                        // mono float32, any rate
//	samples, err = audio.Resample(samples, info.SampleRate, 16000) // band-limited
//	mel, _ := audio.NewLogMel(audio.DefaultMelConfig())             // 128 bins, 25 ms / 10 ms
//	feats, err := mel.Compute(samples)                             // *tensor.Tensor [128, 1+len/160]
//	...
//	err = audio.WriteWAV(out, speech, 24000, audio.PCM16)          // the vocoder's output
//
// Everything is pure Go: the FFT is mixed radix (radix 2, 3, 4, 5 and
// generic butterflies; Bluestein for sizes with large prime factors), and
// n_fft = 400 runs as a 200-point complex FFT with a real-input split.
// Reference values in the tests come from float64 formulas (a naive DFT,
// the Slaney mel formulas, DFT probes of resampled tones).
package audio
