package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/omniflow-go/omniflow/omni"
	"github.com/omniflow-go/omniflow/operators/audio"
)

// maxOmniBody bounds the body of an omni generation request: the prompt
// is text only, so a megabyte is generous.
const maxOmniBody = 1 << 20

// maxStopStrings bounds the "stop" list.
const maxStopStrings = 16

// OmniRequest is the JSON body of an OmniGenerate request. Only prompt is
// required; an absent field keeps the engine's default (greedy decoding
// of up to 64 tokens).
type OmniRequest struct {
	Prompt string `json:"prompt"`
	// System replaces the default (Qwen2.5-Omni's) system prompt.
	System            string   `json:"system,omitempty"`
	MaxTokens         *int     `json:"max_tokens,omitempty"`
	Temperature       *float64 `json:"temperature,omitempty"`
	TopK              *int     `json:"top_k,omitempty"` // -1 or 0: off
	TopP              *float64 `json:"top_p,omitempty"`
	RepetitionPenalty *float64 `json:"repetition_penalty,omitempty"`
	Seed              *uint64  `json:"seed,omitempty"`
	Stop              []string `json:"stop,omitempty"`
	// IgnoreEOS generates past the end-of-text tokens (benchmarks: every
	// request makes max_tokens tokens).
	IgnoreEOS bool `json:"ignore_eos,omitempty"`
	// Stream answers with NDJSON: a line per chunk, then the result.
	Stream bool `json:"stream,omitempty"`
	// ReturnAudio adds the speech: a WAV in the result, and 16-bit PCM in
	// each streamed audio chunk.
	ReturnAudio bool `json:"return_audio,omitempty"`
}

// OmniResponse is the result of a request: the whole answer without
// streaming, the last NDJSON line (Done set) with it. Times are in
// milliseconds from the engine's receipt of the request.
type OmniResponse struct {
	ID                 string  `json:"id"`
	Text               string  `json:"text"`
	TokenIDs           []int32 `json:"token_ids"`
	FinishReason       string  `json:"finish_reason"`
	PromptTokens       int     `json:"prompt_tokens"`
	CompletionTokens   int     `json:"completion_tokens"`
	AudioSeconds       float64 `json:"audio_seconds"`
	SampleRate         int     `json:"sample_rate"`
	TimeToFirstTokenMs float64 `json:"time_to_first_token_ms"`
	TimeToFirstAudioMs float64 `json:"time_to_first_audio_ms"`
	LatencyMs          float64 `json:"latency_ms"`
	// AudioWAVBase64 is the speech as a 16-bit PCM WAV file (return_audio).
	AudioWAVBase64 string `json:"audio_wav_base64,omitempty"`
	// Done marks the last line of a stream; Error is set there when the
	// request failed after the stream began (the status was already 200).
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
}

// OmniChunk is one NDJSON line of a stream before the last: text from the
// thinker or audio from the vocoder.
type OmniChunk struct {
	Text         string `json:"text"`
	AudioSamples int    `json:"audio_samples"`
	// With return_audio, an audio chunk's samples as mono signed 16-bit
	// little-endian PCM at SampleRate: the chunks in order are the data of
	// the result's WAV.
	SampleRate       int    `json:"sample_rate,omitempty"`
	AudioPCM16Base64 string `json:"audio_pcm16_base64,omitempty"`
}

// OmniGenerate serves generation on an omni engine (thinker → talker →
// vocoder), to be mounted with
//
//	serve.WithEndpoint("POST /v1/generate", serve.OmniGenerate(eng))
//
// The body is an OmniRequest; the answer an OmniResponse, or with
// "stream": true application/x-ndjson — an OmniChunk line per chunk,
// flushed as it comes, then an OmniResponse line with "done": true. The
// server's request id (X-Request-Id) is the engine's request id, so the
// trace's flow arrows carry it. A client that goes away cancels its
// request. Bad input is a 400 naming the field, a closed engine a 503,
// any other engine failure a 500.
func OmniGenerate(eng *omni.Engine) Handler {
	return func(ctx context.Context, id string, w http.ResponseWriter, r *http.Request) error {
		var req OmniRequest
		if err := DecodeJSON(r, maxOmniBody, &req); err != nil {
			return err
		}
		params, err := req.params()
		if err != nil {
			return err
		}
		// One path for both answers: Stream checks the request as Generate
		// does and returns its errors as they are.
		st, err := eng.Stream(ctx, omni.Prompt{ID: id, Text: req.Prompt, System: req.System}, params)
		if err != nil {
			return engineError(err)
		}
		defer st.Close()
		if req.Stream {
			streamOmni(ctx, st, eng.SampleRate(), req.ReturnAudio, w)
			return nil
		}
		for {
			_, err := st.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				return engineError(err)
			}
		}
		resp, err := omniResponse(st.Result(), req.ReturnAudio)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
}

// params checks the request and turns it into sampling parameters; every
// error is a 400 naming the field.
func (q *OmniRequest) params() (omni.SamplingParams, error) {
	p := omni.DefaultSamplingParams()
	if q.Prompt == "" {
		return p, BadRequest("prompt is required (a non-empty string)")
	}
	if q.MaxTokens != nil {
		if *q.MaxTokens < 1 {
			return p, BadRequest("max_tokens is %d, want at least 1", *q.MaxTokens)
		}
		p.MaxTokens = *q.MaxTokens
	}
	f32 := func(name string, v *float64, lo, hi float64) (float32, error) {
		if v == nil {
			return 0, nil
		}
		switch {
		case *v >= lo && *v <= hi && !math.IsInf(float64(float32(*v)), 0):
			return float32(*v), nil
		case *v > math.MaxFloat32:
			return 0, BadRequest("%s is %v, too large", name, *v)
		case math.IsInf(hi, 1):
			return 0, BadRequest("%s is %v, want at least %v", name, *v, lo)
		}
		return 0, BadRequest("%s is %v, want [%v, %v]", name, *v, lo, hi)
	}
	var err error
	if p.Temperature, err = f32("temperature", q.Temperature, 0, math.Inf(1)); err != nil {
		return p, err
	}
	if p.TopP, err = f32("top_p", q.TopP, 0, 1); err != nil {
		return p, err
	}
	if p.RepetitionPenalty, err = f32("repetition_penalty", q.RepetitionPenalty, 0, math.Inf(1)); err != nil {
		return p, err
	}
	if q.TopK != nil {
		if *q.TopK < -1 {
			return p, BadRequest("top_k is %d, want -1 or 0 (off) or a positive count", *q.TopK)
		}
		p.TopK = max(*q.TopK, 0)
	}
	if q.Seed != nil {
		p.Seed = *q.Seed
	}
	if len(q.Stop) > maxStopStrings {
		return p, BadRequest("stop has %d strings, want at most %d", len(q.Stop), maxStopStrings)
	}
	for i, s := range q.Stop {
		if s == "" {
			return p, BadRequest("stop[%d] is empty", i)
		}
	}
	p.Stop = q.Stop
	p.IgnoreEOS = q.IgnoreEOS
	return p, nil
}

// engineError maps an engine error to its status: invalid input 400, a
// closed engine 503, anything else (including the client's cancellation)
// the server's 500.
func engineError(err error) error {
	switch {
	case errors.Is(err, omni.ErrInvalid):
		return &HTTPError{Code: http.StatusBadRequest, Err: err}
	case errors.Is(err, omni.ErrClosed):
		return &HTTPError{Code: http.StatusServiceUnavailable, Err: err}
	}
	return err
}

func omniResponse(res omni.Result, withAudio bool) (OmniResponse, error) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	out := OmniResponse{
		ID: res.ID, Text: res.Text, TokenIDs: res.TokenIDs, FinishReason: res.FinishReason,
		PromptTokens: res.PromptTokens, CompletionTokens: len(res.TokenIDs),
		AudioSeconds: res.AudioDuration().Seconds(), SampleRate: res.SampleRate,
		TimeToFirstTokenMs: ms(res.TimeToFirstToken), TimeToFirstAudioMs: ms(res.TimeToFirstAudio),
		LatencyMs: ms(res.Latency),
	}
	if out.TokenIDs == nil {
		out.TokenIDs = []int32{}
	}
	if withAudio && res.SampleRate > 0 {
		var buf bytes.Buffer
		if err := res.WriteWAV(&buf); err != nil {
			return out, fmt.Errorf("request %s: audio: %w", res.ID, err)
		}
		out.AudioWAVBase64 = base64.StdEncoding.EncodeToString(buf.Bytes())
	}
	return out, nil
}

// streamOmni writes st as NDJSON, a flushed line per chunk, then the
// result with done set. Once the 200 is sent a failure can only be
// reported in the last line; a client that went away ends the stream
// (the deferred Close cancels the request).
func streamOmni(ctx context.Context, st *omni.Stream, rate int, withAudio bool, w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	line := func(v any) bool {
		if enc.Encode(v) != nil {
			return false
		}
		err := rc.Flush()
		return err == nil || errors.Is(err, http.ErrNotSupported)
	}
	for {
		c, err := st.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() == nil {
				line(OmniResponse{ID: st.ID(), Done: true, Error: err.Error()})
			}
			return
		}
		oc := OmniChunk{Text: c.Text, AudioSamples: len(c.Audio)}
		if withAudio && len(c.Audio) > 0 {
			oc.SampleRate = rate
			oc.AudioPCM16Base64 = base64.StdEncoding.EncodeToString(audio.AppendPCM16(make([]byte, 0, 2*len(c.Audio)), c.Audio))
		}
		if !line(oc) {
			return
		}
	}
	resp, err := omniResponse(st.Result(), withAudio)
	resp.Done = true
	if err != nil {
		resp.Error = err.Error()
	}
	line(resp)
}
