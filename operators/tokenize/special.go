package tokenize

import (
	"slices"
	"unicode"
	"unicode/utf8"
)

// addedToken is a string matched in raw text before any other
// tokenization (Hugging Face's added_tokens; our byte tokenizer's
// specials).
type addedToken struct {
	content    string
	id         int32
	special    bool
	lstrip     bool // also consume whitespace on the left
	rstrip     bool // also consume whitespace on the right
	singleWord bool // match only when not inside a word
}

// specialMatcher finds added tokens in text, leftmost first and longest
// at a position (the Aho-Corasick leftmost-longest rule Hugging Face uses).
type specialMatcher struct {
	byFirst [256][]addedToken // by first byte, longest first
	any     bool
}

func newSpecialMatcher(toks []addedToken) *specialMatcher {
	m := &specialMatcher{}
	for _, t := range toks {
		if t.content == "" {
			continue
		}
		b := t.content[0]
		m.byFirst[b] = append(m.byFirst[b], t)
		m.any = true
	}
	for i := range m.byFirst {
		slices.SortStableFunc(m.byFirst[i], func(a, b addedToken) int { return len(b.content) - len(a.content) })
	}
	return m
}

// segment is a run of ordinary text (id == NoToken) or one added token.
type segment struct {
	text string
	id   int32
}

// split cuts text into ordinary runs and added tokens, in order. Empty
// runs are left out.
func (m *specialMatcher) split(text string) []segment {
	if !m.any {
		return []segment{{text: text, id: NoToken}}
	}
	var out []segment
	prev := 0 // end of the last match
	for i := 0; i < len(text); {
		t, ok := m.matchAt(text, i)
		if !ok {
			i++
			continue
		}
		start, end := i, i+len(t.content)
		if t.lstrip {
			for start > prev {
				r, n := utf8.DecodeLastRuneInString(text[prev:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= n
			}
		}
		if t.rstrip {
			for end < len(text) {
				r, n := utf8.DecodeRuneInString(text[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += n
			}
		}
		if start > prev {
			out = append(out, segment{text: text[prev:start], id: NoToken})
		}
		out = append(out, segment{text: t.content, id: t.id})
		prev, i = end, end
	}
	if prev < len(text) {
		out = append(out, segment{text: text[prev:], id: NoToken})
	}
	return out
}

func (m *specialMatcher) matchAt(text string, i int) (addedToken, bool) {
	for _, t := range m.byFirst[text[i]] {
		if len(text)-i < len(t.content) || text[i:i+len(t.content)] != t.content {
			continue
		}
		if t.singleWord {
			if i > 0 {
				if r, _ := utf8.DecodeLastRuneInString(text[:i]); isWordRune(r) {
					continue
				}
			}
			if j := i + len(t.content); j < len(text) {
				if r, _ := utf8.DecodeRuneInString(text[j:]); isWordRune(r) {
					continue
				}
			}
		}
		return t, true
	}
	return addedToken{}, false
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
