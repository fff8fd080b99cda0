package omni

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"sync"
	"time"

	"github.com/omniflow-go/omniflow/operators/audio"
	"github.com/omniflow-go/omniflow/operators/tokenize"
	"github.com/omniflow-go/omniflow/operators/vision"
	"github.com/omniflow-go/omniflow/tensor"
)

// Prompt is one request's input: text, and optionally one audio clip and
// one image, laid out with Qwen2.5-Omni's chat template (system prompt,
// then the user turn: audio, image, text).
type Prompt struct {
	// ID names the request in traces and results ("" assigns req-N).
	ID   string
	Text string
	// System replaces the system prompt (default: Qwen2.5-Omni's, which
	// the real model needs in order to speak).
	System string
	// Raw encodes Text as it is, with no chat template (and no media).
	Raw bool

	// AudioPath is a WAV file; or Audio holds mono PCM at AudioRate Hz.
	AudioPath string
	Audio     []float32
	AudioRate int

	// ImagePath is a PNG or JPEG file; or Image holds the image.
	ImagePath string
	Image     image.Image
}

// Result is a finished request.
type Result struct {
	ID       string
	Text     string
	TokenIDs []int32
	// FinishReason is "stop" (a stop token or string) or "length".
	FinishReason string
	PromptTokens int

	// Audio is the speech at SampleRate Hz (empty with audio disabled).
	Audio       []float32
	SampleRate  int
	CodecTokens []int32

	// Wall-clock timings from submission: the first text token, the first
	// audio chunk, the thinker's end of the text, and the end.
	TimeToFirstToken time.Duration
	TimeToFirstAudio time.Duration
	ThinkerTime      time.Duration
	Latency          time.Duration
}

// AudioDuration is the length of the audio.
func (r Result) AudioDuration() time.Duration {
	if r.SampleRate == 0 {
		return 0
	}
	return time.Duration(float64(len(r.Audio)) / float64(r.SampleRate) * float64(time.Second))
}

// WriteWAV writes the speech as a 16-bit PCM WAV file at SampleRate.
func (r Result) WriteWAV(w io.Writer) error {
	if r.SampleRate == 0 {
		return fmt.Errorf("omni: request %s has no audio (audio disabled)", r.ID)
	}
	return audio.WriteWAV(w, r.Audio, r.SampleRate, audio.PCM16)
}

// Chunk is a piece of a streamed result: text as the thinker produces it,
// or audio as the vocoder decodes it (one chunk of ChunkFrames codec
// frames). Exactly one of Text/TokenIDs and Audio is set.
type Chunk struct {
	Text     string
	TokenIDs []int32
	Audio    []float32
}

// ErrClosed is returned for requests made to, or still running in, an
// engine that is closed.
var ErrClosed = errors.New("omni: engine closed")

// request is one prompt in flight. Each stage keeps its own state about
// it; what they share is immutable after prepare, plus the mailbox.
type request struct {
	id      string
	ids     []int32
	mel     *tensor.Tensor // [Mels, frames] or nil
	patches *tensor.Tensor // [n, PatchDim] or nil

	audioSpan, imageSpan spanRef
	params               SamplingParams
	stopIDs              map[int32]bool
	wantAudio            bool
	maxCodes             int // talker bound (codes)

	sent  int64           // profiler clock when submitted
	done  <-chan struct{} // the caller's context
	cause func() error

	out *mailbox
}

// canceled reports the caller's cancellation (nil while live).
func (r *request) canceled() error {
	select {
	case <-r.done:
		return r.cause()
	default:
		return nil
	}
}

// prepare validates a prompt and turns it into a request: the chat
// template, the audio's log-mel spectrogram, the image's patches. Errors
// wrap ErrInvalid.
func (e *Engine) prepare(p Prompt, params SamplingParams) (*request, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	hasAudio := p.AudioPath != "" || p.Audio != nil
	hasImage := p.ImagePath != "" || p.Image != nil
	if p.Text == "" && !hasAudio && !hasImage {
		return nil, fmt.Errorf("%w: empty prompt (no text, audio or image)", ErrInvalid)
	}
	r := &request{id: p.ID, params: params, wantAudio: !params.Audio.Disabled}
	var parts []tokenize.Part
	if hasAudio {
		if p.Raw {
			return nil, fmt.Errorf("%w: a raw prompt takes no audio", ErrInvalid)
		}
		mel, err := e.logMel(p)
		if err != nil {
			return nil, err
		}
		n := e.thinker.audio.tokens(mel.Dim(1))
		if mel.Dim(1) > e.model.Audio.MaxFrames || n < 1 {
			return nil, fmt.Errorf("%w: audio of %d log-mel frames (%.2f s); the audio encoder takes 4..%d (%.0f s)",
				ErrInvalid, mel.Dim(1), float64(mel.Dim(1))/100, e.model.Audio.MaxFrames, float64(e.model.Audio.MaxFrames)/100)
		}
		r.mel = mel
		parts = append(parts, tokenize.AudioPart(n))
	}
	if hasImage {
		if p.Raw {
			return nil, fmt.Errorf("%w: a raw prompt takes no image", ErrInvalid)
		}
		patches, err := e.imagePatches(p)
		if err != nil {
			return nil, err
		}
		r.patches = patches.Data
		parts = append(parts, tokenize.ImagePart(patches.NumTokens()))
	}
	if p.Text != "" {
		parts = append(parts, tokenize.TextPart(p.Text))
	}
	if p.Raw {
		ids, err := e.tok.Encode(p.Text)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		r.ids = ids
	} else {
		sys := p.System
		if sys == "" {
			sys = tokenize.QwenOmniSystemPrompt
		}
		enc, err := tokenize.EncodeChat(e.tok, []tokenize.Message{{Role: "user", Parts: parts}},
			tokenize.ChatOptions{System: sys, AddGenerationPrompt: true})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		r.ids = enc.IDs
		for _, s := range enc.Spans {
			switch s.Kind {
			case tokenize.AudioKind:
				r.audioSpan = spanRef{kind: "audio", start: s.Start, n: s.Len}
			case tokenize.ImageKind:
				r.imageSpan = spanRef{kind: "image", start: s.Start, n: s.Len}
			}
		}
	}
	if len(r.ids) == 0 {
		return nil, fmt.Errorf("%w: the prompt encodes to no tokens", ErrInvalid)
	}
	vocab := e.model.Thinker.Vocab
	for i, id := range r.ids {
		if id < 0 || int(id) >= vocab {
			return nil, fmt.Errorf("%w: prompt token %d is id %d, outside the thinker's vocabulary of %d", ErrInvalid, i, id, vocab)
		}
	}
	if n := len(r.ids) + params.MaxTokens; n > e.model.Thinker.MaxPositions {
		return nil, fmt.Errorf("%w: %d prompt tokens + max_tokens %d exceed the thinker's %d positions",
			ErrInvalid, len(r.ids), params.MaxTokens, e.model.Thinker.MaxPositions)
	}
	r.stopIDs = map[int32]bool{}
	for _, id := range params.StopTokenIDs {
		r.stopIDs[id] = true
	}
	if !params.IgnoreEOS {
		for _, id := range e.eosIDs {
			r.stopIDs[id] = true
		}
	}
	if r.wantAudio {
		tc := e.model.Talker
		r.maxCodes = tc.CodesPerText*params.MaxTokens + tc.TailCodes
		if a := params.Audio.MaxCodecTokens; a > 0 {
			r.maxCodes = min(r.maxCodes, a)
		}
		if n := len(r.ids) + 1 + r.maxCodes; n > tc.MaxPositions {
			return nil, fmt.Errorf("%w: %d prompt positions + %d codec tokens exceed the talker's %d positions",
				ErrInvalid, len(r.ids)+1, r.maxCodes, tc.MaxPositions)
		}
	}
	return r, nil
}

// logMel reads and resamples the prompt's audio to 16 kHz and returns
// its log-mel spectrogram.
func (e *Engine) logMel(p Prompt) (*tensor.Tensor, error) {
	pcm, rate := p.Audio, p.AudioRate
	if p.AudioPath != "" {
		f, err := os.Open(p.AudioPath)
		if err != nil {
			return nil, fmt.Errorf("%w: audio: %w", ErrInvalid, err)
		}
		defer f.Close()
		// 30 s of 8-channel float64 is the most worth reading.
		samples, info, err := audio.ReadWAV(f, audio.WithMaxDataBytes(64<<20))
		if err != nil {
			return nil, fmt.Errorf("%w: audio %s: %w", ErrInvalid, p.AudioPath, err)
		}
		pcm, rate = samples, info.SampleRate
	} else if rate <= 0 {
		return nil, fmt.Errorf("%w: audio PCM without a sample rate", ErrInvalid)
	}
	if len(pcm) == 0 {
		return nil, fmt.Errorf("%w: audio has no samples", ErrInvalid)
	}
	want := e.mel.Config().SampleRate
	if max := (e.model.Audio.MaxFrames + 1) * e.mel.Config().Hop; int64(len(pcm))*int64(want) > int64(max)*int64(rate) {
		return nil, fmt.Errorf("%w: audio of %.2f s; the audio encoder takes at most %.0f s",
			ErrInvalid, float64(len(pcm))/float64(rate), float64(e.model.Audio.MaxFrames)/100)
	}
	if rate != want {
		var err error
		if pcm, err = audio.Resample(pcm, rate, want); err != nil {
			return nil, fmt.Errorf("%w: audio: %w", ErrInvalid, err)
		}
	}
	mel, err := e.mel.Compute(pcm)
	if err != nil {
		return nil, fmt.Errorf("%w: audio: %w", ErrInvalid, err)
	}
	return mel, nil
}

// imagePatches loads and preprocesses the prompt's image.
func (e *Engine) imagePatches(p Prompt) (vision.Patches, error) {
	img := p.Image
	if p.ImagePath != "" {
		var err error
		if img, err = vision.LoadFile(p.ImagePath); err != nil {
			return vision.Patches{}, fmt.Errorf("%w: image: %w", ErrInvalid, err)
		}
	}
	vc := e.model.Vision
	cfg := vision.DefaultProcessorConfig()
	cfg.Patch = vision.PatchConfig{Patch: vc.Patch, Temporal: vc.Temporal, Merge: vc.Merge}
	cfg.Resize.Factor = vc.Patch * vc.Merge
	cfg.Resize.MaxPixels = vc.MaxPixels
	cfg.Resize.MinPixels = min(cfg.Resize.MinPixels, vc.MaxPixels)
	pt, err := vision.Preprocess(cfg, img)
	if err != nil {
		return vision.Patches{}, fmt.Errorf("%w: image: %w", ErrInvalid, err)
	}
	return pt, nil
}

// mailbox collects a request's output from the stages and hands it to
// the caller. It never blocks a stage: it buffers whatever the caller has
// not read yet (at most the request's own text and audio).
type mailbox struct {
	mu      sync.Mutex
	notify  chan struct{} // capacity 1: something changed
	stream  bool          // keep chunks for Next
	chunks  []Chunk
	res     Result
	textOK  bool
	audioOK bool
	err     error
	closed  bool // complete, or failed

	submitted time.Time
	gotToken  bool
	gotAudio  bool
}

func newMailbox(stream bool, sampleRate int, wantAudio bool) *mailbox {
	m := &mailbox{notify: make(chan struct{}, 1), stream: stream, submitted: time.Now(), audioOK: !wantAudio}
	if wantAudio {
		m.res.SampleRate = sampleRate
	}
	return m
}

func (m *mailbox) signal() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *mailbox) text(s string, ids []int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if !m.gotToken && len(ids) > 0 {
		m.gotToken = true
		m.res.TimeToFirstToken = time.Since(m.submitted)
	}
	m.res.Text += s
	m.res.TokenIDs = append(m.res.TokenIDs, ids...)
	if m.stream && (s != "" || len(ids) > 0) {
		m.chunks = append(m.chunks, Chunk{Text: s, TokenIDs: ids})
	}
	m.signal()
}

func (m *mailbox) textDone(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.textOK = true
	m.res.FinishReason = reason
	m.res.ThinkerTime = time.Since(m.submitted)
	m.complete()
}

func (m *mailbox) audio(pcm []float32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if !m.gotAudio && len(pcm) > 0 {
		m.gotAudio = true
		m.res.TimeToFirstAudio = time.Since(m.submitted)
	}
	m.res.Audio = append(m.res.Audio, pcm...)
	if m.stream && len(pcm) > 0 {
		m.chunks = append(m.chunks, Chunk{Audio: pcm})
	}
	m.signal()
}

func (m *mailbox) audioDone(codes []int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.audioOK = true
	m.res.CodecTokens = codes
	m.complete()
}

func (m *mailbox) complete() {
	if m.textOK && m.audioOK {
		m.closed = true
		m.res.Latency = time.Since(m.submitted)
		m.signal()
	}
}

// fail ends the request with err unless it already ended.
func (m *mailbox) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	m.err = err
	m.signal()
}

// finished reports whether the request ended (completed or failed).
func (m *mailbox) finished() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// next returns the next chunk, io.EOF after the last one of a complete
// request, or the request's error.
func (m *mailbox) next(ctx context.Context) (Chunk, error) {
	for {
		m.mu.Lock()
		if len(m.chunks) > 0 {
			c := m.chunks[0]
			m.chunks[0] = Chunk{}
			m.chunks = m.chunks[1:]
			m.mu.Unlock()
			return c, nil
		}
		if m.closed {
			err := m.err
			m.mu.Unlock()
			if err == nil {
				err = io.EOF
			}
			return Chunk{}, err
		}
		m.mu.Unlock()
		select {
		case <-m.notify:
		case <-ctx.Done():
			return Chunk{}, ctx.Err()
		}
	}
}

// wait blocks until the request ends and returns its result.
func (m *mailbox) wait(ctx context.Context) (Result, error) {
	for {
		m.mu.Lock()
		if m.closed {
			res, err := m.result(), m.err
			m.mu.Unlock()
			return res, err
		}
		m.mu.Unlock()
		select {
		case <-m.notify:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
}

func (m *mailbox) result() Result {
	r := m.res
	r.TokenIDs = append([]int32(nil), r.TokenIDs...)
	r.Audio = append([]float32(nil), r.Audio...)
	return r
}
