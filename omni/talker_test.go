package omni

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
)

// favourTalkerEOS changes an engine's talker weights so that its stop
// token wins every step where it is allowed. Every input row of the talker
// is proj(conditioning) + embed(code); adding a large constant to
// coordinate 0 of every code embedding makes the residual stream point
// along that coordinate whatever the layers add (their outputs are a few
// tenths: small weights on normalized inputs), so after the final RMSNorm
// every row is about (√Hidden, 0, …). Pointing the codec head's EOS row
// along coordinate 0 then gives EOS a logit in the hundreds against the
// others' fractions. Call it before the first request (the loops read the
// weights only for requests, which reach them through channels).
func favourTalkerEOS(t *testing.T, e *Engine) {
	t.Helper()
	d := e.talker.dec
	if d.head == d.embed.W {
		t.Fatal("the talker's head is tied to its embeddings")
	}
	dim := d.cfg.Hidden
	emb := d.embed.W.Float32s()
	for row := range d.cfg.Vocab {
		emb[row*dim] += 100
	}
	head := d.head.Float32s()
	eos := int(e.model.Talker.EOS())
	row := head[eos*dim : (eos+1)*dim]
	clear(row)
	row[0] = 50
	for i := range d.norm.W.Float32s() {
		d.norm.W.Float32s()[i] = 1
	}
}

// TestTalkerStopsAtEOS: with its stop token winning whenever allowed, the
// talker ends exactly where the speech first covers the text —
// CodesPerText codes per text token, short of the cap of CodesPerText·N +
// TailCodes — in streaming and whole hand-off, greedy and sampled, after
// a thinker that ran to max tokens or stopped on a stop token. The result
// is complete: the text, the codes without the stop token, and the
// vocoder's audio for exactly those codes (hop samples each, the whole
// sequence's decode). A cap below that point still ends the speech at the
// cap.
func TestTalkerStopsAtEOS(t *testing.T) {
	ctx := context.Background()
	for _, streaming := range []bool{true, false} {
		e := newTestEngine(t, Config{Streaming: streaming, ChunkFrames: 5})
		favourTalkerEOS(t, e)
		tc := e.model.Talker
		hop := e.voc.hop
		text := SamplingParams{MaxTokens: 9, IgnoreEOS: true, Temperature: 1, Seed: 3}
		noAudio := text
		noAudio.Audio.Disabled = true
		sampledText := solo(t, e, Prompt{Text: "stop here"}, noAudio)
		// A stop token the thinker meets after some text: the first
		// token not generated before.
		ids := sampledText.TokenIDs
		stopAt := slices.IndexFunc(ids, func(id int32) bool { return id != ids[0] })
		if stopAt < 0 {
			t.Fatalf("the thinker repeats one token: %v", ids)
		}
		withStop := text
		withStop.StopTokenIDs = []int32{ids[stopAt]}
		for _, tt := range []struct {
			name   string
			params SamplingParams
			codes  func(textTokens int) int // codes wanted
		}{
			{"greedy", SamplingParams{MaxTokens: 6, IgnoreEOS: true}, func(n int) int { return tc.CodesPerText * n }},
			{"sampled", sampled(4, 7), func(n int) int { return tc.CodesPerText * n }},
			{"thinker stop token", withStop, func(n int) int { return tc.CodesPerText * n }},
			{"cap first", SamplingParams{MaxTokens: 6, IgnoreEOS: true, Audio: AudioParams{MaxCodecTokens: 7}}, func(int) int { return 7 }},
		} {
			t.Run(fmt.Sprintf("streaming=%v/%s", streaming, tt.name), func(t *testing.T) {
				res, err := e.Generate(ctx, []Prompt{{Text: "stop here"}}, tt.params)
				if err != nil {
					t.Fatal(err)
				}
				r := res[0]
				n := len(r.TokenIDs)
				if n == 0 || r.Text == "" || r.FinishReason == "" {
					t.Fatalf("incomplete text: %q %v (%q)", r.Text, r.TokenIDs, r.FinishReason)
				}
				if tt.name == "thinker stop token" {
					if r.FinishReason != "stop" || n != stopAt {
						t.Fatalf("the thinker did not stop on its stop token: %d tokens (%s)", n, r.FinishReason)
					}
				} else if n != tt.params.MaxTokens || r.FinishReason != "length" {
					t.Fatalf("%d text tokens (%s), want %d (length)", n, r.FinishReason, tt.params.MaxTokens)
				}
				want := tt.codes(n)
				if capped := tc.CodesPerText*n + tc.TailCodes; tt.name != "cap first" && want >= capped {
					t.Fatalf("the test cannot tell the stop token from the cap (%d codes)", capped)
				}
				if len(r.CodecTokens) != want {
					t.Errorf("%d codec tokens for %d text tokens, want %d", len(r.CodecTokens), n, want)
				}
				for i, c := range r.CodecTokens {
					if c < 0 || int(c) >= tc.Codes {
						t.Errorf("code %d is %d, not a codec code (the stop token is %d)", i, c, tc.EOS())
					}
				}
				if r.SampleRate != e.SampleRate() || len(r.Audio) != hop*len(r.CodecTokens) {
					t.Fatalf("%d samples at %d Hz for %d codes, want %d", len(r.Audio), r.SampleRate, len(r.CodecTokens), hop*len(r.CodecTokens))
				}
				whole, err := e.voc.decode(ctx, r.CodecTokens)
				if err != nil {
					t.Fatal(err)
				}
				for i := range whole {
					if math.Abs(float64(whole[i]-r.Audio[i])) > 1e-5 {
						t.Fatalf("sample %d: %v, the whole sequence's decode gives %v", i, r.Audio[i], whole[i])
					}
				}
				if r.TimeToFirstAudio <= 0 || r.Latency < r.TimeToFirstAudio {
					t.Errorf("time to first audio %v, latency %v", r.TimeToFirstAudio, r.Latency)
				}
			})
		}
	}
}

// TestTalkerStopIsBatchInvisible: a talker that stops on its stop token
// does so at the same code alone and batched with requests that stop
// elsewhere, and leaves the others' output as it is alone.
func TestTalkerStopIsBatchInvisible(t *testing.T) {
	e := newTestEngine(t, Config{Streaming: true, ChunkFrames: 4})
	favourTalkerEOS(t, e)
	params := func(i int) SamplingParams {
		p := sampled(uint64(20+i), 3+i)
		if i%2 == 1 {
			p.Audio.MaxCodecTokens = 5 // the cap before the stop token
		}
		return p
	}
	want := make([]Result, 4)
	for i := range want {
		want[i] = solo(t, e, Prompt{Text: testPrompts[i]}, params(i))
	}
	got := make([]Result, len(want))
	errs := make([]error, len(want))
	done := make(chan int)
	for i := range got {
		go func() {
			res, err := e.Generate(context.Background(), []Prompt{{Text: testPrompts[i]}}, params(i))
			if err == nil {
				got[i] = res[0]
			}
			errs[i] = err
			done <- i
		}()
	}
	for range got {
		<-done
	}
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		sameResult(t, fmt.Sprintf("request %d", i), got[i], want[i])
		wantCodes := e.model.Talker.CodesPerText * len(want[i].TokenIDs)
		if i%2 == 1 {
			wantCodes = 5
		}
		if n := len(got[i].CodecTokens); n != wantCodes || slices.Contains(got[i].CodecTokens, e.model.Talker.EOS()) {
			t.Errorf("request %d: codes %v, want %d of them", i, got[i].CodecTokens, wantCodes)
		}
	}
}
