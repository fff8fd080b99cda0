package tokenize

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The split patterns byte-level BPE tokenizers use. Go's regexp (RE2) has
// no lookahead, so the ones with \s+(?!\S) are implemented by hand below,
// alternative by alternative, with the ordered-alternation and backtracking
// semantics of the Oniguruma/PCRE engines that Hugging Face and tiktoken
// use; other patterns fall back to Go's regexp when it can compile them.
const (
	// GPT2Pattern is GPT-2's split (the ByteLevel pre-tokenizer's own
	// regex when use_regex is true).
	GPT2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// Qwen2Pattern is Qwen2's Split pre-tokenizer (GPT-4's cl100k split
	// with single digits).
	Qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// CL100KPattern is GPT-4's cl100k split (also Llama 3's): Qwen2's with
	// digits in groups of up to three.
	CL100KPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// splitter cuts text into pre-tokens; appendSplit appends the pieces (in
// order, together exactly text) to dst.
type splitter interface {
	appendSplit(dst []string, text string) []string
}

// patternSplitter returns the splitter for a Split pattern: a hand-written
// one for the known patterns, else Go's regexp with Hugging Face's
// "Isolated" behaviour (matches and the text between them are pieces).
func patternSplitter(pattern string) (splitter, error) {
	switch pattern {
	case GPT2Pattern:
		return gpt2Splitter{}, nil
	case Qwen2Pattern:
		return cl100kSplitter{maxDigits: 1}, nil
	case CL100KPattern:
		return cl100kSplitter{maxDigits: 3}, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	return regexpSplitter{re}, nil
}

type regexpSplitter struct{ re *regexp.Regexp }

func (s regexpSplitter) appendSplit(dst []string, text string) []string {
	prev := 0
	for _, m := range s.re.FindAllStringIndex(text, -1) {
		if m[0] == m[1] {
			continue
		}
		if m[0] > prev {
			dst = append(dst, text[prev:m[0]])
		}
		dst = append(dst, text[m[0]:m[1]])
		prev = m[1]
	}
	if prev < len(text) {
		dst = append(dst, text[prev:])
	}
	return dst
}

// literalSplitter is a Split with a String pattern, Isolated.
type literalSplitter struct{ sep string }

func (s literalSplitter) appendSplit(dst []string, text string) []string {
	for s.sep != "" {
		i := strings.Index(text, s.sep)
		if i < 0 {
			break
		}
		if i > 0 {
			dst = append(dst, text[:i])
		}
		dst = append(dst, text[i:i+len(s.sep)])
		text = text[i+len(s.sep):]
	}
	if text != "" {
		dst = append(dst, text)
	}
	return dst
}

// Character classes of the patterns. Invalid UTF-8 decodes as U+FFFD (one
// byte at a time), which is "other"; pieces are cut from the original
// bytes, so invalid input still round-trips byte for byte.
func isL(r rune) bool { return unicode.IsLetter(r) }
func isN(r rune) bool { return unicode.IsNumber(r) }
func isS(r rune) bool { return unicode.IsSpace(r) }

// isOther is [^\s\p{L}\p{N}].
func isOther(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// scan returns the end of the run of runes from i that satisfy f.
func scan(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, n := runeAt(s, i)
		if !f(r) {
			break
		}
		i += n
	}
	return i
}

// contraction matches 's 't 're 've 'm 'll 'd at i (ASCII case folded if
// fold), returning its length or 0.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	lower := func(c byte) byte {
		if fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v', 'l':
		if i+2 < len(s) {
			want := byte('e')
			if lower(s[i+1]) == 'l' {
				want = 'l'
			}
			if lower(s[i+2]) == want {
				return 3
			}
		}
	}
	return 0
}

// spaceRun handles \s+(?!\S)|\s+ at i, where s[i] is whitespace: the run
// of whitespace, less its last rune when a non-space follows (the
// lookahead's backtrack), but never less than one rune.
func spaceRun(s string, i int) int {
	end := scan(s, i, isS)
	if end == len(s) {
		return end
	}
	_, n := utf8.DecodeLastRuneInString(s[i:end])
	if end-n > i {
		return end - n
	}
	return end
}

// gpt2Splitter implements GPT2Pattern:
//
//	's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
type gpt2Splitter struct{}

func (gpt2Splitter) appendSplit(dst []string, text string) []string {
	for i := 0; i < len(text); {
		end := gpt2Next(text, i)
		dst = append(dst, text[i:end])
		i = end
	}
	return dst
}

func gpt2Next(s string, i int) int {
	if n := contraction(s, i, false); n > 0 {
		return i + n
	}
	r, _ := runeAt(s, i)
	j := i // start of the class run, after an optional space
	if r == ' ' {
		if r2, _ := runeAt(s, i+1); r2 >= 0 && !isS(r2) {
			r, j = r2, i+1
		}
	}
	switch {
	case isL(r):
		return scan(s, j, isL)
	case isN(r):
		return scan(s, j, isN)
	case isOther(r):
		return scan(s, j, isOther)
	}
	return spaceRun(s, i)
}

// cl100kSplitter implements Qwen2Pattern (maxDigits 1) and CL100KPattern
// (maxDigits 3):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,maxDigits}
//	| ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
type cl100kSplitter struct{ maxDigits int }

func (c cl100kSplitter) appendSplit(dst []string, text string) []string {
	for i := 0; i < len(text); {
		end := c.next(text, i)
		dst = append(dst, text[i:end])
		i = end
	}
	return dst
}

func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

func (c cl100kSplitter) next(s string, i int) int {
	if n := contraction(s, i, true); n > 0 {
		return i + n
	}
	r, n := runeAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r) {
		return scan(s, i, isL)
	}
	if !isCRLF(r) && !isN(r) {
		if r2, _ := runeAt(s, i+n); r2 >= 0 && isL(r2) {
			return scan(s, i+n, isL)
		}
	}
	// \p{N}{1,maxDigits}
	if isN(r) {
		j := i
		for k := 0; k < c.maxDigits && j < len(s); k++ {
			r, m := runeAt(s, j)
			if !isN(r) {
				break
			}
			j += m
		}
		return j
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	j := i
	if r == ' ' {
		if r2, _ := runeAt(s, i+1); r2 >= 0 && isOther(r2) {
			r, j = r2, i+1
		}
	}
	if isOther(r) {
		return scan(s, scan(s, j, isOther), isCRLF)
	}
	// r is whitespace. \s*[\r\n]+: up to and including the last \r or \n
	// of the whitespace run.
	end := scan(s, i, isS)
	if k := strings.LastIndexAny(s[i:end], "\r\n"); k >= 0 {
		return i + k + 1
	}
	return spaceRun(s, i)
}
