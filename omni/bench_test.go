package omni

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/omniflow-go/omniflow/operators/nn"
)

// BenchmarkThinkerDecode measures the thinker's decode step over a batch
// of sequences, each attending to 32 to 288 cached positions (a 32-token
// prompt, then up to 256 generated ones, then back): tokens/s is
// batch × steps per second: batch=N for the default tiny preset,
// small/batch=N for the small one.
func BenchmarkThinkerDecode(b *testing.B) {
	for _, preset := range []string{"tiny", "small"} {
		m, err := Preset(preset)
		if err != nil {
			b.Fatal(err)
		}
		d, err := newDecoder(nn.Random(1), "thinker", "model", "lm_head", m.Thinker)
		if err != nil {
			b.Fatal(err)
		}
		for _, batch := range []int{1, 8} {
			name := "batch=" + strconv.Itoa(batch)
			if preset != "tiny" {
				name = preset + "/" + name
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				const prompt, window = 32, 256
				newSegs := func() []segment {
					segs := make([]segment, batch)
					for i := range segs {
						st, err := d.newState(prompt + window)
						if err != nil {
							b.Fatal(err)
						}
						ids := make([]int32, prompt)
						for j := range ids {
							ids[j] = int32((i*7 + j*13) % 256)
						}
						x, _ := d.embedIDs(ctx, ids)
						if _, err := d.forward(ctx, x, []segment{{state: st, rows: prompt}}); err != nil {
							b.Fatal(err)
						}
						segs[i] = segment{state: st, rows: 1}
					}
					return segs
				}
				segs := newSegs()
				ids := make([]int32, batch)
				last := make([]int, batch)
				for i := range last {
					last[i] = i
				}
				b.ReportAllocs()
				b.ResetTimer()
				for n := 0; b.Loop(); n++ {
					if segs[0].state.Len() == prompt+window {
						// Back to the prompt: every step attends to 32..288
						// positions, whatever b.N is.
						for _, s := range segs {
							for _, c := range s.state.caches {
								if err := c.Truncate(prompt); err != nil {
									b.Fatal(err)
								}
							}
						}
					}
					x, err := d.embedIDs(ctx, ids)
					if err != nil {
						b.Fatal(err)
					}
					h, err := d.forward(ctx, x, segs)
					if err != nil {
						b.Fatal(err)
					}
					lg, err := d.logits(ctx, h, last)
					if err != nil {
						b.Fatal(err)
					}
					v := d.cfg.Vocab
					for i := range ids {
						ids[i] = argmax32(lg.Float32s()[i*v:(i+1)*v]) % 256
					}
					x.Release()
					h.Release()
					lg.Release()
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}

// BenchmarkVocoder measures code2wav on 25-frame chunks (the streaming
// default, each with its left context) and reports audio seconds produced
// per compute second (above 1: faster than real time) and the
// conventional real-time factor, rtf: compute time over audio time (below
// 1: faster than real time).
func BenchmarkVocoder(b *testing.B) {
	ctx := context.Background()
	v := testVocoder(b)
	codes := randomCodes(25*8, v.cfg.Codes, 9)
	b.ReportAllocs()
	chunk := 0
	var audio time.Duration
	for b.Loop() {
		s := (chunk % 8) * 25
		chunk++
		pcm, err := v.decodeChunk(ctx, codes, s, s+25)
		if err != nil {
			b.Fatal(err)
		}
		audio += time.Duration(len(pcm)) * time.Second / time.Duration(v.cfg.SampleRate)
	}
	b.ReportMetric(audio.Seconds()/b.Elapsed().Seconds(), "audio-s/s")
	b.ReportMetric(b.Elapsed().Seconds()/audio.Seconds(), "rtf")
}

// BenchmarkEngine runs whole requests through the engine (thinker →
// talker → vocoder, streaming hand-off, tiny preset): each iteration one
// Generate of batch prompts of 16 greedy tokens. It reports text tokens/s
// over all requests, the mean time to first audio (ttfa-ms) and to first
// token (ttft-ms), and the real-time factor of the speech (rtf: wall time
// over the audio time of all requests: below 1, the engine makes speech
// faster than it plays).
func BenchmarkEngine(b *testing.B) {
	for _, batch := range []int{1, 8} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			ctx := context.Background()
			e := newTestEngine(b, Config{Streaming: true})
			prompts := make([]Prompt, batch)
			for i := range prompts {
				prompts[i] = Prompt{Text: testPrompts[i%len(testPrompts)]}
			}
			params := greedy(16)
			var tokens int
			var ttfa, ttft, audio time.Duration
			b.ReportAllocs()
			for b.Loop() {
				res, err := e.Generate(ctx, prompts, params)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					tokens += len(r.TokenIDs)
					ttfa += r.TimeToFirstAudio
					ttft += r.TimeToFirstToken
					audio += r.AudioDuration()
				}
			}
			n := float64(b.N * batch)
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(ttfa)/1e6/n, "ttfa-ms")
			b.ReportMetric(float64(ttft)/1e6/n, "ttft-ms")
			b.ReportMetric(b.Elapsed().Seconds()/audio.Seconds(), "rtf")
		})
	}
}
