package tokenize

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestByteTokenizerDefaults(t *testing.T) {
	tok, err := NewByteTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.VocabSize(), 256+len(defaultSpecials); got != want {
		t.Errorf("VocabSize = %d, want %d", got, want)
	}
	for i, name := range defaultSpecials {
		id, ok := tok.SpecialID(name)
		if !ok || id != int32(256+i) {
			t.Errorf("SpecialID(%q) = %d, %v; want %d", name, id, ok, 256+i)
		}
	}
	if _, ok := tok.SpecialID("<|nope|>"); ok {
		t.Error("SpecialID of an unknown name succeeded")
	}
	imEnd, _ := tok.SpecialID("<|im_end|>")
	pad, _ := tok.SpecialID("<pad>")
	if got, want := tok.Special(), (SpecialIDs{BOS: NoToken, EOS: imEnd, PAD: pad}); got != want {
		t.Errorf("Special = %+v, want %+v", got, want)
	}
}

func TestByteTokenizerEncodeDecode(t *testing.T) {
	tok, err := NewByteTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	imStart, _ := tok.SpecialID("<|im_start|>")
	imEnd, _ := tok.SpecialID("<|im_end|>")
	tests := []struct {
		name string
		text string
		ids  []int32
	}{
		{"empty", "", []int32{}},
		{"ascii", "hi", []int32{'h', 'i'}},
		{"utf8", "é", []int32{0xC3, 0xA9}},
		{"specials", "<|im_start|>a<|im_end|>", []int32{imStart, 'a', imEnd}},
		{"adjacent specials", "<|im_end|><|im_end|>", []int32{imEnd, imEnd}},
		{"partial special is bytes", "<|im_end|", []int32{'<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|'}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := tok.Encode(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, tc.ids) {
				t.Fatalf("Encode(%q) = %v, want %v", tc.text, ids, tc.ids)
			}
			text, err := tok.Decode(ids)
			if err != nil {
				t.Fatal(err)
			}
			if text != tc.text {
				t.Errorf("Decode = %q, want %q", text, tc.text)
			}
		})
	}
}

func TestDecodeInvalidUTF8(t *testing.T) {
	tok, err := NewByteTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	imEnd, _ := tok.SpecialID("<|im_end|>")
	const rep = "\uFFFD"
	tests := []struct {
		name string
		ids  []int32
		want string
	}{
		{"lone continuation", []int32{0x80}, rep},
		{"0xff", []int32{0xFF, 'a'}, rep + "a"},
		{"truncated 3-byte", []int32{0xE4, 0xB8, 'a'}, rep + rep + "a"},
		{"truncated at end", []int32{'a', 0xF0, 0x9F, 0x8E}, "a" + rep + rep + rep},
		{"truncated before special", []int32{0xE4, imEnd}, rep + "<|im_end|>"},
		{"overlong", []int32{0xC0, 0x80}, rep + rep},
		{"surrogate", []int32{0xED, 0xA0, 0x80}, rep + rep + rep},
		{"complete 4-byte", []int32{0xF0, 0x9F, 0x8E, 0x89}, "🎉"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tok.Decode(tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || !utf8.ValidString(got) {
				t.Errorf("Decode(%v) = %q, want %q", tc.ids, got, tc.want)
			}
		})
	}
}

func TestByteTokenizerBadID(t *testing.T) {
	tok, err := NewByteTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int32{-1, int32(tok.VocabSize()), 1 << 30} {
		if _, err := tok.Decode([]int32{'a', id}); !errors.Is(err, ErrBadID) {
			t.Errorf("Decode(%d): err = %v, want ErrBadID", id, err)
		}
	}
}

func TestByteTokenizerOptions(t *testing.T) {
	tok, err := NewByteTokenizer(WithSpecialTokens("<s>", "</s>", "<unk>"), WithRoles("<s>", "</s>", ""))
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 259 {
		t.Errorf("VocabSize = %d, want 259", tok.VocabSize())
	}
	if got := tok.Special(); got != (SpecialIDs{BOS: 256, EOS: 257, PAD: NoToken}) {
		t.Errorf("Special = %+v", got)
	}
	if !slices.Equal(tok.SpecialTokens(), []string{"<s>", "</s>", "<unk>"}) {
		t.Errorf("SpecialTokens = %q", tok.SpecialTokens())
	}
	// Defaults for roles apply when those names exist.
	tok, err = NewByteTokenizer(WithSpecialTokens("<|endoftext|>"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Special(); got != (SpecialIDs{BOS: NoToken, EOS: 256, PAD: 256}) {
		t.Errorf("Special = %+v", got)
	}
	tok, err = NewByteTokenizer(WithSpecialTokens())
	if err != nil || tok.VocabSize() != 256 {
		t.Errorf("no specials: %v, %v", tok, err)
	}

	bad := []struct {
		name string
		opts []Option
		want error
	}{
		{"duplicate", []Option{WithSpecialTokens("<a>", "<a>")}, ErrFormat},
		{"empty name", []Option{WithSpecialTokens("")}, ErrFormat},
		{"invalid utf8", []Option{WithSpecialTokens("\xff")}, ErrFormat},
		{"unknown role", []Option{WithRoles("", "<eos>", "")}, ErrUnknownToken},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewByteTokenizer(tc.opts...); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSpecialMatchingLongestFirst(t *testing.T) {
	tok, err := NewByteTokenizer(WithSpecialTokens("<a>", "<a><b>"))
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := tok.Encode("x<a><b><a>")
	if want := []int32{'x', 257, 256}; !slices.Equal(ids, want) {
		t.Errorf("Encode = %v, want %v", ids, want)
	}
}

// hiddenByter hides TokenBytes, to test StreamDecoder's re-decoding path.
type hiddenByter struct{ Tokenizer }

func TestStreamDecoder(t *testing.T) {
	tok, err := NewByteTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	text := "hé 世界🎉<|im_end|>!"
	ids, _ := tok.Encode(text)
	for _, impl := range []struct {
		name string
		tok  Tokenizer
	}{{"bytes", tok}, {"redecode", hiddenByter{tok}}} {
		t.Run(impl.name, func(t *testing.T) {
			d := NewStreamDecoder(impl.tok)
			var got []string
			for _, id := range ids {
				s, err := d.Push(id)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, s)
			}
			if rest := d.Flush(); rest != "" {
				t.Errorf("Flush = %q, want empty", rest)
			}
			// Text appears exactly when a character completes.
			want := []string{"h", "", "é", " ", "", "", "世", "", "", "界", "", "", "", "🎉", "<|im_end|>", "!"}
			if !slices.Equal(got, want) {
				t.Errorf("pieces = %q, want %q", got, want)
			}
		})
	}
}

func TestStreamDecoderMatchesDecode(t *testing.T) {
	tok, err := NewByteTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	imEnd, _ := tok.SpecialID("<|im_end|>")
	cases := [][]int32{
		{0xE4, 0xB8, 'a', 0xE4, 0xB8, 0xAD},
		{0xF0, 0x9F, imEnd, 0x80},
		{0xFF, 0xFE, 'x'},
		{0xE4, 0xB8},
		{0xC0, 0x80, 0xED, 0xA0, 0x80},
	}
	for _, ids := range cases {
		want, _ := tok.Decode(ids)
		for _, tt := range []Tokenizer{tok, hiddenByter{tok}} {
			if got := streamAll(t, tt, ids); got != want {
				t.Errorf("%T: stream of %v = %q, Decode = %q", tt, ids, got, want)
			}
		}
	}
	// A bad id is an error and changes nothing.
	d := NewStreamDecoder(tok)
	d.Push(0xE4)
	if _, err := d.Push(-5); !errors.Is(err, ErrBadID) {
		t.Errorf("Push(-5): %v", err)
	}
	d.Push(0xB8)
	if s, _ := d.Push(0xAD); s != "中" {
		t.Errorf("after a bad id: %q", s)
	}
}

func streamAll(t testing.TB, tok Tokenizer, ids []int32) string {
	t.Helper()
	d := NewStreamDecoder(tok)
	var b strings.Builder
	for _, id := range ids {
		s, err := d.Push(id)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(s)
	}
	b.WriteString(d.Flush())
	return b.String()
}
