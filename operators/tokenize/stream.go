package tokenize

import (
	"strings"
	"unicode/utf8"
)

// StreamDecoder turns ids arriving one at a time (from an autoregressive
// decoder) into text, emitting text only once its UTF-8 sequences are
// complete: a character split over several byte tokens comes out whole, in
// the Push that completes it. The concatenation of everything Push and
// Flush return equals Decode of all the ids. A StreamDecoder is for one
// stream and one goroutine.
type StreamDecoder struct {
	tok Tokenizer
	tb  TokenByter // nil: re-decode a window of ids instead

	pending []byte // TokenByter path: bytes of an incomplete sequence

	// Re-decoding path (Hugging Face's DecodeStream): ids[prefix:read]
	// were emitted and give the context for decoding what follows.
	ids          []int32
	prefix, read int
}

// NewStreamDecoder returns a streaming decoder over tok. For tokenizers
// that implement TokenByter (both in this package) it works on bytes; for
// others it re-decodes a short window of ids per Push and holds back text
// that ends in U+FFFD.
func NewStreamDecoder(tok Tokenizer) *StreamDecoder {
	d := &StreamDecoder{tok: tok}
	d.tb, _ = tok.(TokenByter)
	return d
}

// Push adds one id and returns the text it completes (often "", for a
// byte that starts a multi-byte character). A bad id is an error and
// leaves the decoder as it was.
func (d *StreamDecoder) Push(id int32) (string, error) {
	if d.tb == nil {
		return d.pushWindow(id)
	}
	b, err := d.tb.TokenBytes(id)
	if err != nil {
		return "", err
	}
	d.pending = append(d.pending, b...)
	var out []byte
	n := 0
	for n < len(d.pending) && utf8.FullRune(d.pending[n:]) {
		r, size := utf8.DecodeRune(d.pending[n:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, d.pending[n:n+size]...)
		}
		n += size
	}
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return string(out), nil
}

func (d *StreamDecoder) pushWindow(id int32) (string, error) {
	d.ids = append(d.ids, id)
	prefix, err := d.tok.Decode(d.ids[d.prefix:d.read])
	if err == nil {
		var text string
		if text, err = d.tok.Decode(d.ids[d.prefix:]); err == nil {
			if len(text) <= len(prefix) || strings.HasSuffix(text, string(utf8.RuneError)) {
				return "", nil
			}
			d.prefix, d.read = d.read, len(d.ids)
			return text[len(prefix):], nil
		}
	}
	d.ids = d.ids[:len(d.ids)-1]
	return "", err
}

// Flush returns the text still held back (an incomplete sequence at the
// end becomes U+FFFD per byte, as in Decode) and resets the decoder for a
// new stream.
func (d *StreamDecoder) Flush() string {
	if d.tb == nil {
		var out string
		if prefix, err := d.tok.Decode(d.ids[d.prefix:d.read]); err == nil {
			if text, err := d.tok.Decode(d.ids[d.prefix:]); err == nil && len(text) > len(prefix) {
				out = text[len(prefix):]
			}
		}
		d.ids, d.prefix, d.read = d.ids[:0], 0, 0
		return out
	}
	out := string(appendValidUTF8(nil, d.pending))
	d.pending = d.pending[:0]
	return out
}
