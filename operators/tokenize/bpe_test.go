package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// toyMerges are the toy vocabulary's merges, in rank order, written in the
// byte-level alphabet (Ġ is a space).
var toyMerges = [][2]string{
	{"h", "e"},     // 0  he
	{"l", "l"},     // 1  ll
	{"he", "ll"},   // 2  hell
	{"hell", "o"},  // 3  hello
	{"Ġ", "w"},     // 4  Ġw
	{"o", "r"},     // 5  or
	{"Ġw", "or"},   // 6  Ġwor
	{"l", "d"},     // 7  ld
	{"Ġwor", "ld"}, // 8  Ġworld
	{"e", "l"},     // 9  el (ranked below l+l: "ell" is e + ll)
	{"a", "b"},     // 10 ab
	{"b", "c"},     // 11 bc
	{"ab", "c"},    // 12 abc
	{"Ġ", "Ġ"},     // 13 ĠĠ
	{"Ċ", "Ċ"},     // 14 ĊĊ
	{"1", "2"},     // 15 12 (Qwen2 splits digits singly, so never used there)
}

var toyAdded = []hfAddedToken{
	{Content: "<|endoftext|>", Special: true},
	{Content: "<|im_start|>", Special: true},
	{Content: "<|im_end|>", Special: true},
	{Content: "<|audio_bos|>", Special: true},
	{Content: "<|audio_eos|>", Special: true},
	{Content: "<|AUDIO|>", Special: true},
	{Content: "<|vision_bos|>", Special: true},
	{Content: "<|vision_eos|>", Special: true},
	{Content: "<|IMAGE|>", Special: true},
	{Content: "<|VIDEO|>", Special: true},
}

type toyOptions struct {
	arrayMerges bool           // merges as [a, b] pairs
	pre         any            // pre_tokenizer; nil: Qwen2's
	normalizer  any            // nil: none
	added       []hfAddedToken // nil: toyAdded
	dropBytes   []byte         // bytes left out of the vocabulary
	unk         string
	mutate      func(m map[string]any)
}

// toyJSON builds a tokenizer.json: the 256 byte characters with id = byte
// value, then the merge results in merge order, then the added tokens.
func toyJSON(t testing.TB, o toyOptions) []byte {
	t.Helper()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		if slices.Contains(o.dropBytes, byte(b)) {
			continue
		}
		vocab[string(ByteToRune(byte(b)))] = b
	}
	next := 256
	var merges []any
	for _, m := range toyMerges {
		if _, ok := vocab[m[0]+m[1]]; !ok {
			vocab[m[0]+m[1]] = next
			next++
		}
		if o.arrayMerges {
			merges = append(merges, []string{m[0], m[1]})
		} else {
			merges = append(merges, m[0]+" "+m[1])
		}
	}
	if o.unk != "" {
		vocab[o.unk] = next
		next++
	}
	added := o.added
	if added == nil {
		added = toyAdded
	}
	var addedJSON []map[string]any
	for _, a := range added {
		id := next
		if a.ID != nil {
			id = int(*a.ID)
		} else {
			next++
		}
		addedJSON = append(addedJSON, map[string]any{
			"id": id, "content": a.Content, "special": a.Special,
			"lstrip": a.LStrip, "rstrip": a.RStrip, "single_word": a.SingleWord, "normalized": false,
		})
	}
	pre := o.pre
	if pre == nil {
		pre = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": Qwen2Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		}}
	}
	model := map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
		"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
	if o.unk != "" {
		model["unk_token"] = o.unk
	}
	file := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": addedJSON, "normalizer": o.normalizer, "pre_tokenizer": pre,
		"post_processor": map[string]any{"type": "ByteLevel"}, "decoder": map[string]any{"type": "ByteLevel"},
		"model": model,
	}
	if o.mutate != nil {
		o.mutate(file)
	}
	data, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func toyBPE(t testing.TB, o toyOptions, opts ...Option) *BPE {
	t.Helper()
	tok, err := ParseTokenizerJSON(toyJSON(t, o), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokens returns the vocabulary strings of ids, for readable failures.
func tokens(t testing.TB, tok *BPE, ids []int32) []string {
	var out []string
	for _, id := range ids {
		found := false
		for s, v := range tok.vocab {
			if v == id {
				out, found = append(out, s), true
				break
			}
		}
		if !found {
			for s, v := range tok.added {
				if v == id {
					out, found = append(out, s), true
					break
				}
			}
		}
		if !found {
			out = append(out, fmt.Sprintf("#%d", id))
		}
	}
	return out
}

func TestBPEMerges(t *testing.T) {
	// Each outcome is worked by hand from toyMerges' ranks.
	tests := []struct {
		text string
		want []string
	}{
		{"hello world", []string{"hello", "Ġworld"}},
		{"hello", []string{"hello"}},
		{"hell", []string{"hell"}},
		{"helo", []string{"he", "l", "o"}},                 // he (0); no "he l" merge
		{"ell", []string{"e", "ll"}},                       // l l (1) beats e l (9)
		{"el", []string{"el"}},                             // only e l applies
		{"lll", []string{"ll", "l"}},                       // leftmost of equal ranks
		{"llll", []string{"ll", "ll"}},                     // both, left first
		{"abc", []string{"abc"}},                           // a b (10) before b c (11), then ab c (12)
		{"bcab", []string{"bc", "ab"}},                     // no "bc ab" merge
		{" w", []string{"Ġw"}},                             // space joins the letters (Qwen2 split)
		{"world", []string{"w", "or", "ld"}},               // no leading space: no Ġ merges
		{"hello  world", []string{"hello", "Ġ", "Ġworld"}}, // \s+(?!\S) leaves one space to the word
		{"a\n\nb", []string{"a", "ĊĊ", "b"}},
		{"12", []string{"1", "2"}}, // single digits: the 1 2 merge never applies
		{"<|im_start|>hello<|im_end|>", []string{"<|im_start|>", "hello", "<|im_end|>"}},
	}
	for _, merges := range []string{"strings", "arrays"} {
		tok := toyBPE(t, toyOptions{arrayMerges: merges == "arrays"})
		for _, tc := range tests {
			t.Run(merges+"/"+tc.text, func(t *testing.T) {
				ids, err := tok.Encode(tc.text)
				if err != nil {
					t.Fatal(err)
				}
				if got := tokens(t, tok, ids); !slices.Equal(got, tc.want) {
					t.Errorf("Encode(%q) = %q, want %q", tc.text, got, tc.want)
				}
				back, err := tok.Decode(ids)
				if err != nil {
					t.Fatal(err)
				}
				if back != tc.text {
					t.Errorf("Decode = %q, want %q", back, tc.text)
				}
			})
		}
	}
}

func TestBPESpecificIDs(t *testing.T) {
	tok := toyBPE(t, toyOptions{})
	// Merge results get ids 256.. in merge order (hello is the 4th, Ġworld
	// the 9th); added tokens follow the 16 merge results.
	ids, err := tok.Encode("hello world<|endoftext|>")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{259, 264, 272}; !slices.Equal(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
	if tok.VocabSize() != 256+len(toyMerges)+len(toyAdded) {
		t.Errorf("VocabSize = %d", tok.VocabSize())
	}
	if id, ok := tok.TokenID("Ġworld"); !ok || id != 264 {
		t.Errorf("TokenID(Ġworld) = %d, %v", id, ok)
	}
	eot, _ := tok.SpecialID("<|endoftext|>")
	imEnd, _ := tok.SpecialID("<|im_end|>")
	if got := tok.Special(); got != (SpecialIDs{BOS: NoToken, EOS: imEnd, PAD: eot}) {
		t.Errorf("Special = %+v", got)
	}
}

func TestBPERoundTrip(t *testing.T) {
	tok := toyBPE(t, toyOptions{})
	for _, s := range []string{
		"", " ", "  ", "\n", "hello world", "Hello, World! 123 4567",
		"I'M here, you're there; it's 'quoted'", "tabs\tand\r\nnewlines\n\n  x",
		"naïve café — 世界 🎉🎉", "<|im_start|>user\nhi<|im_end|>\n", "ends with space ", "\u00a0nbsp\u2003em",
	} {
		ids, err := tok.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tok.Decode(ids)
		if err != nil {
			t.Fatal(err)
		}
		if got != s {
			t.Errorf("round trip %q -> %v -> %q", s, ids, got)
		}
	}
}

func TestBPEGPT2ByteLevel(t *testing.T) {
	// GPT-2's layout: a ByteLevel pre-tokenizer that splits with its own
	// regex and, here, adds a prefix space.
	tok := toyBPE(t, toyOptions{pre: map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true}})
	ids, err := tok.Encode("world hello")
	if err != nil {
		t.Fatal(err)
	}
	// " world" and " hello" are pieces; no merge joins Ġ and h.
	if got, want := tokens(t, tok, ids), []string{"Ġworld", "Ġ", "hello"}; !slices.Equal(got, want) {
		t.Errorf("Encode = %q, want %q", got, want)
	}
	back, _ := tok.Decode(ids)
	if back != " world hello" {
		t.Errorf("Decode = %q (the prefix space stays, as in Hugging Face)", back)
	}
	// GPT-2 digits run together, so the 1 2 merge applies.
	ids, _ = tok.Encode("12")
	if got := tokens(t, tok, ids); !slices.Equal(got, []string{"Ġ", "12"}) {
		t.Errorf("Encode(12) = %q", got)
	}
}

func TestBPENormalizer(t *testing.T) {
	tok := toyBPE(t, toyOptions{normalizer: map[string]any{"type": "NFC"}})
	a, _ := tok.Encode("e\u0301")
	b, _ := tok.Encode("é")
	if !slices.Equal(a, b) {
		t.Errorf("NFC: %v != %v", a, b)
	}
	tok = toyBPE(t, toyOptions{normalizer: map[string]any{"type": "Sequence", "normalizers": []any{
		map[string]any{"type": "NFKC"}, map[string]any{"type": "Lowercase"}}}})
	ids, _ := tok.Encode("HELLO")
	if got := tokens(t, tok, ids); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("lowercase: %q", got)
	}
}

func TestBPEAddedTokenFlags(t *testing.T) {
	id := func(n int64) *int64 { return &n }
	tok := toyBPE(t, toyOptions{added: []hfAddedToken{
		{ID: id(300), Content: "<L>", LStrip: true},
		{ID: id(301), Content: "<R>", RStrip: true},
		{ID: id(302), Content: "ab", SingleWord: true},
	}})
	tests := []struct {
		text string
		want []string
	}{
		{"he  <L>", []string{"he", "<L>"}}, // lstrip eats the spaces before
		{"<R>  he", []string{"<R>", "he"}}, // rstrip eats the spaces after
		{"x ab y", []string{"x", "Ġ", "ab", "Ġ", "y"}},
		{"abc", []string{"abc"}},     // inside a word: not the added token
		{"cab", []string{"c", "ab"}}, // (BPE's own ab)
	}
	for _, tc := range tests {
		ids, err := tok.Encode(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		got := tokens(t, tok, ids)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
	ids, _ := tok.Encode("x ab y")
	if ids[2] != 302 {
		t.Errorf("single_word token not matched: %v", ids)
	}
	ids, _ = tok.Encode("cab")
	if ids[1] == 302 {
		t.Errorf("single_word token matched inside a word: %v", ids)
	}
}

func TestBPEUnknownByte(t *testing.T) {
	tok := toyBPE(t, toyOptions{dropBytes: []byte{'z'}})
	if _, err := tok.Encode("hz"); !errors.Is(err, ErrUnknownToken) || !strings.Contains(err.Error(), "0x7a") {
		t.Errorf("err = %v, want ErrUnknownToken naming 0x7a", err)
	}
	tok = toyBPE(t, toyOptions{dropBytes: []byte{'z'}, unk: "<unk>"})
	ids, err := tok.Encode("hzz")
	if err != nil {
		t.Fatal(err)
	}
	unk, _ := tok.TokenID("<unk>")
	if want := []int32{'h', unk, unk}; !slices.Equal(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
}

func TestBPEIgnoreMerges(t *testing.T) {
	// With ignore_merges a piece that is a whole vocabulary entry is one
	// token even where the merges would not make it. Add "helo" to the
	// vocabulary to see it.
	tok := toyBPE(t, toyOptions{mutate: func(f map[string]any) {
		m := f["model"].(map[string]any)
		m["ignore_merges"] = true
		m["vocab"].(map[string]int)["helo"] = 400
	}})
	ids, _ := tok.Encode("helo")
	if !slices.Equal(ids, []int32{400}) {
		t.Errorf("ids = %v, want [400]", ids)
	}
}

func TestBPEConcurrent(t *testing.T) {
	tok := toyBPE(t, toyOptions{}, WithCacheSize(4)) // a small cache fills up
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				s := fmt.Sprintf("hello world %d abc%d", g, i)
				ids, err := tok.Encode(s)
				if err != nil {
					t.Error(err)
					return
				}
				if back, _ := tok.Decode(ids); back != s {
					t.Errorf("%q -> %q", s, back)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestOpenTokenizerJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, toyJSON(t, toyOptions{}), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := OpenTokenizerJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := tok.Encode("hello"); len(ids) != 1 {
		t.Errorf("ids = %v", ids)
	}
	if _, err := OpenTokenizerJSON(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTokenizerJSON(path); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), path) {
		t.Errorf("bad file: %v", err)
	}
}

func TestBPEDecodeErrors(t *testing.T) {
	tok := toyBPE(t, toyOptions{})
	for _, id := range []int32{-1, int32(tok.VocabSize()), 1 << 30} {
		if _, err := tok.Decode([]int32{id}); !errors.Is(err, ErrBadID) {
			t.Errorf("Decode(%d): %v", id, err)
		}
	}
	// A gap in the ids is a bad id too.
	id := func(n int64) *int64 { return &n }
	tok = toyBPE(t, toyOptions{added: []hfAddedToken{{ID: id(1000), Content: "<x>"}}})
	if _, err := tok.Decode([]int32{999}); !errors.Is(err, ErrBadID) {
		t.Errorf("gap: %v", err)
	}
	if s, err := tok.Decode([]int32{1000}); err != nil || s != "<x>" {
		t.Errorf("Decode(1000) = %q, %v", s, err)
	}
}

func TestParseTokenizerJSONErrors(t *testing.T) {
	model := func(f map[string]any) map[string]any { return f["model"].(map[string]any) }
	vocab := func(f map[string]any) map[string]int { return model(f)["vocab"].(map[string]int) }
	tests := []struct {
		name   string
		data   []byte
		mutate func(map[string]any)
		want   error
		msg    string
	}{
		{name: "malformed", data: []byte(`{"model": {"vocab": {"a": 0}`), want: ErrFormat, msg: "tokenizer.json"},
		{name: "trailing garbage", data: []byte(`{"model": {}} x`), want: ErrFormat},
		{name: "not an object", data: []byte(`[1, 2]`), want: ErrFormat},
		{name: "no model", data: []byte(`{}`), want: ErrFormat, msg: "no model"},
		{name: "wordpiece", mutate: func(f map[string]any) { model(f)["type"] = "WordPiece" }, want: ErrFormat, msg: "WordPiece"},
		{name: "empty vocab", mutate: func(f map[string]any) { model(f)["vocab"] = map[string]int{} }, want: ErrFormat},
		{name: "negative id", mutate: func(f map[string]any) { vocab(f)["neg"] = -3 }, want: ErrFormat, msg: "-3"},
		{name: "huge id", mutate: func(f map[string]any) { vocab(f)["big"] = 1 << 40 }, want: ErrFormat},
		{name: "shared id", mutate: func(f map[string]any) { vocab(f)["dup"] = 5 }, want: ErrFormat, msg: "share id 5"},
		{name: "unknown merge part", mutate: func(f map[string]any) {
			model(f)["merges"] = append(model(f)["merges"].([]any), "q xyz")
		}, want: ErrUnknownToken, msg: `"xyz" is not in the vocab`},
		{name: "merge result missing", mutate: func(f map[string]any) {
			model(f)["merges"] = append(model(f)["merges"].([]any), "q x")
		}, want: ErrUnknownToken, msg: `result "qx"`},
		{name: "merge with three parts", mutate: func(f map[string]any) {
			model(f)["merges"] = []any{"a b c"}
		}, want: ErrFormat},
		{name: "merge pair of one", mutate: func(f map[string]any) {
			model(f)["merges"] = []any{[]string{"a"}}
		}, want: ErrFormat, msg: "1 parts"},
		{name: "merges not a list", mutate: func(f map[string]any) { model(f)["merges"] = 7 }, want: ErrFormat},
		{name: "dropout", mutate: func(f map[string]any) { model(f)["dropout"] = 0.1 }, want: ErrFormat},
		{name: "byte fallback", mutate: func(f map[string]any) { model(f)["byte_fallback"] = true }, want: ErrFormat},
		{name: "unk not in vocab", mutate: func(f map[string]any) { model(f)["unk_token"] = "<unk>" }, want: ErrUnknownToken},
		{name: "no pre-tokenizer", mutate: func(f map[string]any) { f["pre_tokenizer"] = nil }, want: ErrFormat, msg: "byte-level"},
		{name: "metaspace", mutate: func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Metaspace"}
		}, want: ErrFormat, msg: "Metaspace"},
		{name: "split only", mutate: func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\s+`}, "behavior": "Isolated"}
		}, want: ErrFormat, msg: "0 ByteLevel"},
		{name: "bad regex", mutate: func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `a(?=b)`}, "behavior": "Isolated"},
				map[string]any{"type": "ByteLevel"}}}
		}, want: ErrFormat, msg: "a(?=b)"},
		{name: "split behavior", mutate: func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "Removed"},
				map[string]any{"type": "ByteLevel"}}}
		}, want: ErrFormat, msg: "Removed"},
		{name: "normalizer", mutate: func(f map[string]any) { f["normalizer"] = map[string]any{"type": "BertNormalizer"} }, want: ErrFormat},
		{name: "added without id", mutate: func(f map[string]any) {
			f["added_tokens"] = []any{map[string]any{"content": "<x>"}}
		}, want: ErrFormat, msg: "no id"},
		{name: "added empty", mutate: func(f map[string]any) {
			f["added_tokens"] = []any{map[string]any{"id": 500, "content": ""}}
		}, want: ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if data == nil {
				data = toyJSON(t, toyOptions{mutate: tc.mutate})
			}
			_, err := ParseTokenizerJSON(data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tc.msg)
			}
		})
	}
	if _, err := ParseTokenizerJSON(toyJSON(t, toyOptions{}), WithSpecialTokens("<a>")); !errors.Is(err, ErrFormat) {
		t.Errorf("WithSpecialTokens: %v", err)
	}
	if _, err := ParseTokenizerJSON(toyJSON(t, toyOptions{}), WithRoles("<s>", "", "")); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("WithRoles: %v", err)
	}
	if _, err := LoadTokenizerJSON(strings.NewReader(`{"model":`)); !errors.Is(err, ErrFormat) {
		t.Errorf("LoadTokenizerJSON: %v", err)
	}
}

func TestBPEStreamDecoder(t *testing.T) {
	tok := toyBPE(t, toyOptions{})
	text := "hello 世界 world🎉<|im_end|>"
	ids, _ := tok.Encode(text)
	if got := streamAll(t, tok, ids); got != text {
		t.Errorf("stream = %q", got)
	}
	if got := streamAll(t, hiddenByter{tok}, ids); got != text {
		t.Errorf("redecode stream = %q", got)
	}
}

func BenchmarkEncode(b *testing.B) {
	text := strings.Repeat("Hello world, it's a test of the tokenizer: 12345 héllo 世界!\n", 200)
	byteTok, _ := NewByteTokenizer()
	for _, tc := range []struct {
		name string
		tok  Tokenizer
	}{
		{"byte", byteTok},
		{"bpe/cached", toyBPE(b, toyOptions{})},
		{"bpe/uncached", toyBPE(b, toyOptions{}, WithCacheSize(0))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.tok.Encode(text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
