package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/omniflow-go/omniflow/graph"
	"github.com/omniflow-go/omniflow/profiler"
	"github.com/omniflow-go/omniflow/serve"
	"github.com/omniflow-go/omniflow/sinks/chrome"
	"github.com/omniflow-go/omniflow/sinks/chrome/chrometest"
	otelsink "github.com/omniflow-go/omniflow/sinks/otel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer serves POST /v1/generate through a two-stage graph session.
func echoServer(t *testing.T, prof *profiler.Profiler, parents map[string]string, mu *sync.Mutex) (*httptest.Server, func()) {
	t.Helper()
	g := graph.New("echo")
	in := g.Input("text", graph.Text())
	up := g.Add("upper", graph.OperatorFunc(graph.Contract{Name: "upper",
		Inputs: []graph.Port{graph.In("s", graph.Text())}, Outputs: []graph.Port{graph.Out("s", graph.Text())}},
		func(ctx context.Context, io *graph.IO) error {
			s, err := graph.Get[string](io, "s")
			if err != nil {
				return err
			}
			_, st := profiler.Step(ctx, "upper.step")
			st.End()
			return io.Put("s", strings.ToUpper(s))
		}), graph.Stage(0, "upper"))
	rev := g.Add("reverse", graph.OperatorFunc(graph.Contract{Name: "reverse",
		Inputs: []graph.Port{graph.In("s", graph.Text())}, Outputs: []graph.Port{graph.Out("s", graph.Text())}},
		func(ctx context.Context, io *graph.IO) error {
			s, err := graph.Get[string](io, "s")
			if err != nil {
				return err
			}
			r := []rune(s)
			for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
			return io.Put("s", string(r))
		}), graph.Stage(1, "reverse"))
	must(t, g.Connect(in, up.In("s")))
	must(t, g.Connect(up.Out("s"), rev.In("s")))
	must(t, g.Output("text", rev.Out("s")))
	plan, err := g.Build(graph.WithProfiler(prof))
	must(t, err)
	sess, err := plan.Serve(context.Background())
	must(t, err)
	h := func(ctx context.Context, id string, w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Text string `json:"text"`
		}
		if err := serve.DecodeJSON(r, 1<<20, &body); err != nil {
			return err
		}
		if body.Text == "" {
			return serve.BadRequest("text is empty")
		}
		req, err := sess.Submit(ctx, graph.Feeds{"text": body.Text}, graph.RequestID(id))
		if err != nil {
			return err
		}
		res, err := req.Wait(ctx)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(map[string]any{"text": res["text"]})
	}
	srv := httptest.NewServer(serve.New(prof, serve.WithEndpoint("POST /v1/generate", h),
		serve.WithTraceParent(func(id, tp string) {
			mu.Lock()
			parents[id] = tp
			mu.Unlock()
		})))
	return srv, func() {
		srv.Close()
		must(t, sess.Close(context.Background()))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func post(t *testing.T, url, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestToggleProfilingWhileServing: start and stop profiling on a running
// server while requests are in flight; every request completes, and the
// trace holds the requests served while the profile ran.
func TestToggleProfilingWhileServing(t *testing.T) {
	dir := t.TempDir()
	prof, err := profiler.New(profiler.WithDir(dir), profiler.WithSink(chrome.New()))
	must(t, err)
	parents := map[string]string{}
	var mu sync.Mutex
	srv, done := echoServer(t, prof, parents, &mu)
	defer done()

	if code, body, _ := post(t, srv.URL+"/stop_profile", ""); code != http.StatusConflict {
		t.Fatalf("stop before start: %d %s", code, body)
	}
	if code, body, _ := post(t, srv.URL+"/start_profile", `{"stages":[0,1],"name":"live"}`); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, _, _ := post(t, srv.URL+"/start_profile", ``); code != http.StatusConflict {
		t.Fatalf("second start: %d", code)
	}
	var wg sync.WaitGroup
	results := make([]string, 40)
	stopped := make(chan StopResult, 1)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, _ := post(t, srv.URL+"/v1/generate", fmt.Sprintf(`{"text":"req %d"}`, i),
				"X-Request-Id", fmt.Sprintf("r%d", i),
				"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			if code == 200 {
				results[i] = body
			}
			if i == 20 {
				code, body, _ := post(t, srv.URL+"/stop_profile", "")
				stopped <- StopResult{code, body}
			}
		}()
	}
	wg.Wait()
	for i, r := range results {
		want := fmt.Sprintf(`{"text":"%d QER"}`, i)
		if i >= 10 {
			want = fmt.Sprintf(`{"text":"%s QER"}`, reverse(fmt.Sprint(i)))
		}
		if strings.TrimSpace(r) != want {
			t.Errorf("request %d: %q, want %q", i, r, want)
		}
	}
	st := <-stopped
	if st.code != 200 {
		t.Fatalf("stop: %d %s", st.code, st.body)
	}
	var res serve.StopResponse
	must(t, json.Unmarshal([]byte(st.body), &res))
	if res.Dir == "" || len(res.Files) != 3 || res.Error != "" {
		t.Fatalf("stop response %+v", res)
	}
	for _, f := range res.Files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("file %s: %v", f, err)
		}
	}
	chrometest.Validate(t, res.Files[0]) // the trace is complete and well formed
	mu.Lock()
	if parents["r3"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("trace parent of r3: %q", parents["r3"])
	}
	mu.Unlock()
	// A second profile on the same server.
	if code, _, _ := post(t, srv.URL+"/start_profile", `{}`); code != 200 {
		t.Fatal("restart failed")
	}
	if code, _, _ := post(t, srv.URL+"/stop_profile", ``); code != 200 {
		t.Fatal("second stop failed")
	}
}

// A /start_profile without stages or meta takes the server's defaults; the
// request's own values win over them.
func TestProfileDefaults(t *testing.T) {
	prof, err := profiler.New(profiler.WithDir(t.TempDir()), profiler.WithSink(chrome.New()))
	must(t, err)
	srv := httptest.NewServer(serve.New(prof, serve.WithStages(0, 1, 2), serve.WithProfileDefaults([]int{1}, map[string]string{"model": "tiny", "mode": "whole"})))
	defer srv.Close()
	manifest := func(start string) profiler.Manifest {
		t.Helper()
		if code, body, _ := post(t, srv.URL+"/start_profile", start); code != 200 {
			t.Fatalf("start %s: %d %s", start, code, body)
		}
		code, body, _ := post(t, srv.URL+"/stop_profile", "")
		var res serve.StopResponse
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("stop: %d %s", code, body)
		}
		b, err := os.ReadFile(res.Files[len(res.Files)-1])
		must(t, err)
		var m profiler.Manifest
		must(t, json.Unmarshal(b, &m))
		return m
	}
	selected := func(m profiler.Manifest) []int {
		var ids []int
		for _, st := range m.Stages {
			if st.Selected {
				ids = append(ids, st.ID)
			}
		}
		return ids
	}
	m := manifest(`{}`)
	if m.SelectedAll || !slices.Equal(selected(m), []int{1}) || m.Meta["model"] != "tiny" || m.Meta["mode"] != "whole" {
		t.Errorf("defaults not applied: selected %v (all %v), meta %v", selected(m), m.SelectedAll, m.Meta)
	}
	m = manifest(`{"stages":[0,2],"meta":{"mode":"streaming"}}`)
	if !slices.Equal(selected(m), []int{0, 2}) || m.Meta["model"] != "tiny" || m.Meta["mode"] != "streaming" {
		t.Errorf("request values lost: selected %v, meta %v", selected(m), m.Meta)
	}
}

// TestStartProfileStages: a /start_profile naming a stage the server's
// pipeline does not have is a 400 naming the id and the stages there are,
// and no profile starts (one would record nothing and, with MAX_ITERS,
// never stop). The stages come from WithStages, or else from
// WithProfileDefaults; without either the profiler's range applies.
func TestStartProfileStages(t *testing.T) {
	defaults := serve.WithProfileDefaults([]int{0, 1, 2}, nil)
	for _, tc := range []struct {
		name   string
		opts   []serve.Option
		body   string
		code   int
		want   []string
		stages []int // selected, when it starts
	}{
		{"unknown from defaults", []serve.Option{defaults}, `{"stages":[5]}`, 400, []string{"stage 5 does not exist", "stages are 0, 1, 2"}, nil},
		{"one of several unknown", []serve.Option{defaults}, `{"stages":[0,3,2]}`, 400, []string{"stage 3 does not exist", "0, 1, 2"}, nil},
		{"negative", []serve.Option{defaults}, `{"stages":[-1]}`, 400, []string{"stage -1 does not exist"}, nil},
		{"known", []serve.Option{defaults}, `{"stages":[2,0]}`, 200, nil, []int{0, 2}},
		{"defaults", []serve.Option{defaults}, `{}`, 200, nil, []int{0, 1, 2}},
		{"WithStages wins", []serve.Option{serve.WithStages(3, 1), defaults}, `{"stages":[0]}`, 400, []string{"stage 0 does not exist", "stages are 1, 3"}, nil},
		{"WithStages known", []serve.Option{serve.WithStages(3, 1)}, `{"stages":[3]}`, 200, nil, []int{3}},
		{"defaults outside WithStages", []serve.Option{serve.WithStages(0, 1), serve.WithProfileDefaults([]int{0, 4}, nil)}, ``, 500, []string{"default stages", "stage 4 does not exist"}, nil},
		{"no stages known", nil, `{"stages":[300]}`, 400, []string{"out of range"}, nil},
		{"no stages known, in range", nil, `{"stages":[200]}`, 200, nil, []int{200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prof, err := profiler.New(profiler.WithDir(t.TempDir()), profiler.WithSink(chrome.New()))
			must(t, err)
			h := serve.New(prof, tc.opts...)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", "/start_profile", strings.NewReader(tc.body)))
			if rec.Code != tc.code {
				t.Fatalf("%s: %d %s, want %d", tc.body, rec.Code, rec.Body, tc.code)
			}
			if tc.code != 200 {
				var e serve.Error
				must(t, json.Unmarshal(rec.Body.Bytes(), &e))
				for _, w := range tc.want {
					if !strings.Contains(e.Error, w) {
						t.Errorf("error %q lacks %q", e.Error, w)
					}
				}
				if prof.Active() {
					t.Error("a profile started")
				}
				if _, err := prof.Stop(context.Background()); !errors.Is(err, profiler.ErrNotStarted) {
					t.Errorf("stop after a refused start: %v", err)
				}
				return
			}
			res, err := prof.Stop(context.Background())
			must(t, err)
			var sel []int
			for _, st := range res.Stages {
				if st.Selected {
					sel = append(sel, st.ID)
				}
			}
			if !slices.Equal(sel, tc.stages) {
				t.Errorf("selected %v, want %v", sel, tc.stages)
			}
		})
	}
}

type StopResult struct {
	code int
	body string
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func TestBadRequests(t *testing.T) {
	prof, err := profiler.New()
	must(t, err)
	var mu sync.Mutex
	srv, done := echoServer(t, prof, map[string]string{}, &mu)
	defer done()
	for _, tc := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/start_profile", `{"stages":[0,2]`, 400, "bad JSON body"},
		{"/start_profile", `{"stage":[0]}`, 400, "unknown field"},
		{"/start_profile", `{"stages":[999]}`, 400, "out of range"},
		{"/start_profile", `{"stages":"all"}`, 400, "bad JSON body"},
		{"/start_profile", `{} {}`, 400, "data after the object"},
		{"/start_profile", strings.Repeat(" ", 70<<10), 400, "larger than"},
		{"/v1/generate", `{"text":""}`, 400, "text is empty"},
		{"/v1/generate", `not json`, 400, "bad JSON body"},
	} {
		code, body, _ := post(t, srv.URL+tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %.40q: %d %s, want %d with %q", tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	resp, err := http.Get(srv.URL + "/health")
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Errorf("health: %d %q", resp.StatusCode, b)
	}
	resp, err = http.Get(srv.URL + "/metrics")
	must(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "omniflow_requests_total 2") || !strings.Contains(string(b), "omniflow_request_failures_total 2") {
		t.Errorf("metrics:\n%s", b)
	}
	resp, err = http.Get(srv.URL + "/start_profile")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /start_profile: %d", resp.StatusCode)
	}
}

func FuzzStartProfileBody(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"stages":[0,2]}`, `{"stages":[-1]}`, `{"name":"x","meta":{"a":"b"}}`, `[`, `{"stages":[1e9]}`} {
		f.Add(s)
	}
	prof, _ := profiler.New()
	h := serve.New(prof)
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/start_profile", strings.NewReader(body)))
		switch rec.Code {
		case 200:
			prof.Stop(context.Background())
		case 400, 409:
			var e serve.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("error response %q", rec.Body.String())
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}

func TestOTelParents(t *testing.T) {
	exp := otelsink.New(nil)
	f := serve.OTelParents(exp)
	f("a", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f("b", "garbage")
	sc, ok := exp.RequestParent("a")
	if !ok || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsRemote() {
		t.Fatalf("parent of a: %v %v", sc, ok)
	}
	if _, ok := exp.RequestParent("b"); ok {
		t.Fatal("an invalid traceparent was kept")
	}
}
