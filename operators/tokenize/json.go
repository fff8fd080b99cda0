package tokenize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// MaxTokenizerJSONBytes bounds what LoadTokenizerJSON reads (Qwen2's
// tokenizer.json is about 7 MB).
const MaxTokenizerJSONBytes = 512 << 20

// The parts of tokenizer.json that we read. Unknown fields are ignored;
// post_processor and decoder are not used (decoding is byte-level).
type hfFile struct {
	AddedTokens  []hfAddedToken `json:"added_tokens"`
	Normalizer   *hfNormalizer  `json:"normalizer"`
	PreTokenizer *hfPre         `json:"pre_tokenizer"`
	Model        *hfModel       `json:"model"`
}

type hfAddedToken struct {
	ID         *int64 `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfNormalizer struct {
	Type        string          `json:"type"`
	Normalizers []*hfNormalizer `json:"normalizers"`
}

type hfPre struct {
	Type           string     `json:"type"`
	PreTokenizers  []*hfPre   `json:"pretokenizers"`
	Pattern        *hfPattern `json:"pattern"`
	Behavior       string     `json:"behavior"`
	Invert         bool       `json:"invert"`
	AddPrefixSpace bool       `json:"add_prefix_space"`
	UseRegex       *bool      `json:"use_regex"`
}

type hfPattern struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

type hfModel struct {
	Type                    string           `json:"type"`
	Vocab                   map[string]int64 `json:"vocab"`
	Merges                  json.RawMessage  `json:"merges"`
	UnkToken                *string          `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
	FuseUnk                 bool             `json:"fuse_unk"`
	ByteFallback            bool             `json:"byte_fallback"`
	IgnoreMerges            bool             `json:"ignore_merges"`
	Dropout                 *float64         `json:"dropout"`
}

// OpenTokenizerJSON loads a tokenizer.json file; see ParseTokenizerJSON.
func OpenTokenizerJSON(path string, opts ...Option) (*BPE, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := LoadTokenizerJSON(f, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// LoadTokenizerJSON reads a tokenizer.json (at most
// MaxTokenizerJSONBytes); see ParseTokenizerJSON.
func LoadTokenizerJSON(r io.Reader, opts ...Option) (*BPE, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxTokenizerJSONBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxTokenizerJSONBytes {
		return nil, fmt.Errorf("%w: tokenizer.json is larger than %d bytes", ErrFormat, MaxTokenizerJSONBytes)
	}
	return ParseTokenizerJSON(data, opts...)
}

// ParseTokenizerJSON builds a byte-level BPE tokenizer from the contents
// of a Hugging Face tokenizer.json. Supported:
//
//   - model: type "BPE" with vocab, merges as "a b" strings or [a, b]
//     pairs, unk_token, fuse_unk, ignore_merges (no dropout, no
//     continuing_subword_prefix / end_of_word_suffix, no byte_fallback);
//   - added_tokens, matched in the raw text before anything else;
//   - normalizer: null, NFC, NFD, NFKC, NFKD, Lowercase, or a Sequence;
//   - pre_tokenizer: ByteLevel (add_prefix_space; use_regex splits with
//     GPT2Pattern), Split (Regex or String pattern, behavior Isolated, not
//     inverted), or a Sequence; one ByteLevel is required.
//
// Every merge part and merge result must be in the vocabulary, and ids must
// be distinct within the vocabulary; violations are errors that name the
// token.
func ParseTokenizerJSON(data []byte, opts ...Option) (*BPE, error) {
	c := newConfig(opts)
	if c.specials != nil {
		return nil, fmt.Errorf("%w: WithSpecialTokens applies to the byte tokenizer; a tokenizer.json lists its own added_tokens", ErrFormat)
	}
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: tokenizer.json: %v", ErrFormat, err)
	}
	if f.Model == nil {
		return nil, fmt.Errorf("%w: tokenizer.json has no model", ErrFormat)
	}
	t := &BPE{unk: NoToken, cache: wordCache{cap: c.cacheSize}}
	if err := t.loadModel(f.Model); err != nil {
		return nil, err
	}
	if err := t.loadAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	if f.Normalizer != nil {
		fn, err := normalizer(f.Normalizer)
		if err != nil {
			return nil, err
		}
		t.normalize = fn
	}
	if f.PreTokenizer == nil {
		return nil, fmt.Errorf("%w: no pre_tokenizer: only byte-level BPE (a ByteLevel pre-tokenizer) is supported", ErrFormat)
	}
	byteLevel := 0
	if err := t.loadPre(f.PreTokenizer, &byteLevel); err != nil {
		return nil, err
	}
	if byteLevel != 1 {
		return nil, fmt.Errorf("%w: pre_tokenizer has %d ByteLevel steps, want 1 (only byte-level BPE is supported)", ErrFormat, byteLevel)
	}
	var err error
	if t.roles, err = c.roles(t.SpecialID); err != nil {
		return nil, err
	}
	return t, nil
}

func checkID(id int64, kind, tok string) (int32, error) {
	if id < 0 || id >= math.MaxInt32 {
		return 0, fmt.Errorf("%w: %s %q has id %d, outside [0, %d)", ErrFormat, kind, tok, id, math.MaxInt32)
	}
	return int32(id), nil
}

func (t *BPE) loadModel(m *hfModel) error {
	if m.Type != "" && m.Type != "BPE" {
		return fmt.Errorf("%w: model type %q: only BPE is supported", ErrFormat, m.Type)
	}
	switch {
	case m.Dropout != nil && *m.Dropout != 0:
		return fmt.Errorf("%w: BPE dropout %v is not supported", ErrFormat, *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return fmt.Errorf("%w: continuing_subword_prefix is not supported", ErrFormat)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return fmt.Errorf("%w: end_of_word_suffix is not supported", ErrFormat)
	case m.ByteFallback:
		return fmt.Errorf("%w: byte_fallback is not supported (it is for SentencePiece-style BPE)", ErrFormat)
	case len(m.Vocab) == 0:
		return fmt.Errorf("%w: model has an empty vocab", ErrFormat)
	}
	t.vocab = make(map[string]int32, len(m.Vocab))
	t.tokBytes = make(map[int32][]byte, len(m.Vocab))
	owner := make(map[int32]string, len(m.Vocab))
	for tok, id64 := range m.Vocab {
		id, err := checkID(id64, "vocab token", tok)
		if err != nil {
			return err
		}
		if !validToken(tok) {
			return fmt.Errorf("%w: vocab has an empty or invalid token (id %d)", ErrFormat, id)
		}
		if prev, dup := owner[id]; dup {
			a, b := min(prev, tok), max(prev, tok) // stable message
			return fmt.Errorf("%w: vocab tokens %q and %q share id %d", ErrFormat, a, b, id)
		}
		owner[id] = tok
		t.vocab[tok] = id
		b, ok := byteLevelBytes(tok)
		if !ok {
			b = []byte(tok)
		}
		t.tokBytes[id] = b
		t.vocabSize = max(t.vocabSize, int(id)+1)
	}
	for b := range t.byteIDs {
		t.byteIDs[b] = NoToken
		if id, ok := t.vocab[string(byteToRune[b])]; ok {
			t.byteIDs[b] = id
		}
	}
	if m.UnkToken != nil {
		id, ok := t.vocab[*m.UnkToken]
		if !ok {
			return fmt.Errorf("%w: unk_token %q is not in the vocab", ErrUnknownToken, *m.UnkToken)
		}
		t.unk = id
	}
	t.fuseUnk = m.FuseUnk
	t.ignoreMrg = m.IgnoreMerges
	return t.loadMerges(m.Merges)
}

func (t *BPE) loadMerges(raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var pairs [][2]string
	var lines []string
	if err := json.Unmarshal(raw, &lines); err == nil {
		pairs = make([][2]string, len(lines))
		for i, l := range lines {
			a, b, ok := strings.Cut(l, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return fmt.Errorf("%w: merge %d (%q) is not two tokens separated by one space", ErrFormat, i, l)
			}
			pairs[i] = [2]string{a, b}
		}
	} else {
		var arrs [][]string
		if err2 := json.Unmarshal(raw, &arrs); err2 != nil {
			return fmt.Errorf("%w: merges must be a list of \"a b\" strings or of [a, b] pairs: %v", ErrFormat, err)
		}
		pairs = make([][2]string, len(arrs))
		for i, p := range arrs {
			if len(p) != 2 {
				return fmt.Errorf("%w: merge %d has %d parts, want 2", ErrFormat, i, len(p))
			}
			pairs[i] = [2]string{p[0], p[1]}
		}
	}
	if len(pairs) >= math.MaxInt32 {
		return fmt.Errorf("%w: %d merges", ErrFormat, len(pairs))
	}
	t.merges = make(map[uint64]mergeRule, len(pairs))
	for i, p := range pairs {
		a, okA := t.vocab[p[0]]
		b, okB := t.vocab[p[1]]
		switch {
		case !okA:
			return fmt.Errorf("%w: merge %d (%q %q): %q is not in the vocab", ErrUnknownToken, i, p[0], p[1], p[0])
		case !okB:
			return fmt.Errorf("%w: merge %d (%q %q): %q is not in the vocab", ErrUnknownToken, i, p[0], p[1], p[1])
		}
		id, ok := t.vocab[p[0]+p[1]]
		if !ok {
			return fmt.Errorf("%w: merge %d (%q %q): result %q is not in the vocab", ErrUnknownToken, i, p[0], p[1], p[0]+p[1])
		}
		// A repeated pair takes its last rank, as in Hugging Face (which
		// collects the list into a map).
		t.merges[pairKey(a, b)] = mergeRule{rank: int32(i), id: id}
	}
	return nil
}

func (t *BPE) loadAdded(list []hfAddedToken) error {
	t.added = make(map[string]int32, len(list))
	toks := make([]addedToken, 0, len(list))
	for i, a := range list {
		if a.ID == nil {
			return fmt.Errorf("%w: added token %d (%q) has no id", ErrFormat, i, a.Content)
		}
		id, err := checkID(*a.ID, "added token", a.Content)
		if err != nil {
			return err
		}
		if !validToken(a.Content) {
			return fmt.Errorf("%w: added token %d (id %d) has empty or invalid content", ErrFormat, i, id)
		}
		if prev, dup := t.added[a.Content]; dup && prev != id {
			return fmt.Errorf("%w: added token %q has ids %d and %d", ErrFormat, a.Content, prev, id)
		}
		t.added[a.Content] = id
		t.tokBytes[id] = []byte(a.Content)
		t.vocabSize = max(t.vocabSize, int(id)+1)
		toks = append(toks, addedToken{content: a.Content, id: id, special: a.Special,
			lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord})
	}
	t.matcher = newSpecialMatcher(toks)
	return nil
}

func normalizer(n *hfNormalizer) (func(string) string, error) {
	switch n.Type {
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Lowercase":
		return strings.ToLower, nil
	case "Sequence":
		var fns []func(string) string
		for _, sub := range n.Normalizers {
			if sub == nil {
				return nil, fmt.Errorf("%w: null normalizer in a Sequence", ErrFormat)
			}
			fn, err := normalizer(sub)
			if err != nil {
				return nil, err
			}
			fns = append(fns, fn)
		}
		return func(s string) string {
			for _, fn := range fns {
				s = fn(s)
			}
			return s
		}, nil
	}
	return nil, fmt.Errorf("%w: normalizer type %q is not supported", ErrFormat, n.Type)
}

func (t *BPE) loadPre(p *hfPre, byteLevel *int) error {
	switch p.Type {
	case "Sequence":
		for _, sub := range p.PreTokenizers {
			if sub == nil {
				return fmt.Errorf("%w: null pre-tokenizer in a Sequence", ErrFormat)
			}
			if err := t.loadPre(sub, byteLevel); err != nil {
				return err
			}
		}
		return nil
	case "ByteLevel":
		*byteLevel++
		st := preStage{prefixSpace: p.AddPrefixSpace}
		if p.UseRegex == nil || *p.UseRegex { // Hugging Face's default is true
			st.split = gpt2Splitter{}
		}
		t.pre = append(t.pre, st)
		return nil
	case "Split":
		if p.Behavior != "Isolated" {
			return fmt.Errorf("%w: Split behavior %q: only Isolated is supported", ErrFormat, p.Behavior)
		}
		if p.Invert {
			return fmt.Errorf("%w: inverted Split is not supported", ErrFormat)
		}
		switch {
		case p.Pattern != nil && p.Pattern.Regex != nil:
			sp, err := patternSplitter(*p.Pattern.Regex)
			if err != nil {
				return fmt.Errorf("%w: Split regex %q is neither a known pattern nor valid for Go's regexp: %v",
					ErrFormat, *p.Pattern.Regex, err)
			}
			t.pre = append(t.pre, preStage{split: sp})
		case p.Pattern != nil && p.Pattern.String != nil:
			if *p.Pattern.String == "" {
				return fmt.Errorf("%w: Split with an empty String pattern", ErrFormat)
			}
			t.pre = append(t.pre, preStage{split: literalSplitter{*p.Pattern.String}})
		default:
			return fmt.Errorf("%w: Split without a Regex or String pattern", ErrFormat)
		}
		return nil
	}
	return fmt.Errorf("%w: pre-tokenizer type %q is not supported", ErrFormat, p.Type)
}
