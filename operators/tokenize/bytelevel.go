package tokenize

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// Default special tokens of the byte tokenizer, in id order from 256: the
// Qwen2.5-Omni names the chat template and the omni stages use, and a pad.
var defaultSpecials = []string{
	"<|endoftext|>",
	"<|im_start|>",
	"<|im_end|>",
	"<|audio_bos|>",
	"<|audio_eos|>",
	"<|AUDIO|>",
	"<|vision_bos|>",
	"<|vision_eos|>",
	"<|IMAGE|>",
	"<|VIDEO|>",
	"<pad>",
}

// DefaultSpecialTokens returns (a copy of) the byte tokenizer's default
// special tokens; token i has id 256+i.
func DefaultSpecialTokens() []string { return slices.Clone(defaultSpecials) }

// byteTable holds the one-byte strings of ids 0..255.
var byteTable = func() (t [256][]byte) {
	for i := range t {
		t[i] = []byte{byte(i)}
	}
	return t
}()

// ByteTokenizer is the default tokenizer, needing no files: ids 0..255 are
// the bytes of the UTF-8 text, and ids from 256 on are named special
// tokens. It is safe for concurrent use.
type ByteTokenizer struct {
	names   []string
	bytes   [][]byte // names as bytes, for TokenBytes
	ids     map[string]int32
	matcher *specialMatcher
	roles   SpecialIDs
}

var _ Tokenizer = (*ByteTokenizer)(nil)
var _ TokenByter = (*ByteTokenizer)(nil)

// NewByteTokenizer returns a byte tokenizer with the default special tokens
// unless options say otherwise.
func NewByteTokenizer(opts ...Option) (*ByteTokenizer, error) {
	c := newConfig(opts)
	if c.specials == nil {
		c.specials = defaultSpecials
	}
	t := &ByteTokenizer{names: slices.Clone(c.specials), ids: make(map[string]int32, len(c.specials))}
	added := make([]addedToken, 0, len(t.names))
	for i, name := range t.names {
		if name == "" || !utf8.ValidString(name) {
			return nil, fmt.Errorf("%w: special token %d (%q) must be non-empty UTF-8", ErrFormat, i, name)
		}
		if _, dup := t.ids[name]; dup {
			return nil, fmt.Errorf("%w: special token %q listed twice", ErrFormat, name)
		}
		id := int32(256 + i)
		t.ids[name] = id
		t.bytes = append(t.bytes, []byte(name))
		added = append(added, addedToken{content: name, id: id, special: true})
	}
	t.matcher = newSpecialMatcher(added)
	var err error
	if t.roles, err = c.roles(t.SpecialID); err != nil {
		return nil, err
	}
	return t, nil
}

// Encode returns the bytes of text as ids, with special-token strings
// replaced by their ids. It never fails.
func (t *ByteTokenizer) Encode(text string) ([]int32, error) {
	out := make([]int32, 0, len(text))
	for _, seg := range t.matcher.split(text) {
		if seg.id != NoToken {
			out = append(out, seg.id)
			continue
		}
		for i := 0; i < len(seg.text); i++ {
			out = append(out, int32(seg.text[i]))
		}
	}
	return out, nil
}

// Decode returns the text of ids; see Tokenizer.Decode.
func (t *ByteTokenizer) Decode(ids []int32) (string, error) { return decodeBytes(t, ids) }

// TokenBytes returns the byte of a byte id or the string of a special id.
func (t *ByteTokenizer) TokenBytes(id int32) ([]byte, error) {
	switch {
	case id >= 0 && id < 256:
		return byteTable[id], nil
	case id >= 256 && int(id-256) < len(t.names):
		return t.bytes[id-256], nil
	}
	return nil, fmt.Errorf("%w: %d (vocabulary size %d)", ErrBadID, id, t.VocabSize())
}

// VocabSize is 256 plus the number of special tokens.
func (t *ByteTokenizer) VocabSize() int { return 256 + len(t.names) }

// Special returns the BOS, EOS and PAD ids.
func (t *ByteTokenizer) Special() SpecialIDs { return t.roles }

// SpecialID returns the id of a special token.
func (t *ByteTokenizer) SpecialID(name string) (int32, bool) {
	id, ok := t.ids[name]
	return id, ok
}

// SpecialTokens returns the special tokens in id order (from 256).
func (t *ByteTokenizer) SpecialTokens() []string { return slices.Clone(t.names) }
