package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header accepted, in bytes (the reference
// implementation's limit). The size is checked before anything is
// allocated for the header.
const MaxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// entry is one tensor of a file, validated.
type entry struct {
	name       string
	spec       *dtypeSpec
	shape      []int
	begin, end int // byte offsets into the data region
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// header is a parsed and validated header.
type header struct {
	size    int      // bytes of JSON (and padding) after the 8-byte length
	entries []*entry // in data order
	meta    map[string]string
}

// parseFile validates buf as a whole safetensors file: the length prefix,
// the header, and that the tensors cover the data region exactly.
func parseFile(buf []byte) (*header, error) {
	if len(buf) < 8 {
		return nil, invalidf("file is %d bytes, shorter than the 8-byte header size", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > MaxHeaderSize {
		return nil, invalidf("header size %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(buf)-8) {
		return nil, invalidf("header size %d exceeds the %d bytes after the size (truncated file?)", n, len(buf)-8)
	}
	h := &header{size: int(n)}
	var err error
	h.entries, h.meta, err = parseHeader(buf[8 : 8+h.size])
	if err != nil {
		return nil, err
	}
	if err := validateLayout(h.entries, len(buf)-8-h.size); err != nil {
		return nil, err
	}
	return h, nil
}

// parseHeader parses the JSON header. Keys are checked for duplicates
// (encoding/json would silently keep the last), which is why it walks the
// tokens instead of unmarshalling into a map.
func parseHeader(hdr []byte) ([]*entry, map[string]string, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, invalidf("header is not valid UTF-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, invalidf("header does not start with '{'")
	}
	p := &headerParser{dec: json.NewDecoder(bytes.NewReader(hdr))}
	p.dec.UseNumber()
	if err := p.delim('{', "header"); err != nil {
		return nil, nil, err
	}
	var (
		entries []*entry
		meta    map[string]string
		seen    = make(map[string]struct{})
	)
	for p.dec.More() {
		key, err := p.key("header")
		if err != nil {
			return nil, nil, err
		}
		if _, dup := seen[key]; dup {
			return nil, nil, invalidf("duplicate key %q in header", key)
		}
		seen[key] = struct{}{}
		if key == metadataKey {
			if meta, err = p.metadata(); err != nil {
				return nil, nil, err
			}
			continue
		}
		e, err := p.entry(key)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if err := p.delim('}', "header"); err != nil {
		return nil, nil, err
	}
	// The reference writer pads with spaces; its JSON parser accepts any
	// whitespace after the object, so this does too.
	if rest := hdr[p.dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return nil, nil, invalidf("header has %d bytes after the JSON object that are not whitespace padding", len(rest))
	}
	return entries, meta, nil
}

type headerParser struct{ dec *json.Decoder }

// token returns the next token; what says where we are, for errors.
func (p *headerParser) token(what string) (json.Token, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.jsonError(what, err)
	}
	return tok, nil
}

func (p *headerParser) jsonError(what string, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return invalidf("%s: bad JSON at header byte %d: %v", what, se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("%s: header JSON ends early", what)
	}
	return invalidf("%s: bad JSON: %v", what, err)
}

func (p *headerParser) delim(d json.Delim, what string) error {
	tok, err := p.token(what)
	if err != nil {
		return err
	}
	if tok != d {
		return invalidf("%s: want %s, got %s", what, kindOf(d), describe(tok))
	}
	return nil
}

// key reads an object key (the decoder only yields strings there).
func (p *headerParser) key(what string) (string, error) {
	tok, err := p.token(what)
	if err != nil {
		return "", err
	}
	k, ok := tok.(string)
	if !ok {
		return "", invalidf("%s: want a key, got %s", what, describe(tok))
	}
	return k, nil
}

func (p *headerParser) metadata() (map[string]string, error) {
	const what = metadataKey
	tok, err := p.token(what)
	if err != nil {
		return nil, err
	}
	if tok == nil { // null: no metadata, as the reference reads it
		return nil, nil
	}
	if tok != json.Delim('{') {
		return nil, invalidf("%s: want an object of strings, got %s", what, describe(tok))
	}
	meta := make(map[string]string)
	for p.dec.More() {
		k, err := p.key(what)
		if err != nil {
			return nil, err
		}
		if _, dup := meta[k]; dup {
			return nil, invalidf("%s: duplicate key %q", what, k)
		}
		tok, err := p.token(what)
		if err != nil {
			return nil, err
		}
		v, ok := tok.(string)
		if !ok {
			return nil, invalidf("%s: key %q: want a string value, got %s", what, k, describe(tok))
		}
		meta[k] = v
	}
	return meta, p.delim('}', what)
}

// entry parses one tensor's object. Unknown fields are skipped, as the
// reference implementation does.
func (p *headerParser) entry(name string) (*entry, error) {
	what := fmt.Sprintf("tensor %q", name)
	tok, err := p.token(what)
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, invalidf("%s: want an object, got %s", what, describe(tok))
	}
	e := &entry{name: name}
	var shape, offsets []string
	seen := make(map[string]bool, 3)
	for p.dec.More() {
		k, err := p.key(what)
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, invalidf("%s: duplicate key %q", what, k)
		}
		seen[k] = true
		switch k {
		case "dtype":
			tok, err := p.token(what)
			if err != nil {
				return nil, err
			}
			s, ok := tok.(string)
			if !ok {
				return nil, invalidf("%s: dtype: want a string, got %s", what, describe(tok))
			}
			if e.spec = lookupDType(s); e.spec == nil {
				return nil, invalidf("%s: unknown dtype %q", what, s)
			}
		case "shape":
			if shape, err = p.numbers(what + ": shape"); err != nil {
				return nil, err
			}
		case "data_offsets":
			if offsets, err = p.numbers(what + ": data_offsets"); err != nil {
				return nil, err
			}
		default:
			var skip json.RawMessage
			if err := p.dec.Decode(&skip); err != nil {
				return nil, p.jsonError(what, err)
			}
		}
	}
	if err := p.delim('}', what); err != nil {
		return nil, err
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[k] {
			return nil, invalidf("%s: missing %q", what, k)
		}
	}
	if e.shape, err = parseShape(what, shape); err != nil {
		return nil, err
	}
	if len(offsets) != 2 {
		return nil, invalidf("%s: data_offsets %v: want [begin, end]", what, numList(offsets))
	}
	b, errB := strconv.ParseUint(offsets[0], 10, 64)
	en, errE := strconv.ParseUint(offsets[1], 10, 64)
	if errB != nil || errE != nil || b > math.MaxInt || en > math.MaxInt {
		return nil, invalidf("%s: data_offsets %v: want two non-negative integers", what, numList(offsets))
	}
	e.begin, e.end = int(b), int(en)
	return e, nil
}

// numbers reads an array of JSON numbers, returned as their text.
func (p *headerParser) numbers(what string) ([]string, error) {
	tok, err := p.token(what)
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, invalidf("%s: want an array of integers, got %s", what, describe(tok))
	}
	nums := []string{}
	for p.dec.More() {
		tok, err := p.token(what)
		if err != nil {
			return nil, err
		}
		n, ok := tok.(json.Number)
		if !ok {
			return nil, invalidf("%s: want integers, got %s", what, describe(tok))
		}
		nums = append(nums, string(n))
	}
	return nums, p.delim(']', what)
}

func parseShape(what string, dims []string) ([]int, error) {
	shape := make([]int, len(dims))
	for i, s := range dims {
		d, err := strconv.ParseUint(s, 10, 64)
		switch {
		case strings.HasPrefix(s, "-"):
			return nil, invalidf("%s: shape %v: dimension %d is negative", what, numList(dims), i)
		case err != nil && errors.Is(err, strconv.ErrRange), err == nil && d > math.MaxInt:
			return nil, invalidf("%s: shape %v: dimension %d overflows int", what, numList(dims), i)
		case err != nil:
			return nil, invalidf("%s: shape %v: dimension %d is not an integer", what, numList(dims), i)
		}
		shape[i] = int(d)
	}
	return shape, nil
}

// numList prints JSON numbers as a list, for errors.
func numList(nums []string) string { return "[" + strings.Join(nums, ", ") + "]" }

// validateLayout checks every tensor's size against its dtype and shape,
// and that the tensors, in offset order, cover the data region of n bytes
// exactly: no overlaps and no holes (so no bytes hide in a file that no
// tensor accounts for). It sorts entries into data order.
func validateLayout(entries []*entry, n int) error {
	slices.SortFunc(entries, func(a, b *entry) int {
		if a.begin != b.begin {
			return a.begin - b.begin
		}
		if a.end != b.end {
			return a.end - b.end
		}
		return strings.Compare(a.name, b.name)
	})
	pos := 0
	var prev *entry
	for _, e := range entries {
		what := fmt.Sprintf("tensor %q", e.name)
		want, err := byteSize(e.spec, e.shape)
		if err != nil {
			return invalidf("%s: %s %v: %v", what, e.spec.name, e.shape, err)
		}
		switch {
		case e.end < e.begin:
			return invalidf("%s: data_offsets [%d, %d] end before they begin", what, e.begin, e.end)
		case e.end > n:
			return invalidf("%s: data_offsets [%d, %d] reach past the end of the %d-byte data region", what, e.begin, e.end, n)
		case e.end-e.begin != want:
			return invalidf("%s: data_offsets [%d, %d] hold %d bytes, but %s %v needs %d", what, e.begin, e.end, e.end-e.begin, e.spec.name, e.shape, want)
		case e.begin < pos:
			return invalidf("%s: data_offsets [%d, %d] overlap tensor %q at [%d, %d]", what, e.begin, e.end, prev.name, prev.begin, prev.end)
		case e.begin > pos && prev == nil:
			return invalidf("%s: data_offsets [%d, %d] leave a hole: bytes [0, %d) belong to no tensor", what, e.begin, e.end, e.begin)
		case e.begin > pos:
			return invalidf("%s: data_offsets [%d, %d] leave a hole after tensor %q: bytes [%d, %d) belong to no tensor", what, e.begin, e.end, prev.name, pos, e.begin)
		}
		pos, prev = e.end, e
	}
	if pos != n {
		if prev == nil {
			return invalidf("data region has %d bytes but the header lists no tensors", n)
		}
		return invalidf("data region has %d bytes but the last tensor %q ends at %d: bytes [%d, %d) belong to no tensor", n, prev.name, pos, pos, n)
	}
	return nil
}

// byteSize returns the bytes a tensor of shape needs, failing on overflow
// and on sub-byte dtypes that do not fill whole bytes.
func byteSize(spec *dtypeSpec, shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > math.MaxInt {
			return 0, errors.New("element count overflows")
		}
		n = int(lo)
	}
	hi, b := bits.Mul64(uint64(n), uint64(spec.bits))
	if hi != 0 || b > math.MaxInt {
		return 0, errors.New("byte size overflows")
	}
	if b%8 != 0 {
		return 0, fmt.Errorf("%d elements of %d bits do not fill whole bytes", n, spec.bits)
	}
	return int(b / 8), nil
}

func kindOf(d json.Delim) string {
	switch d {
	case '{':
		return "an object"
	case '}':
		return "the end of an object"
	case '[':
		return "an array"
	case ']':
		return "the end of an array"
	}
	return string(d)
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return kindOf(v)
	case string:
		return fmt.Sprintf("string %q", v)
	case json.Number:
		return "number " + string(v)
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
