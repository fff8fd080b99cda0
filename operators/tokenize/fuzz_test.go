package tokenize

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzByteLevelRoundTrip(f *testing.F) {
	for _, s := range []string{"", "hello world", "I'M 12345 ", "a\n\n  b\r\n", "é世🎉", "\xff\xe4\xb8", "<|im_end|>x<|AUDIO|>", "  \t\u00a0"} {
		f.Add(s)
	}
	byteTok, err := NewByteTokenizer()
	if err != nil {
		f.Fatal(err)
	}
	bpe := toyBPE(f, toyOptions{})
	gpt2 := toyBPE(f, toyOptions{pre: map[string]any{"type": "ByteLevel", "add_prefix_space": false}})
	f.Fuzz(func(t *testing.T, s string) {
		want := s
		if !utf8.ValidString(s) {
			want = string(appendValidUTF8(nil, []byte(s)))
		}
		for _, tok := range []Tokenizer{byteTok, bpe, gpt2} {
			ids, err := tok.Encode(s)
			if err != nil {
				t.Fatalf("%T: Encode(%q): %v", tok, s, err)
			}
			got, err := tok.Decode(ids)
			if err != nil {
				t.Fatalf("%T: Decode: %v", tok, err)
			}
			if got != want {
				t.Fatalf("%T: Decode(Encode(%q)) = %q, want %q", tok, s, got, want)
			}
			if streamed := streamAll(t, tok, ids); streamed != got {
				t.Fatalf("%T: stream = %q, Decode = %q", tok, streamed, got)
			}
		}
		for _, sp := range []splitter{gpt2Splitter{}, cl100kSplitter{maxDigits: 1}, cl100kSplitter{maxDigits: 3}} {
			pieces := sp.appendSplit(nil, s)
			for _, p := range pieces {
				if p == "" {
					t.Fatalf("%T: empty piece in %q", sp, pieces)
				}
			}
			if strings.Join(pieces, "") != s {
				t.Fatalf("%T: pieces %q do not join to %q", sp, pieces, s)
			}
		}
	})
}

func FuzzLoadTokenizerJSON(f *testing.F) {
	f.Add(toyJSON(f, toyOptions{}))
	f.Add(toyJSON(f, toyOptions{arrayMerges: true, normalizer: map[string]any{"type": "NFC"}}))
	f.Add(toyJSON(f, toyOptions{pre: map[string]any{"type": "ByteLevel", "add_prefix_space": true}, unk: "<unk>", dropBytes: []byte("xyz")}))
	f.Add([]byte(`{"model":{"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel"}}`))
	f.Add([]byte(`{"model":{"vocab":{"a":0},"merges":[["a","a"]]},"added_tokens":[{"id":5,"content":"<x>","lstrip":true,"rstrip":true,"single_word":true}],"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"String":"a"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]}}`))
	f.Add([]byte(`{"model":{"vocab":{"a":-1}}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseTokenizerJSON(data)
		if err != nil {
			return
		}
		for _, s := range []string{"hello world", "a <x> b\n\n", "é世 12"} {
			ids, err := tok.Encode(s)
			if err != nil {
				continue // a byte missing from the vocabulary
			}
			text, err := tok.Decode(ids)
			if err != nil {
				t.Fatalf("Decode of Encode's ids: %v", err)
			}
			if !utf8.ValidString(text) {
				t.Fatalf("Decode gave invalid UTF-8 %q", text)
			}
			_ = streamAll(t, tok, ids)
		}
		_, _ = tok.Decode([]int32{-1, 0, 1, 2, int32(tok.VocabSize())})
	})
}
