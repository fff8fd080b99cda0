package omni

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omniflow-go/omniflow/operators/audio"
	"github.com/omniflow-go/omniflow/operators/tokenize"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/sinks/memory"
)

// newTestEngine starts an engine that records nothing unless a test
// starts a profile, and closes it when the test ends.
func newTestEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Profiler == nil {
		cfg.Profiler = noProfiler(t)
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

func sampled(seed uint64, maxTokens int) SamplingParams {
	return SamplingParams{Temperature: 0.8, TopK: 40, TopP: 0.95, RepetitionPenalty: 1.1, Seed: seed, MaxTokens: maxTokens,
		IgnoreEOS: true, Audio: AudioParams{Temperature: 0.9, TopK: 20, TopP: 0.9, RepetitionPenalty: 1.05}}
}

func greedy(maxTokens int) SamplingParams {
	return SamplingParams{MaxTokens: maxTokens, IgnoreEOS: true}
}

// sameResult compares what a request produced (not its timings).
func sameResult(t *testing.T, what string, got, want Result) {
	t.Helper()
	if got.Text != want.Text || !slices.Equal(got.TokenIDs, want.TokenIDs) || got.FinishReason != want.FinishReason {
		t.Errorf("%s: text %q %v (%s), want %q %v (%s)", what, got.Text, got.TokenIDs, got.FinishReason, want.Text, want.TokenIDs, want.FinishReason)
	}
	if !slices.Equal(got.CodecTokens, want.CodecTokens) {
		t.Errorf("%s: codec tokens %v, want %v", what, got.CodecTokens, want.CodecTokens)
	}
	if !slices.Equal(got.Audio, want.Audio) {
		t.Errorf("%s: %d audio samples differ from the %d wanted", what, len(got.Audio), len(want.Audio))
	}
}

func solo(t *testing.T, e *Engine, p Prompt, params SamplingParams) Result {
	t.Helper()
	res, err := e.Generate(context.Background(), []Prompt{p}, params)
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

var testPrompts = []string{"hello there", "what is in this picture?", "say something", "a much longer prompt that takes more tokens to prefill", "x", "omni"}

// TestBatchingIsInvisible: a request's text, codec tokens and audio are
// the same whether it runs alone or batched with others (ragged batches of
// prefill and decode rows), greedy or sampled with its seed.
func TestBatchingIsInvisible(t *testing.T) {
	e := newTestEngine(t, Config{Streaming: true, ChunkFrames: 8})
	for _, mode := range []struct {
		name   string
		params func(i int) SamplingParams
	}{
		{"greedy", func(i int) SamplingParams { p := greedy(8 + i); p.Audio.MaxCodecTokens = 10 + i; return p }},
		{"sampled", func(i int) SamplingParams {
			p := sampled(uint64(100+i), 8+i)
			p.Audio.MaxCodecTokens = 10 + i
			return p
		}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			want := make([]Result, len(testPrompts))
			for i, s := range testPrompts {
				want[i] = solo(t, e, Prompt{Text: s}, mode.params(i))
			}
			got := make([]Result, len(testPrompts))
			var wg sync.WaitGroup
			errs := make([]error, len(testPrompts))
			for i, s := range testPrompts {
				wg.Go(func() {
					res, err := e.Generate(context.Background(), []Prompt{{Text: s}}, mode.params(i))
					if err == nil {
						got[i] = res[0]
					}
					errs[i] = err
				})
			}
			wg.Wait()
			for i := range testPrompts {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				sameResult(t, fmt.Sprintf("prompt %d batched", i), got[i], want[i])
			}
			if len(want[0].Audio) == 0 || want[0].Text == "" {
				t.Fatalf("no output: %+v", want[0])
			}
		})
	}
}

// TestGenerateBatch: one Generate call with many prompts returns them in
// order, each as it would come alone.
func TestGenerateBatch(t *testing.T) {
	e := newTestEngine(t, Config{MaxBatch: 3})
	prompts := make([]Prompt, len(testPrompts))
	for i, s := range testPrompts {
		prompts[i] = Prompt{Text: s}
	}
	res, err := e.Generate(context.Background(), prompts, greedy(6))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range testPrompts {
		sameResult(t, fmt.Sprintf("prompt %d", i), res[i], solo(t, e, Prompt{Text: s}, greedy(6)))
		if res[i].PromptTokens == 0 || res[i].SampleRate != 24000 || res[i].Latency <= 0 {
			t.Errorf("prompt %d: %d prompt tokens, rate %d, latency %v", i, res[i].PromptTokens, res[i].SampleRate, res[i].Latency)
		}
	}
}

// TestRequestsJoinMidFlight: requests that arrive while another is
// decoding join its batch between iterations — the profile shows each of
// them prefilled in a thinker iteration that also decodes the running one
// — and every result is as it would be alone. (The running request has
// room for thousands of tokens and is cancelled once the others are done,
// so it is still decoding whenever they arrive: the joins do not depend
// on timing.)
func TestRequestsJoinMidFlight(t *testing.T) {
	mem := memory.New()
	p, err := profiler.New(profiler.WithSink(mem))
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEngine(t, Config{Streaming: true, ChunkFrames: 6, Profiler: p})
	ctx := context.Background()
	const prefix = 40
	wantLong := solo(t, e, Prompt{Text: "the long one"}, sampled(1, prefix))
	long := sampled(1, e.Model().Thinker.MaxPositions-wantLong.PromptTokens)
	long.Audio.MaxCodecTokens = 64
	wantShort := make([]Result, 3)
	for i := range wantShort {
		wantShort[i] = solo(t, e, Prompt{Text: testPrompts[i]}, sampled(uint64(10+i), 5))
	}
	if err := e.StartProfile(ctx, StageThinker); err != nil {
		t.Fatal(err)
	}
	st, err := e.Stream(ctx, Prompt{ID: "long", Text: "the long one"}, long)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var tokens []int32
	next := func() {
		t.Helper()
		c, err := st.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, c.TokenIDs...)
	}
	for len(tokens) < 3 { // decoding
		next()
	}
	var wg sync.WaitGroup
	got := make([]Result, 3)
	for i := range got {
		wg.Go(func() {
			res, err := e.Generate(ctx, []Prompt{{ID: fmt.Sprintf("join-%d", i), Text: testPrompts[i]}}, sampled(uint64(10+i), 5))
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = res[0]
		})
	}
	wg.Wait()
	if r := st.Result(); r.FinishReason != "" {
		t.Fatalf("the long request finished (%s, %d tokens) before the joined ones", r.FinishReason, len(r.TokenIDs))
	}
	for len(tokens) < prefix {
		next()
	}
	st.Close()
	if _, err := e.StopProfile(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tokens[:prefix], wantLong.TokenIDs) {
		t.Errorf("long request: tokens %v, alone %v", tokens[:prefix], wantLong.TokenIDs)
	}
	for i := range got {
		sameResult(t, fmt.Sprintf("joined request %d", i), got[i], wantShort[i])
	}

	// Each joined request's prefill lies in a thinker iteration that also
	// decodes: a batch of at least two, formed mid-flight.
	recs := mem.Records()
	attr := func(r profiler.Record, k string) int64 { a, _ := r.Attr(k); return a.AsInt() }
	for i := range got {
		id := fmt.Sprintf("join-%d", i)
		k := slices.IndexFunc(recs, func(r profiler.Record) bool { return r.Request == id && r.Name == "thinker.prefill" })
		if k < 0 {
			t.Errorf("%s: no thinker.prefill span", id)
			continue
		}
		pre := recs[k]
		step := slices.IndexFunc(recs, func(r profiler.Record) bool {
			return r.Kind == profiler.KindIteration && r.Name == "thinker.step" && r.Start <= pre.Start && pre.End <= r.End
		})
		if step < 0 {
			t.Errorf("%s: its prefill [%d, %d] is in no thinker.step", id, pre.Start, pre.End)
			continue
		}
		s := recs[step]
		if attr(s, "batch") < 2 || attr(s, "decode_tokens") < 1 || attr(s, "prefill_tokens") < 1 {
			t.Errorf("%s prefilled in a step of batch %d (%d prefill, %d decode tokens), want one that also decodes",
				id, attr(s, "batch"), attr(s, "prefill_tokens"), attr(s, "decode_tokens"))
		}
	}
}

// TestCancelOneRequest: cancelling one request's context ends it with the
// context's error and leaves the others untouched.
func TestCancelOneRequest(t *testing.T) {
	e := newTestEngine(t, Config{Streaming: true, ChunkFrames: 4})
	ctx := context.Background()
	want := make([]Result, 3)
	for i := range want {
		want[i] = solo(t, e, Prompt{Text: testPrompts[i]}, sampled(uint64(i), 12))
	}
	cctx, cancel := context.WithCancel(ctx)
	victim, err := e.Stream(cctx, Prompt{Text: "cancel me"}, greedy(200))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]Result, 3)
	for i := range got {
		wg.Go(func() {
			res, err := e.Generate(ctx, []Prompt{{Text: testPrompts[i]}}, sampled(uint64(i), 12))
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = res[0]
		})
	}
	// Cancel once the victim has produced audio (it is then in every stage).
	for {
		c, err := victim.Next(ctx)
		if err != nil {
			t.Fatalf("victim ended before it was cancelled: %v", err)
		}
		if len(c.Audio) > 0 {
			break
		}
	}
	cancel()
	for {
		_, err := victim.Next(ctx)
		if err == nil {
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled request ended with %v, want context.Canceled", err)
		}
		break
	}
	wg.Wait()
	for i := range got {
		sameResult(t, fmt.Sprintf("request %d", i), got[i], want[i])
	}
	// The engine still serves.
	sameResult(t, "after", solo(t, e, Prompt{Text: testPrompts[0]}, sampled(0, 12)), want[0])
}

// TestBadInputs: invalid prompts and parameters fail at once with an
// ErrInvalid saying what is wrong; the engine keeps serving.
func TestBadInputs(t *testing.T) {
	e := newTestEngine(t, Config{})
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.wav")
	os.WriteFile(garbage, []byte("RIFF....not a wave file at all"), 0o644)
	badPNG := filepath.Join(dir, "bad.png")
	os.WriteFile(badPNG, []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
	for _, tc := range []struct {
		name   string
		p      Prompt
		params SamplingParams
		want   string
	}{
		{"empty prompt", Prompt{}, greedy(4), "empty prompt"},
		{"max_tokens 0", Prompt{Text: "hi"}, SamplingParams{}, "max_tokens is 0"},
		{"negative temperature", Prompt{Text: "hi"}, SamplingParams{MaxTokens: 1, Temperature: -1}, "temperature"},
		{"top_p", Prompt{Text: "hi"}, SamplingParams{MaxTokens: 1, TopP: 1.5}, "top_p"},
		{"missing wav", Prompt{Text: "hi", AudioPath: filepath.Join(dir, "nope.wav")}, greedy(4), "no such file"},
		{"unreadable wav", Prompt{Text: "hi", AudioPath: garbage}, greedy(4), "garbage.wav"},
		{"pcm without rate", Prompt{Text: "hi", Audio: make([]float32, 1600)}, greedy(4), "sample rate"},
		{"too short audio", Prompt{Text: "hi", Audio: make([]float32, 100), AudioRate: 16000}, greedy(4), "log-mel frames"},
		{"too long audio", Prompt{Text: "hi", Audio: make([]float32, 16000*31), AudioRate: 16000}, greedy(4), "at most 30 s"},
		{"bad png", Prompt{Text: "hi", ImagePath: badPNG}, greedy(4), "image"},
		{"raw with audio", Prompt{Text: "hi", Raw: true, Audio: make([]float32, 1600), AudioRate: 16000}, greedy(4), "raw prompt"},
		{"too long", Prompt{Text: "hi"}, greedy(5000), "positions"},
		{"empty stop", Prompt{Text: "hi"}, SamplingParams{MaxTokens: 1, Stop: []string{""}}, "stop string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Generate(context.Background(), []Prompt{tc.p}, tc.params)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Generate: %v, want ErrInvalid mentioning %q", err, tc.want)
			}
			if _, err := e.Stream(context.Background(), tc.p, tc.params); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Stream: %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := e.Generate(context.Background(), nil, greedy(1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Generate of no prompts: %v", err)
	}
	if _, err := e.Generate(context.Background(), []Prompt{{Text: "still fine"}}, greedy(2)); err != nil {
		t.Fatal(err)
	}
}

// TestStopConditions: stop strings cut the text before them, stop tokens
// end it, max tokens bound it.
func TestStopConditions(t *testing.T) {
	e := newTestEngine(t, Config{})
	ctx := context.Background()
	base := solo(t, e, Prompt{Text: "stops"}, SamplingParams{MaxTokens: 12, IgnoreEOS: true, Temperature: 1, Seed: 3, Audio: AudioParams{Disabled: true}})
	if len(base.TokenIDs) != 12 || base.FinishReason != "length" || len(base.Audio) != 0 || base.SampleRate != 0 {
		t.Fatalf("base: %d tokens, %s, %d samples at %d Hz", len(base.TokenIDs), base.FinishReason, len(base.Audio), base.SampleRate)
	}
	// A stop string made of the 4th and 5th bytes of the text.
	stop := base.Text[4:6]
	want := base.Text[:strings.Index(base.Text, stop)]
	res, err := e.Generate(ctx, []Prompt{{Text: "stops"}}, SamplingParams{MaxTokens: 12, IgnoreEOS: true, Temperature: 1, Seed: 3, Stop: []string{stop}, Audio: AudioParams{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Text != want || res[0].FinishReason != "stop" {
		t.Errorf("stop string %q: text %q (%s), want %q", stop, res[0].Text, res[0].FinishReason, want)
	}
	// A stop token: the 3rd token generated.
	res, err = e.Generate(ctx, []Prompt{{Text: "stops"}}, SamplingParams{MaxTokens: 12, IgnoreEOS: true, Temperature: 1, Seed: 3, StopTokenIDs: []int32{base.TokenIDs[2]}, Audio: AudioParams{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	first := slices.Index(base.TokenIDs, base.TokenIDs[2])
	if !slices.Equal(res[0].TokenIDs, base.TokenIDs[:first]) || res[0].FinishReason != "stop" {
		t.Errorf("stop token: %v (%s), want %v", res[0].TokenIDs, res[0].FinishReason, base.TokenIDs[:first])
	}
}

// TestStreamingAndWholeAgree: the hand-off mode changes when things
// happen, not what comes out.
func TestStreamingAndWholeAgree(t *testing.T) {
	whole := newTestEngine(t, Config{})
	stream := newTestEngine(t, Config{Streaming: true})
	for i, s := range testPrompts[:3] {
		sameResult(t, "prompt "+s, solo(t, stream, Prompt{Text: s}, sampled(uint64(i), 20)), solo(t, whole, Prompt{Text: s}, sampled(uint64(i), 20)))
	}
}

// TestStreamingFirstAudioBeforeThinkerEnds: with streaming hand-off the
// first audio chunk reaches the caller while the thinker is still
// generating; with whole hand-off only after it finished.
//
// As in Qwen2.5-Omni, the thinker is the big model here (the small
// preset's, 4 layers of width 256) and the talker and vocoder the tiny
// preset's.
func TestStreamingFirstAudioBeforeThinkerEnds(t *testing.T) {
	ctx := context.Background()
	model, _ := Preset("tiny")
	small, _ := Preset("small")
	model.Thinker = small.Thinker
	for _, streaming := range []bool{true, false} {
		e := newTestEngine(t, Config{Model: &model, Streaming: streaming, ChunkFrames: 5})
		p := greedy(48)
		p.Audio.MaxCodecTokens = 30
		st, err := e.Stream(ctx, Prompt{Text: "talk to me"}, p)
		if err != nil {
			t.Fatal(err)
		}
		textTokens, audioFirstAt := 0, -1
		for {
			c, err := st.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			textTokens += len(c.TokenIDs)
			if len(c.Audio) > 0 && audioFirstAt < 0 {
				audioFirstAt = textTokens
			}
		}
		res := st.Result()
		t.Logf("streaming=%v: first audio after %d of %d text tokens; time to first audio %v, thinker done after %v, total %v",
			streaming, audioFirstAt, textTokens, res.TimeToFirstAudio, res.ThinkerTime, res.Latency)
		if streaming {
			if audioFirstAt < 0 || audioFirstAt >= textTokens || res.TimeToFirstAudio >= res.ThinkerTime {
				t.Errorf("streaming: first audio after %d of %d tokens (%v vs thinker %v), want it before the thinker finishes",
					audioFirstAt, textTokens, res.TimeToFirstAudio, res.ThinkerTime)
			}
		} else if audioFirstAt != textTokens || res.TimeToFirstAudio < res.ThinkerTime {
			t.Errorf("whole: first audio after %d of %d tokens, want after all", audioFirstAt, textTokens)
		}
	}
}

// TestAudioOutputWAV: the speech is 24 kHz, one hop (480 samples) per
// codec token, in [-1, 1], and round-trips through a WAV file.
func TestAudioOutputWAV(t *testing.T) {
	e := newTestEngine(t, Config{})
	res := solo(t, e, Prompt{Text: "speak"}, greedy(8))
	hop := e.Model().Vocoder.HopLength()
	if hop != 480 || res.SampleRate != 24000 || len(res.Audio) != len(res.CodecTokens)*hop || len(res.Audio) == 0 {
		t.Fatalf("%d samples at %d Hz for %d codes (hop %d)", len(res.Audio), res.SampleRate, len(res.CodecTokens), hop)
	}
	var energy float64
	for _, s := range res.Audio {
		if s < -1 || s > 1 || math.IsNaN(float64(s)) {
			t.Fatalf("sample %v", s)
		}
		energy += float64(s) * float64(s)
	}
	if energy == 0 {
		t.Fatal("silent audio")
	}
	var buf bytes.Buffer
	if err := res.WriteWAV(&buf); err != nil {
		t.Fatal(err)
	}
	back, info, err := audio.ReadWAV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if info.SampleRate != 24000 || info.Channels != 1 || len(back) != len(res.Audio) {
		t.Fatalf("WAV: %+v, %d samples", info, len(back))
	}
	if d := res.AudioDuration(); d != time.Duration(len(res.CodecTokens))*20*time.Millisecond {
		t.Errorf("duration %v for %d codes at 50 Hz", d, len(res.CodecTokens))
	}
}

// testWAV writes a 0.6 s 440 Hz tone at 22.05 kHz (resampled to 16 kHz by
// the engine).
func testWAV(t testing.TB, dir string) string {
	t.Helper()
	pcm := make([]float32, 22050*6/10)
	for i := range pcm {
		pcm[i] = float32(0.5 * math.Sin(2*math.Pi*440*float64(i)/22050))
	}
	path := filepath.Join(dir, "tone.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := audio.WriteWAV(f, pcm, 22050, audio.PCM16); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// testPNG writes a 64×48 gradient.
func testPNG(t testing.TB, dir string) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), uint8(x * y), 255})
		}
	}
	path := filepath.Join(dir, "grad.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAudioAndImageInputs: a WAV and a PNG go through their encoders into
// the thinker's sequence: the placeholder spans have the encoders' output
// lengths, and the inputs change the output.
func TestAudioAndImageInputs(t *testing.T) {
	e := newTestEngine(t, Config{})
	dir := t.TempDir()
	wav, img := testWAV(t, dir), testPNG(t, dir)
	text := solo(t, e, Prompt{Text: "describe"}, greedy(8))
	both := solo(t, e, Prompt{Text: "describe", AudioPath: wav, ImagePath: img}, greedy(8))
	// 0.6 s → 61 log-mel frames → 31 after the stride-2 conv → 15 tokens;
	// 64×48 → smart resize 56×56 → 4×4 patches → 4 merged tokens; plus
	// the four bos/eos markers.
	if d := both.PromptTokens - text.PromptTokens; d != 15+4+4 {
		t.Errorf("the audio and image added %d prompt tokens, want 23", d)
	}
	if slices.Equal(both.TokenIDs, text.TokenIDs) && slices.Equal(both.CodecTokens, text.CodecTokens) {
		t.Error("audio and image inputs changed nothing")
	}
	again := solo(t, e, Prompt{Text: "describe", AudioPath: wav, ImagePath: img}, greedy(8))
	sameResult(t, "repeat", again, both)
	// PCM in memory is the same as the file.
	samples, info, err := readWAVFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "pcm", solo(t, e, Prompt{Text: "describe", Audio: samples, AudioRate: info.SampleRate, ImagePath: img}, greedy(8)), both)
}

func readWAVFile(path string) ([]float32, audio.WAVInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, audio.WAVInfo{}, err
	}
	defer f.Close()
	return audio.ReadWAV(f)
}

// TestPresets: real-size presets are refused for random init with an
// estimate; unknown names list the known ones.
func TestPresets(t *testing.T) {
	ctx := context.Background()
	_, err := New(ctx, Config{Preset: "qwen2.5-omni-7b", Profiler: noProfiler(t)})
	if err == nil || !strings.Contains(err.Error(), "GiB") || !strings.Contains(err.Error(), "CheckpointDir") {
		t.Errorf("7B random init: %v", err)
	}
	_, err = New(ctx, Config{Preset: "gpt-17", Profiler: noProfiler(t)})
	if err == nil || !strings.Contains(err.Error(), "qwen2.5-omni-3b") {
		t.Errorf("unknown preset: %v", err)
	}
	m, err := Preset("qwen2.5-omni-7b")
	if err != nil {
		t.Fatal(err)
	}
	if th, _, _, _, _ := m.Params(); th < 7e9 || th > 8e9 {
		t.Errorf("7B thinker has %d parameters", th)
	}
	if m.Vocoder.FrameRate() != 50 {
		t.Errorf("codec frame rate %v", m.Vocoder.FrameRate())
	}
	for _, name := range Presets() {
		m, err := Preset(name)
		if err != nil || m.validate() != nil {
			t.Errorf("preset %s: %v %v", name, err, m.validate())
		}
	}
}

// TestClose: requests in flight end with ErrClosed, new ones are refused,
// Close is idempotent, and no goroutine outlives it (TestMain's goleak).
func TestClose(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{Profiler: noProfiler(t), Streaming: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.Stream(ctx, Prompt{Text: "long"}, greedy(2000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := st.Next(ctx)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrClosed) {
			t.Errorf("in flight: %v, want ErrClosed", err)
		}
		break
	}
	if _, err := e.Generate(ctx, []Prompt{{Text: "late"}}, greedy(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := e.Close(ctx); err != nil {
		t.Error(err)
	}
}

// TestStopStringHoldBack: text that may begin a stop string is held back
// until it is known not to, then passed on whole; a stop string cuts the
// text before it, wherever the token boundaries fall.
func TestStopStringHoldBack(t *testing.T) {
	for _, tc := range []struct {
		stops  []string
		pieces []string
		chunks []string // what the caller sees, piece by piece
		text   string
		reason string
	}{
		{[]string{"END"}, []string{"ab", "cE", "N", "x"}, []string{"ab", "c", "", "ENx"}, "abcENx", "length"},
		{[]string{"END"}, []string{"ab", "cE", "ND", "zz"}, []string{"ab", "c", ""}, "abc", "stop"},
		{[]string{"é!", "xy"}, []string{"aé", "b", "é", "!"}, []string{"a", "éb", "", ""}, "aéb", "stop"},
		{[]string{"xy"}, []string{"héllo", "wx", "y"}, []string{"héllo", "w", ""}, "héllow", "stop"},
	} {
		m := newMailbox(true, 0, false)
		tok, _ := tokenize.NewByteTokenizer()
		s := &thinkerSeq{r: &request{params: SamplingParams{Stop: tc.stops, MaxTokens: len(tc.pieces)}, out: m}, dec: tokenize.NewStreamDecoder(tok)}
		var chunks []string
		for i, p := range tc.pieces {
			if s.done {
				break
			}
			before := m.res.Text
			s.emitText(p, []int32{int32(i)})
			chunks = append(chunks, m.res.Text[len(before):])
		}
		if !s.done {
			s.finishText("length", true)
			chunks[len(chunks)-1] += m.res.Text[len(strings.Join(chunks, "")):]
		}
		if m.res.Text != tc.text || s.reason != tc.reason || !slices.Equal(chunks, tc.chunks) {
			t.Errorf("stops %q, pieces %q: text %q (%s) in chunks %q, want %q (%s) in %q",
				tc.stops, tc.pieces, m.res.Text, s.reason, chunks, tc.text, tc.reason, tc.chunks)
		}
	}
}
