package omni

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/operators/nn"
	"github.com/omniflow-go/omniflow/operators/tokenize"
	"github.com/omniflow-go/omniflow/tensor"
	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// tinyQwen2 is the checkpoint the tests write: a real Qwen2 layout at a
// size where a float64 reference forward pass is instant.
func tinyQwen2(tied bool) DecoderConfig {
	return DecoderConfig{Vocab: 300, Hidden: 32, Intermediate: 80, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		RMSEps: 1e-6, RopeTheta: 10000, MaxPositions: 128, TiedEmbeddings: tied}
}

// qwen2Shapes lists every weight of a Qwen2ForCausalLM with its shape.
func qwen2Shapes(c DecoderConfig) map[string][]int {
	s := map[string][]int{
		"model.embed_tokens.weight": {c.Vocab, c.Hidden},
		"model.norm.weight":         {c.Hidden},
	}
	if !c.TiedEmbeddings {
		s["lm_head.weight"] = []int{c.Vocab, c.Hidden}
	}
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	for i := range c.Layers {
		p := "model.layers." + strconv.Itoa(i) + "."
		s[p+"input_layernorm.weight"] = []int{c.Hidden}
		s[p+"post_attention_layernorm.weight"] = []int{c.Hidden}
		s[p+"self_attn.q_proj.weight"] = []int{q, c.Hidden}
		s[p+"self_attn.q_proj.bias"] = []int{q}
		s[p+"self_attn.k_proj.weight"] = []int{kv, c.Hidden}
		s[p+"self_attn.k_proj.bias"] = []int{kv}
		s[p+"self_attn.v_proj.weight"] = []int{kv, c.Hidden}
		s[p+"self_attn.v_proj.bias"] = []int{kv}
		s[p+"self_attn.o_proj.weight"] = []int{c.Hidden, q}
		s[p+"mlp.gate_proj.weight"] = []int{c.Intermediate, c.Hidden}
		s[p+"mlp.up_proj.weight"] = []int{c.Intermediate, c.Hidden}
		s[p+"mlp.down_proj.weight"] = []int{c.Hidden, c.Intermediate}
	}
	return s
}

// writeQwen2 writes config.json and model.safetensors with random weights
// (norm scales around 1, the rest N(0, 0.2²): large enough that every
// layer matters) and returns the weights as float64.
func writeQwen2(t testing.TB, dir string, c DecoderConfig, seed uint64) map[string][]float64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	ts := map[string]*tensor.Tensor{}
	ref := map[string][]float64{}
	for name, shape := range qwen2Shapes(c) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		r := make([]float64, n)
		for i := range v {
			x := rng.NormFloat64() * 0.2
			if strings.HasSuffix(name, "norm.weight") {
				x = 1 + rng.NormFloat64()*0.1
			}
			v[i] = float32(x)
			r[i] = float64(v[i])
		}
		tt, err := tensor.FromFloat32(v, shape...)
		if err != nil {
			t.Fatal(err)
		}
		ts[name] = tt
		ref[name] = r
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2",
		"hidden_size": c.Hidden, "intermediate_size": c.Intermediate, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "rms_norm_eps": c.RMSEps,
		"rope_theta": c.RopeTheta, "vocab_size": c.Vocab, "max_position_embeddings": c.MaxPositions,
		"tie_word_embeddings": c.TiedEmbeddings, "torch_dtype": "float32", "hidden_act": "silu",
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return ref
}

// refQwen2 is an independent float64 forward pass of Qwen2ForCausalLM
// (transformers' modeling_qwen2, written out from the equations): the
// embedding, per layer x += o_proj(attn(RMSNorm(x))) with q/k/v biases,
// rotate-half RoPE with rope_theta and causal grouped-query attention,
// then x += down(silu(gate(h))·up(h)) for h = RMSNorm(x); the final
// RMSNorm and lm_head (embed_tokens when tied). It recomputes the whole
// sequence, without a cache, and returns the logits of every position.
func refQwen2(c DecoderConfig, w map[string][]float64, ids []int32) [][]float64 {
	T, D := len(ids), c.Hidden
	x := make([][]float64, T)
	for t, id := range ids {
		x[t] = append([]float64(nil), w["model.embed_tokens.weight"][int(id)*D:(int(id)+1)*D]...)
	}
	rms := func(v []float64, g []float64) []float64 {
		var ss float64
		for _, a := range v {
			ss += a * a
		}
		s := 1 / math.Sqrt(ss/float64(len(v))+c.RMSEps)
		out := make([]float64, len(v))
		for i := range v {
			out[i] = v[i] * s * g[i]
		}
		return out
	}
	lin := func(v []float64, wt []float64, b []float64, out int) []float64 {
		in := len(v)
		y := make([]float64, out)
		for o := range out {
			var s float64
			for i := range in {
				s += wt[o*in+i] * v[i]
			}
			if b != nil {
				s += b[o]
			}
			y[o] = s
		}
		return y
	}
	rope := func(v []float64, pos int) {
		d := c.HeadDim
		for h := 0; h < len(v)/d; h++ {
			head := v[h*d : (h+1)*d]
			for i := range d / 2 {
				freq := math.Pow(c.RopeTheta, -2*float64(i)/float64(d))
				sin, cos := math.Sincos(float64(pos) * freq)
				a, b := head[i], head[i+d/2]
				head[i] = a*cos - b*sin
				head[i+d/2] = b*cos + a*sin
			}
		}
	}
	hd, H, KV := c.HeadDim, c.Heads, c.KVHeads
	for l := range c.Layers {
		p := "model.layers." + strconv.Itoa(l) + "."
		q := make([][]float64, T)
		k := make([][]float64, T)
		v := make([][]float64, T)
		for t := range T {
			h := rms(x[t], w[p+"input_layernorm.weight"])
			q[t] = lin(h, w[p+"self_attn.q_proj.weight"], w[p+"self_attn.q_proj.bias"], H*hd)
			k[t] = lin(h, w[p+"self_attn.k_proj.weight"], w[p+"self_attn.k_proj.bias"], KV*hd)
			v[t] = lin(h, w[p+"self_attn.v_proj.weight"], w[p+"self_attn.v_proj.bias"], KV*hd)
			rope(q[t], t)
			rope(k[t], t)
		}
		for t := range T {
			att := make([]float64, H*hd)
			for h := range H {
				g := h / (H / KV)
				scores := make([]float64, t+1)
				mx := math.Inf(-1)
				for s := 0; s <= t; s++ {
					var dot float64
					for i := range hd {
						dot += q[t][h*hd+i] * k[s][g*hd+i]
					}
					scores[s] = dot / math.Sqrt(float64(hd))
					mx = math.Max(mx, scores[s])
				}
				var z float64
				for s := range scores {
					scores[s] = math.Exp(scores[s] - mx)
					z += scores[s]
				}
				for s := range scores {
					for i := range hd {
						att[h*hd+i] += scores[s] / z * v[s][g*hd+i]
					}
				}
			}
			o := lin(att, w[p+"self_attn.o_proj.weight"], nil, D)
			for i := range D {
				x[t][i] += o[i]
			}
			h := rms(x[t], w[p+"post_attention_layernorm.weight"])
			gt := lin(h, w[p+"mlp.gate_proj.weight"], nil, c.Intermediate)
			up := lin(h, w[p+"mlp.up_proj.weight"], nil, c.Intermediate)
			for i := range gt {
				gt[i] = gt[i] / (1 + math.Exp(-gt[i])) * up[i]
			}
			m := lin(gt, w[p+"mlp.down_proj.weight"], nil, D)
			for i := range D {
				x[t][i] += m[i]
			}
		}
	}
	head := w["lm_head.weight"]
	if c.TiedEmbeddings {
		head = w["model.embed_tokens.weight"]
	}
	out := make([][]float64, T)
	for t := range T {
		out[t] = lin(rms(x[t], w["model.norm.weight"]), head, nil, c.Vocab)
	}
	return out
}

// logitTol bounds |ours − reference| for a logit: float32 arithmetic has a
// unit roundoff of 6e-8; dot products of ≤ 80 terms of O(1) values, two
// layers with RMSNorm (whose 1/rms amplifies absolute errors by at most
// 1/rms ≈ 5 here) and softmax leave errors around 1e-5; 2e-4 is 10× that
// plus headroom, and far below the spread of the logits (O(1)), so a wrong
// formula (a missing bias, a RoPE off by one, the other rotation) fails.
const logitTol = 2e-4

func checkLogits(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	worst, at := 0.0, 0
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > logitTol*(1+math.Abs(want[at])) || math.IsNaN(worst) {
		t.Errorf("%s: logit %d is %g, reference %g (|diff| %g > %g)", what, at, got[at], want[at], worst, logitTol)
	}
}

// TestQwen2CheckpointMatchesFloat64Reference loads a checkpoint written
// here and compares the thinker's logits for a prompt (prefill, every
// position) and for two decode steps (through the KV cache) with the
// float64 reference, tied and untied.
func TestQwen2CheckpointMatchesFloat64Reference(t *testing.T) {
	for _, tied := range []bool{false, true} {
		t.Run("tied="+strconv.FormatBool(tied), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			c := tinyQwen2(tied)
			w := writeQwen2(t, dir, c, 7)
			f, err := os.Open(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := ReadQwen2Config(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got != c {
				t.Fatalf("config.json read as %+v, want %+v", got, c)
			}
			ck, err := openCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			d, err := newDecoder(nn.Checkpoint(ck), "thinker", "model", "lm_head", got)
			if err != nil {
				t.Fatal(err)
			}
			ids := []int32{17, 250, 3, 99, 42, 7, 180}
			st, err := d.newState(16)
			if err != nil {
				t.Fatal(err)
			}
			x, err := d.embedIDs(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			h, err := d.forward(ctx, x, []segment{{state: st, rows: len(ids)}})
			if err != nil {
				t.Fatal(err)
			}
			rows := make([]int, len(ids))
			for i := range rows {
				rows[i] = i
			}
			lg, err := d.logits(ctx, h, rows)
			if err != nil {
				t.Fatal(err)
			}
			ref := refQwen2(c, w, ids)
			for p := range ids {
				checkLogits(t, "prefill position "+strconv.Itoa(p), lg.Float32s()[p*c.Vocab:(p+1)*c.Vocab], ref[p])
			}
			// Two decode steps: the greedy token, fed back one at a time.
			seq := append([]int32(nil), ids...)
			last := lg.Float32s()[(len(ids)-1)*c.Vocab:]
			for step := range 2 {
				next := argmax32(last)
				seq = append(seq, next)
				x, _ := d.embedIDs(ctx, []int32{next})
				h, err := d.forward(ctx, x, []segment{{state: st, rows: 1}})
				if err != nil {
					t.Fatal(err)
				}
				lg, err := d.logits(ctx, h, []int{0})
				if err != nil {
					t.Fatal(err)
				}
				ref := refQwen2(c, w, seq)
				checkLogits(t, "decode step "+strconv.Itoa(step), lg.Float32s(), ref[len(seq)-1])
				last = lg.Float32s()
			}
			if st.Len() != len(ids)+2 {
				t.Errorf("cache holds %d positions, want %d", st.Len(), len(ids)+2)
			}
		})
	}
}

func argmax32(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// TestEngineLoadsQwen2Checkpoint: with CheckpointDir the engine's thinker
// is that model: greedy generation from a raw prompt follows the float64
// reference's argmax token by token.
func TestEngineLoadsQwen2Checkpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := tinyQwen2(false)
	w := writeQwen2(t, dir, c, 11)
	e, err := New(ctx, Config{CheckpointDir: dir, Profiler: noProfiler(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	if e.Model().Thinker != c {
		t.Fatalf("thinker %+v, want %+v", e.Model().Thinker, c)
	}
	p := SamplingParams{MaxTokens: 4, IgnoreEOS: true, Audio: AudioParams{Disabled: true}}
	res, err := e.Generate(ctx, []Prompt{{Text: "hi", Raw: true}}, p)
	if err != nil {
		t.Fatal(err)
	}
	seq := []int32{'h', 'i'}
	for i, got := range res[0].TokenIDs {
		ref := refQwen2(c, w, seq)[len(seq)-1]
		// The byte tokenizer decodes ids below 267 only: the engine never
		// samples the others.
		best := int32(0)
		for id := range int32(e.Tokenizer().VocabSize()) {
			if ref[id] > ref[best] {
				best = id
			}
		}
		if got != best {
			t.Fatalf("token %d is %d, the reference's argmax %d", i, got, best)
		}
		seq = append(seq, got)
	}
}

// TestCheckpointErrorsNameTheWeight: a missing or mis-shaped weight fails
// New, naming it.
func TestCheckpointErrorsNameTheWeight(t *testing.T) {
	ctx := context.Background()
	c := tinyQwen2(false)
	for _, tc := range []struct {
		name   string
		edit   func(map[string]*tensor.Tensor)
		expect string
	}{
		{"missing", func(m map[string]*tensor.Tensor) { delete(m, "model.layers.1.self_attn.k_proj.bias") }, "model.layers.1.self_attn.k_proj.bias"},
		{"misshaped", func(m map[string]*tensor.Tensor) {
			m["model.layers.0.mlp.up_proj.weight"] = tensor.Zeros(tensor.Float32, 81, 32)
		}, "model.layers.0.mlp.up_proj.weight has shape [81 32]"},
		{"lm_head", func(m map[string]*tensor.Tensor) { delete(m, "lm_head.weight") }, "lm_head.weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeQwen2(t, dir, c, 1)
			f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]*tensor.Tensor{}
			for _, n := range f.Names() {
				if m[n], err = f.TensorCopy(n); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			tc.edit(m)
			if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), m, nil); err != nil {
				t.Fatal(err)
			}
			_, err = New(ctx, Config{CheckpointDir: dir, Profiler: noProfiler(t)})
			if err == nil || !strings.Contains(err.Error(), tc.expect) || !errors.Is(err, nn.ErrWeight) {
				t.Fatalf("New: %v, want an nn.ErrWeight naming %q", err, tc.expect)
			}
		})
	}
	t.Run("config", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"hidden_size": 32}`), 0o644)
		_, err := New(ctx, Config{CheckpointDir: dir, Profiler: noProfiler(t)})
		if err == nil || !strings.Contains(err.Error(), "num_hidden_layers") {
			t.Fatalf("New: %v, want the missing config fields named", err)
		}
	})
}

// TestDecoderBatchInvariant: a sequence's hidden states and logits are
// bit for bit the same alone and in ragged batches — with other prompts
// being prefilled, with up to 12 other decoding sequences (more than one
// small-product group) — so batching cannot change a sampled token.
func TestDecoderBatchInvariant(t *testing.T) {
	ctx := context.Background()
	for _, preset := range []string{"tiny", "small"} {
		t.Run(preset, func(t *testing.T) {
			m, _ := Preset(preset)
			d, err := newDecoder(nn.Random(3), "thinker", "model", "lm_head", m.Thinker)
			if err != nil {
				t.Fatal(err)
			}
			prompt := func(seed, n int) []int32 {
				ids := make([]int32, n)
				for i := range ids {
					ids[i] = int32((seed*31 + i*17) % 256)
				}
				return ids
			}
			// step runs one ragged batch: inputs[i] are segment i's token ids.
			step := func(states []*kvState, inputs [][]int32) [][]float32 {
				var ids []int32
				segs := make([]segment, len(states))
				for i, s := range states {
					ids = append(ids, inputs[i]...)
					segs[i] = segment{state: s, rows: len(inputs[i])}
				}
				x, err := d.embedIDs(ctx, ids)
				if err != nil {
					t.Fatal(err)
				}
				h, err := d.forward(ctx, x, segs)
				if err != nil {
					t.Fatal(err)
				}
				last := make([]int, len(states))
				off := 0
				for i, in := range inputs {
					off += len(in)
					last[i] = off - 1
				}
				lg, err := d.logits(ctx, h, last)
				if err != nil {
					t.Fatal(err)
				}
				out := make([][]float32, len(states))
				dim, v := d.cfg.Hidden, d.cfg.Vocab
				for i := range states {
					out[i] = append(append([]float32(nil), h.Float32s()[last[i]*dim:(last[i]+1)*dim]...), lg.Float32s()[i*v:(i+1)*v]...)
				}
				return out
			}
			newState := func() *kvState {
				s, err := d.newState(64)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			a := prompt(1, 7)
			decodes := []int32{65, 66, 67}
			// Alone.
			sa := newState()
			want := [][]float32{step([]*kvState{sa}, [][]int32{a})[0]}
			for _, tok := range decodes {
				want = append(want, step([]*kvState{sa}, [][]int32{{tok}})[0])
			}
			// Batched: prefilled with another prompt; then decoding next to
			// a new prompt's prefill; then among 12 decoding sequences; then
			// last in a batch of 9.
			sa = newState()
			others := make([]*kvState, 12)
			for i := range others {
				others[i] = newState()
				step([]*kvState{others[i]}, [][]int32{prompt(10+i, 3+i)})
			}
			var got [][]float32
			got = append(got, step([]*kvState{newState(), sa}, [][]int32{prompt(2, 12), a})[1])
			got = append(got, step([]*kvState{others[0], sa, newState()}, [][]int32{{5}, {decodes[0]}, prompt(3, 20)})[1])
			batch := append(append([]*kvState{}, others[1:6]...), sa)
			batch = append(batch, others[6:]...)
			in := make([][]int32, len(batch))
			for i := range in {
				in[i] = []int32{int32(i + 1)}
			}
			in[5] = []int32{decodes[1]}
			got = append(got, step(batch, in)[5])
			batch = append(append([]*kvState{}, others[:8]...), sa)
			in = make([][]int32, len(batch))
			for i := range in {
				in[i] = []int32{int32(i + 9)}
			}
			in[8] = []int32{decodes[2]}
			got = append(got, step(batch, in)[8])
			for s := range want {
				if !slices.Equal(got[s], want[s]) {
					n := 0
					for i := range want[s] {
						if got[s][i] != want[s][i] {
							n++
						}
					}
					t.Errorf("step %d: %d of %d hidden and logit values differ batched", s, n, len(want[s]))
				}
			}
		})
	}
}

func TestRowGroups(t *testing.T) {
	seg := func(rows ...int) []segment {
		s := make([]segment, len(rows))
		for i, r := range rows {
			s[i].rows = r
		}
		return s
	}
	for _, tc := range []struct {
		segs []segment
		want [][2]int
	}{
		{seg(5), [][2]int{{0, 5}}},
		{seg(1, 1, 1), [][2]int{{0, 3}}},
		{seg(1, 4, 1, 1), [][2]int{{0, 1}, {1, 5}, {5, 7}}},
		{seg(1, 1, 1, 1, 1, 1, 1, 1, 1, 1), [][2]int{{0, 8}, {8, 10}}},
	} {
		if got := rowGroups(tc.segs); !slices.Equal(got, tc.want) {
			t.Errorf("rowGroups(%v) = %v, want %v", tc.segs, got, tc.want)
		}
	}
}

// writeTokenizerJSON writes a byte-level BPE tokenizer.json: the 256 byte
// symbols, two merges ("h e", "he llo" needs "l l"... kept small), and
// the Qwen2.5-Omni chat template's special tokens.
func writeTokenizerJSON(t *testing.T, dir string) {
	t.Helper()
	vocab := map[string]int{}
	for b := range 256 {
		vocab[string(tokenize.ByteToRune(byte(b)))] = b
	}
	merges := []string{"h e", "l l", "he ll", "hell o"}
	for i, m := range merges {
		vocab[strings.ReplaceAll(m, " ", "")] = 256 + i
	}
	var added []map[string]any
	for i, s := range []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|audio_eos|>", "<|AUDIO|>", "<|vision_bos|>", "<|vision_eos|>", "<|IMAGE|>", "<|VIDEO|>"} {
		added = append(added, map[string]any{"id": 260 + i, "content": s, "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false})
	}
	file := map[string]any{
		"version": "1.0", "added_tokens": added, "normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": tokenize.Qwen2Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		}},
		"decoder": map[string]any{"type": "ByteLevel"},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges},
	}
	data, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEngineUsesCheckpointTokenizer: a tokenizer.json beside the weights
// is the engine's tokenizer: prompts are its BPE ids (the chat template's
// special tokens included) and the output decodes through it.
func TestEngineUsesCheckpointTokenizer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeQwen2(t, dir, tinyQwen2(false), 5)
	writeTokenizerJSON(t, dir)
	e, err := New(ctx, Config{CheckpointDir: dir, Profiler: noProfiler(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	tok := e.Tokenizer()
	if _, ok := tok.(*tokenize.BPE); !ok || tok.VocabSize() != 270 {
		t.Fatalf("tokenizer %T with %d ids", tok, tok.VocabSize())
	}
	if ids, _ := tok.Encode("hello"); !slices.Equal(ids, []int32{259}) {
		t.Fatalf("hello encodes to %v", ids)
	}
	res, err := e.Generate(ctx, []Prompt{{Text: "hello", System: "Be brief."}}, SamplingParams{MaxTokens: 6, IgnoreEOS: true, Audio: AudioParams{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := tokenize.RenderChat([]tokenize.Message{{Role: "user", Parts: []tokenize.Part{tokenize.TextPart("hello")}}},
		tokenize.ChatOptions{System: "Be brief.", AddGenerationPrompt: true})
	want, _ := tok.Encode(text)
	if res[0].PromptTokens != len(want) {
		t.Errorf("%d prompt tokens, the template encodes to %d", res[0].PromptTokens, len(want))
	}
	if dec, _ := tok.Decode(res[0].TokenIDs); dec != res[0].Text || len(res[0].TokenIDs) != 6 {
		t.Errorf("text %q, tokens %v decode to %q", res[0].Text, res[0].TokenIDs, dec)
	}
}
