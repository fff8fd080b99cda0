package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omniflow-go/omniflow/omni"
	"github.com/omniflow-go/omniflow/operators/audio"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/serve"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
)

// omniServer serves a tiny streaming engine at POST /v1/generate. prof
// nil means a profiler that records nothing (no folder, no sinks), so
// the environment's settings do not apply. Both are closed at cleanup.
func omniServer(t *testing.T, prof *profiler.Profiler) (*httptest.Server, *omni.Engine) {
	t.Helper()
	if prof == nil {
		var err error
		if prof, err = profiler.New(); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := omni.New(context.Background(), omni.Config{Streaming: true, ChunkFrames: 6, Profiler: prof})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := eng.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	srv := httptest.NewServer(serve.New(prof, serve.WithEndpoint("POST /v1/generate", serve.OmniGenerate(eng))))
	t.Cleanup(srv.Close) // runs before the engine's Close
	return srv, eng
}

// omniPost posts body and returns the status, the body and the headers.
func omniPost(t *testing.T, srv *httptest.Server, path, body string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// generate posts a generation request that must succeed.
func generate(t *testing.T, srv *httptest.Server, body string, hdr ...string) serve.OmniResponse {
	t.Helper()
	code, b, h := omniPost(t, srv, "/v1/generate", body, hdr...)
	if code != http.StatusOK {
		t.Fatalf("generate %s: %d %s", body, code, b)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var res serve.OmniResponse
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if res.ID != h.Get("X-Request-Id") {
		t.Errorf("id %q, header X-Request-Id %q", res.ID, h.Get("X-Request-Id"))
	}
	return res
}

// TestOmniGenerate: the answer is what the engine itself makes of the
// prompt and parameters (requests are deterministic whatever their
// batch), under the client's request id, with audio only on request.
func TestOmniGenerate(t *testing.T) {
	srv, eng := omniServer(t, nil)
	params := omni.SamplingParams{MaxTokens: 8, IgnoreEOS: true, Temperature: 0.8, TopK: 20, TopP: 0.9, Seed: 7}
	want, err := eng.Generate(context.Background(), []omni.Prompt{{Text: "Hello there", System: "Be brief."}}, params)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"prompt":"Hello there","system":"Be brief.","max_tokens":8,"ignore_eos":true,"temperature":0.8,"top_k":20,"top_p":0.9,"seed":7}`

	res := generate(t, srv, body, "X-Request-Id", "client-42")
	if res.ID != "client-42" {
		t.Errorf("id %q, want client-42", res.ID)
	}
	if res.Text != want[0].Text || !slices.Equal(res.TokenIDs, want[0].TokenIDs) || res.FinishReason != "length" {
		t.Errorf("text %q %v (%s), want %q %v (length)", res.Text, res.TokenIDs, res.FinishReason, want[0].Text, want[0].TokenIDs)
	}
	if res.CompletionTokens != 8 || res.PromptTokens != want[0].PromptTokens || res.PromptTokens == 0 {
		t.Errorf("tokens: %d prompt, %d completion; want %d, 8", res.PromptTokens, res.CompletionTokens, want[0].PromptTokens)
	}
	if res.SampleRate != 24000 || res.AudioSeconds <= 0 || res.AudioWAVBase64 != "" {
		t.Errorf("audio: %d Hz, %.3f s, %d base64 bytes unasked", res.SampleRate, res.AudioSeconds, len(res.AudioWAVBase64))
	}
	if !(res.TimeToFirstTokenMs > 0 && res.TimeToFirstAudioMs >= res.TimeToFirstTokenMs && res.LatencyMs >= res.TimeToFirstAudioMs) {
		t.Errorf("times: first token %v ms, first audio %v ms, latency %v ms", res.TimeToFirstTokenMs, res.TimeToFirstAudioMs, res.LatencyMs)
	}
	if res.Done || res.Error != "" {
		t.Errorf("done %v, error %q outside a stream", res.Done, res.Error)
	}

	// Without X-Request-Id the server names the request.
	res = generate(t, srv, `{"prompt":"Hi","max_tokens":3}`)
	if !strings.HasPrefix(res.ID, "http-") || res.CompletionTokens < 1 || res.CompletionTokens > 3 {
		t.Errorf("request without an id: id %q, %d tokens", res.ID, res.CompletionTokens)
	}

	// return_audio: a WAV at the engine's rate, as long as the engine's audio.
	res = generate(t, srv, strings.Replace(body, `{`, `{"return_audio":true,`, 1))
	wav, err := base64.StdEncoding.DecodeString(res.AudioWAVBase64)
	if err != nil {
		t.Fatal(err)
	}
	pcm, info, err := audio.ReadWAV(bytes.NewReader(wav))
	if err != nil {
		t.Fatal(err)
	}
	if info.SampleRate != 24000 || info.SampleRate != res.SampleRate || len(pcm) != len(want[0].Audio) || len(pcm) == 0 {
		t.Errorf("WAV: %d Hz, %d samples; want 24000 Hz, %d samples", info.SampleRate, len(pcm), len(want[0].Audio))
	}
	if got := float64(len(pcm)) / float64(info.SampleRate); got-res.AudioSeconds > 1e-6 || res.AudioSeconds-got > 1e-6 {
		t.Errorf("audio_seconds %v, the WAV lasts %v s", res.AudioSeconds, got)
	}
	for i, s := range pcm { // 16-bit quantization: within half a step
		if d := s - want[0].Audio[i]; d > 1.0/32768 || d < -1.0/32768 {
			t.Fatalf("sample %d: %v, want %v", i, s, want[0].Audio[i])
		}
	}
}

// streamLines posts a streaming request and decodes its NDJSON lines:
// the chunks and the last line.
func streamLines(t *testing.T, srv *httptest.Server, body string, hdr ...string) ([]serve.OmniChunk, serve.OmniResponse) {
	t.Helper()
	code, b, h := omniPost(t, srv, "/v1/generate", body, hdr...)
	if code != http.StatusOK {
		t.Fatalf("stream %s: %d %s", body, code, b)
	}
	if ct := h.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var chunks []serve.OmniChunk
	for _, l := range lines[:len(lines)-1] {
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields() // a chunk line, not a last line
		var c serve.OmniChunk
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("chunk line %q: %v", l, err)
		}
		chunks = append(chunks, c)
	}
	var last serve.OmniResponse
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if !last.Done || last.Error != "" {
		t.Fatalf("last line: done %v, error %q", last.Done, last.Error)
	}
	return chunks, last
}

// TestOmniStream: text and audio chunks, one flushed line each, then the
// whole result; the chunks add up to it.
func TestOmniStream(t *testing.T) {
	srv, eng := omniServer(t, nil)
	want, err := eng.Generate(context.Background(), []omni.Prompt{{Text: "stream me"}}, omni.SamplingParams{MaxTokens: 12, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, withAudio := range []bool{false, true} {
		t.Run(fmt.Sprintf("return_audio=%v", withAudio), func(t *testing.T) {
			chunks, last := streamLines(t, srv, fmt.Sprintf(`{"prompt":"stream me","max_tokens":12,"ignore_eos":true,"stream":true,"return_audio":%v}`, withAudio),
				"X-Request-Id", "streamed")
			var text strings.Builder
			var pcm []byte
			textChunks, audioChunks, samples := 0, 0, 0
			for _, c := range chunks {
				text.WriteString(c.Text)
				if c.Text != "" {
					textChunks++
				}
				if c.AudioSamples > 0 {
					audioChunks++
					samples += c.AudioSamples
					if !withAudio {
						if c.AudioPCM16Base64 != "" {
							t.Error("PCM in a chunk without return_audio")
						}
						continue
					}
					b, err := base64.StdEncoding.DecodeString(c.AudioPCM16Base64)
					if err != nil || len(b) != 2*c.AudioSamples || c.SampleRate != 24000 {
						t.Fatalf("audio chunk: %d bytes for %d samples at %d Hz (%v)", len(b), c.AudioSamples, c.SampleRate, err)
					}
					pcm = append(pcm, b...)
				}
			}
			if textChunks < 1 || audioChunks < 2 {
				t.Errorf("%d text and %d audio chunks; want some of each (6-frame vocoder chunks)", textChunks, audioChunks)
			}
			if text.String() != last.Text || last.Text != want[0].Text || last.CompletionTokens != 12 {
				t.Errorf("chunks say %q, last line %q (%d tokens), engine %q", text.String(), last.Text, last.CompletionTokens, want[0].Text)
			}
			if last.ID != "streamed" || samples != len(want[0].Audio) {
				t.Errorf("id %q, %d samples in chunks; want streamed, %d", last.ID, samples, len(want[0].Audio))
			}
			if !withAudio {
				if last.AudioWAVBase64 != "" {
					t.Error("WAV without return_audio")
				}
				return
			}
			// The chunks' PCM is the WAV's data: a 44-byte PCM16 header, then the samples.
			wav, err := base64.StdEncoding.DecodeString(last.AudioWAVBase64)
			if err != nil || len(wav) < 44 || !bytes.Equal(wav[44:], pcm) {
				t.Errorf("the WAV's %d data bytes differ from the chunks' %d PCM bytes (%v)", len(wav)-44, len(pcm), err)
			}
		})
	}
}

// TestOmniStreamFlushes: the first line arrives while the request is
// still running (it is flushed, not buffered to the end), and a client
// that goes away cancels its request.
func TestOmniStreamFlushes(t *testing.T) {
	srv, _ := omniServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/generate",
		strings.NewReader(`{"prompt":"long","max_tokens":3000,"ignore_eos":true,"stream":true}`))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var c serve.OmniChunk
	if err := json.Unmarshal([]byte(line), &c); err != nil || c.Text == "" {
		t.Fatalf("first line %q: %v", line, err)
	}
	cancel() // 3000 tokens would take a while: the server must give up at once
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "omniflow_requests_in_flight 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled request is still in flight:\n%s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOmniBadRequests: bad input is a 400 that names the problem; a
// closed engine is a 503.
func TestOmniBadRequests(t *testing.T) {
	srv, eng := omniServer(t, nil)
	for _, tc := range []struct{ body, want string }{
		{`{"prompt":"hi","temprature":1}`, `unknown field "temprature"`},
		{`{"prompt":""}`, "prompt is required"},
		{`{}`, "prompt is required"},
		{``, "prompt is required"},
		{`{"prompt":"hi","max_tokens":-1}`, "max_tokens is -1"},
		{`{"prompt":"hi","max_tokens":0}`, "max_tokens is 0"},
		{`{"prompt":"hi","max_tokens":"8"}`, "max_tokens"},
		{`{"prompt":"hi","max_tokens":100000000}`, "max_tokens 100000000 exceed"},
		{`{"prompt":"hi","top_p":1.5}`, "top_p is 1.5, want [0, 1]"},
		{`{"prompt":"hi","top_p":-0.1}`, "top_p is -0.1"},
		{`{"prompt":"hi","temperature":-1}`, "temperature is -1"},
		{`{"prompt":"hi","temperature":1e39}`, "temperature is 1e+39, too large"},
		{`{"prompt":"hi","top_k":-2}`, "top_k is -2"},
		{`{"prompt":"hi","repetition_penalty":-0.5}`, "repetition_penalty is -0.5"},
		{`{"prompt":"hi","seed":-1}`, "seed"},
		{`{"prompt":"hi","stop":["a",""]}`, "stop[1] is empty"},
		{`{"prompt":"hi","stop":[` + strings.Repeat(`"s",`, 16) + `"s"]}`, "stop has 17 strings"},
		{`{"prompt":"hi","stream":"yes"}`, "stream"},
		{`{"prompt":"hi"`, "bad JSON body"},
		{`not json`, "bad JSON body"},
		{`{"prompt":"hi"} {}`, "data after the object"},
		{`{"prompt":"` + strings.Repeat("x", 2<<20) + `"}`, "larger than 1048576 bytes"},
	} {
		code, b, _ := omniPost(t, srv, "/v1/generate", tc.body)
		var e serve.Error
		if err := json.Unmarshal(b, &e); err != nil || code != http.StatusBadRequest || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%.60s: %d %s, want 400 with %q", tc.body, code, b, tc.want)
		}
	}
	if err := eng.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"prompt":"hi"}`, `{"prompt":"hi","stream":true}`} {
		if code, b, _ := omniPost(t, srv, "/v1/generate", body); code != http.StatusServiceUnavailable || !strings.Contains(string(b), "engine closed") {
			t.Errorf("%s to a closed engine: %d %s, want 503", body, code, b)
		}
	}
}

// TestOmniProfileWhileServing: start_profile, concurrent generations,
// stop_profile: complete files whose trace follows each request by its
// id; then the same again on the same running server.
func TestOmniProfileWhileServing(t *testing.T) {
	dir := t.TempDir()
	prof, err := profiler.New(profiler.WithDir(dir), profiler.WithSink(chrome.New()))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := omniServer(t, prof)
	var dirs []string
	for round := range 2 {
		if code, b, _ := omniPost(t, srv, "/start_profile", fmt.Sprintf(`{"name":"round%d"}`, round)); code != http.StatusOK {
			t.Fatalf("round %d: start: %d %s", round, code, b)
		}
		ids := []string{fmt.Sprintf("r%d-a", round), fmt.Sprintf("r%d-b", round), fmt.Sprintf("r%d-c", round)}
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				body := fmt.Sprintf(`{"prompt":"request %d","max_tokens":6,"ignore_eos":true,"stream":%v}`, i, i == 1)
				code, b, _ := omniPost(t, srv, "/v1/generate", body, "X-Request-Id", id)
				if code != http.StatusOK {
					t.Errorf("round %d: %s: %d %s", round, id, code, b)
				}
			})
		}
		wg.Wait()
		code, b, _ := omniPost(t, srv, "/stop_profile", "")
		if code != http.StatusOK {
			t.Fatalf("round %d: stop: %d %s", round, code, b)
		}
		var res serve.StopResponse
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		if res.Error != "" || res.Dir == "" || len(res.Files) == 0 || res.Events == 0 || res.Reason != "stop" {
			t.Fatalf("round %d: stop response %+v", round, res)
		}
		for _, f := range res.Files {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
		tracePath := filepath.Join(res.Dir, chrome.DefaultFileName)
		if !slices.Contains(res.Files, tracePath) {
			t.Fatalf("round %d: files %v lack the trace", round, res.Files)
		}
		tr := chrometest.Validate(t, tracePath)
		for _, id := range ids {
			var hops []string
			for _, f := range tr.Flows {
				if f.Name == "request "+id {
					hops = append(hops, fmt.Sprintf("%d→%d", f.From.Pid, f.To.Pid))
				}
			}
			if len(hops) != 2 {
				t.Errorf("round %d: request %s: flow arrows %v, want thinker → talker → vocoder", round, id, hops)
			}
		}
		var man profiler.Manifest
		data, err := os.ReadFile(filepath.Join(res.Dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &man); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if !slices.Contains(man.Requests, id) {
				t.Errorf("round %d: manifest requests %v lack %s", round, man.Requests, id)
			}
		}
		dirs = append(dirs, res.Dir)
	}
	if dirs[0] == dirs[1] {
		t.Errorf("both profiles went to %s", dirs[0])
	}
	if code, b, _ := omniPost(t, srv, "/stop_profile", ""); code != http.StatusConflict {
		t.Errorf("stop with no profile: %d %s", code, b)
	}
}

// FuzzOmniRequestBody: any body is a 400 naming the problem, or passes
// every check and reaches the engine — closed here, so a 503 — and never
// anything else.
func FuzzOmniRequestBody(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"prompt":"hi"}`, `{"prompt":"hi","max_tokens":4,"temperature":0.7,"top_k":-1,"top_p":1,"seed":3,"stop":["."],"stream":true,"return_audio":true}`,
		`{"prompt":"hi","max_tokens":-5}`, `{"prompt":"hi","top_p":2}`, `{"prompt":"\u0000","system":""}`, `[`, `{"prompt":1}`, `{"prompt":"hi","max_tokens":1e9}`} {
		f.Add(s)
	}
	prof, err := profiler.New()
	if err != nil {
		f.Fatal(err)
	}
	eng, err := omni.New(context.Background(), omni.Config{Profiler: prof})
	if err != nil {
		f.Fatal(err)
	}
	if err := eng.Close(context.Background()); err != nil {
		f.Fatal(err)
	}
	h := serve.New(prof, serve.WithEndpoint("POST /v1/generate", serve.OmniGenerate(eng)))
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/generate", strings.NewReader(body)))
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
		var e serve.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("error response %q for %q", rec.Body.String(), body)
		}
	})
}
