package tokenize

import (
	"errors"
	"unicode/utf8"
)

// Errors for errors.Is. Every error these functions return wraps one of
// them and says which token, id or field was at fault.
var (
	// ErrBadID is a token id outside the vocabulary.
	ErrBadID = errors.New("tokenize: token id out of range")
	// ErrUnknownToken is a token string (a merge part, a symbol, a special
	// token name) that is not in the vocabulary.
	ErrUnknownToken = errors.New("tokenize: unknown token")
	// ErrFormat is a malformed or unsupported tokenizer file or option.
	ErrFormat = errors.New("tokenize: bad tokenizer definition")
)

// Tokenizer turns text into token ids and back. Implementations are safe
// for concurrent use.
type Tokenizer interface {
	// Encode returns the ids of text. Special-token strings that occur in
	// text (such as "<|im_start|>") become their single special id.
	Encode(text string) ([]int32, error)
	// Decode returns the text of ids: special tokens as their strings,
	// bytes that are not valid UTF-8 as U+FFFD (one per byte that starts
	// no valid sequence), so the result is always valid UTF-8.
	Decode(ids []int32) (string, error)
	// VocabSize is one more than the largest id.
	VocabSize() int
	// Special returns the BOS, EOS and PAD ids (NoToken where absent).
	Special() SpecialIDs
	// SpecialID returns the id of a special (added) token by its string.
	SpecialID(name string) (int32, bool)
}

// NoToken marks an absent special id.
const NoToken int32 = -1

// SpecialIDs are the ids with a fixed role in generation.
type SpecialIDs struct {
	BOS, EOS, PAD int32
}

// TokenByter is implemented by tokenizers whose tokens stand for byte
// strings (both tokenizers in this package). StreamDecoder uses it to emit
// text byte-exactly; for other tokenizers it falls back to re-decoding.
type TokenByter interface {
	// TokenBytes returns the bytes that id stands for (for a special
	// token, its string). The slice must not be modified.
	TokenBytes(id int32) ([]byte, error)
}

// appendValidUTF8 appends b to dst with every byte that does not start a
// valid UTF-8 sequence replaced by U+FFFD (the convention of Go's range
// over a string: an incomplete sequence is one error per byte).
func appendValidUTF8(dst, b []byte) []byte {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}

// decodeBytes is Decode for a TokenByter: the token bytes concatenated and
// made valid UTF-8. Special-token strings are valid UTF-8 and start with a
// non-continuation byte, so concatenating before validating gives the same
// text as validating the pieces around them.
func decodeBytes(tb TokenByter, ids []int32) (string, error) {
	var raw []byte
	for _, id := range ids {
		b, err := tb.TokenBytes(id)
		if err != nil {
			return "", err
		}
		raw = append(raw, b...)
	}
	if utf8.Valid(raw) {
		return string(raw), nil
	}
	return string(appendValidUTF8(make([]byte, 0, len(raw)+8), raw)), nil
}
