package tokenize

import (
	"slices"
	"strings"
	"testing"
)

// The expected splits are worked by hand from the patterns' alternatives
// (first alternative that matches wins; \s+(?!\S) backs off one rune
// before a non-space).
func TestGPT2Split(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello world's  test\n\nfoo 123abc!!", []string{"Hello", " world", "'s", " ", " test", "\n", "\n", "foo", " 123", "abc", "!!"}},
		{"I'M you're WE'LL", []string{"I", "'", "M", " you", "'re", " WE", "'", "LL"}},
		{"a   b", []string{"a", "  ", " b"}},
		{"trailing   ", []string{"trailing", "   "}},
		{" !?x", []string{" !?", "x"}},
		{"tab\tx", []string{"tab", "\t", "x"}},
		{"über 42x ²³", []string{"über", " 42", "x", " ²³"}},
		{"'", []string{"'"}},
		{"'ll've", []string{"'ll", "'ve"}},
		{"", nil},
	}
	for _, tc := range tests {
		if got := (gpt2Splitter{}).appendSplit(nil, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("gpt2 %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQwen2Split(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello world's  test\n\nfoo 123abc!!", []string{"Hello", " world", "'s", " ", " test", "\n\n", "foo", " ", "1", "2", "3", "abc", "!!"}},
		{"I'M you're WE'LL", []string{"I", "'M", " you", "'re", " WE", "'LL"}},
		{".hello\tfoo", []string{".hello", "\tfoo"}},
		{"x !!\n\ny", []string{"x", " !!\n\n", "y"}},
		{"a  \n\n  b", []string{"a", "  \n\n", " ", " b"}},
		{"a\r\nb", []string{"a", "\r\n", "b"}},
		{"\nfoo", []string{"\n", "foo"}},
		{"end  ", []string{"end", "  "}},
		{"'hello", []string{"'hello"}},
		{"中文，测试", []string{"中文", "，测试"}},
		{"a\u00a0b", []string{"a", "\u00a0b"}},
		{"", nil},
	}
	for _, tc := range tests {
		if got := (cl100kSplitter{maxDigits: 1}).appendSplit(nil, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("qwen2 %q = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got, want := (cl100kSplitter{maxDigits: 3}).appendSplit(nil, "x12345 6"), []string{"x", "123", "45", " ", "6"}; !slices.Equal(got, want) {
		t.Errorf("cl100k = %q, want %q", got, want)
	}
}

func TestPatternSplitter(t *testing.T) {
	for pattern, want := range map[string]splitter{
		GPT2Pattern:   gpt2Splitter{},
		Qwen2Pattern:  cl100kSplitter{maxDigits: 1},
		CL100KPattern: cl100kSplitter{maxDigits: 3},
	} {
		got, err := patternSplitter(pattern)
		if err != nil || got != want {
			t.Errorf("patternSplitter(%q) = %v, %v", pattern, got, err)
		}
	}
	// Other patterns use Go's regexp with Isolated behaviour: the text
	// between matches is kept as pieces too.
	sp, err := patternSplitter(`\d+`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sp.appendSplit(nil, "ab12cd3"), []string{"ab", "12", "cd", "3"}; !slices.Equal(got, want) {
		t.Errorf("regexp split = %q, want %q", got, want)
	}
	if got, want := (literalSplitter{", "}).appendSplit(nil, "a, b, , c"), []string{"a", ", ", "b", ", ", ", ", "c"}; !slices.Equal(got, want) {
		t.Errorf("literal split = %q, want %q", got, want)
	}
}

func TestSplitInvalidUTF8(t *testing.T) {
	in := "a\xffb \xe4\xb8 c\x80"
	for _, sp := range []splitter{gpt2Splitter{}, cl100kSplitter{maxDigits: 1}} {
		if got := strings.Join(sp.appendSplit(nil, in), ""); got != in {
			t.Errorf("%T: pieces join to %q", sp, got)
		}
	}
}

func TestByteLevelAlphabet(t *testing.T) {
	// Spot checks from GPT-2's bytes_to_unicode.
	for b, r := range map[byte]rune{'!': '!', ' ': 'Ġ', '\n': 'Ċ', 0: 'Ā', 0x7F: 'ġ', 0xA0: 'ł', 0xAD: 'Ń', 0xFF: 'ÿ', 0xA1: '¡'} {
		if got := ByteToRune(b); got != r {
			t.Errorf("ByteToRune(0x%02x) = %q, want %q", b, got, r)
		}
	}
	seen := map[rune]bool{}
	for b := range 256 {
		seen[ByteToRune(byte(b))] = true
	}
	if len(seen) != 256 {
		t.Errorf("alphabet has %d distinct runes", len(seen))
	}
	if got := ByteLevelString("hi there\n"); got != "hiĠthereĊ" {
		t.Errorf("ByteLevelString = %q", got)
	}
}
