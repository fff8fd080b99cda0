package audio_test

import (
	"bytes"
	"fmt"
	"math"

	"github.com/omniflow-go/omniflow/operators/audio"
)

func Example() {
	// A 0.5 s, 440 Hz tone at 44.1 kHz, as a WAV file.
	tone := make([]float32, 22050)
	for i := range tone {
		tone[i] = float32(0.3 * math.Sin(2*math.Pi*440*float64(i)/44100))
	}
	var wav bytes.Buffer
	if err := audio.WriteWAV(&wav, tone, 44100, audio.PCM16); err != nil {
		panic(err)
	}

	samples, info, err := audio.ReadWAV(&wav)
	if err != nil {
		panic(err)
	}
	samples, err = audio.Resample(samples, info.SampleRate, 16000)
	if err != nil {
		panic(err)
	}
	mel, err := audio.NewLogMel(audio.DefaultMelConfig())
	if err != nil {
		panic(err)
	}
	feats, err := mel.Compute(samples)
	if err != nil {
		panic(err)
	}
	fmt.Println(info.SampleRate, "Hz,", len(samples), "samples at 16 kHz, log-mel", feats.Shape())
	// Output: 44100 Hz, 8000 samples at 16 kHz, log-mel [128 51]
}
