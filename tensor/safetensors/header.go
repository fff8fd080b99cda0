package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
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

// parseHeader parses the JSON header. Duplicate keys in the header, in
// "__metadata__" and in a tensor's object are errors (encoding/json would
// silently keep the last one); values of unknown fields are skipped.
func parseHeader(hdr []byte) ([]*entry, map[string]string, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, invalidf("header is not valid UTF-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, invalidf("header does not start with '{'")
	}
	s := &scanner{b: hdr, pos: 1}
	var (
		entries []*entry
		meta    map[string]string
		seen    = make(map[string]struct{})
	)
	for more := !s.accept('}'); more; {
		k, err := s.key()
		if err != nil {
			if k == nil {
				return nil, nil, wrap("header", err)
			}
			return nil, nil, wrap(where(string(k)), err)
		}
		key := string(k)
		if _, dup := seen[key]; dup {
			return nil, nil, invalidf("duplicate key %q in header", key)
		}
		seen[key] = struct{}{}
		if key == metadataKey {
			if meta, err = parseMetadata(s); err != nil {
				return nil, nil, err
			}
		} else {
			e, err := parseEntry(s, key)
			if err != nil {
				return nil, nil, err
			}
			entries = append(entries, e)
		}
		if more, err = s.next('}'); err != nil {
			return nil, nil, wrap("header", err)
		}
	}
	// The reference writer pads with spaces; its JSON parser accepts any
	// whitespace after the object, so this does too.
	if s.ws(); s.pos != len(hdr) {
		return nil, nil, invalidf("header continues after the JSON object at byte %d; only whitespace may pad it", s.pos)
	}
	return entries, meta, nil
}

// where names a header key for errors.
func where(key string) string {
	if key == metadataKey {
		return key
	}
	return fmt.Sprintf("tensor %q", key)
}

func parseMetadata(s *scanner) (map[string]string, error) {
	const what = metadataKey
	switch s.peek() {
	case 'n': // null: no metadata, as the reference reads it
		return nil, wrapIf(what, s.literal("null"))
	case '{':
		s.pos++
	default:
		d, err := s.describe()
		if err != nil {
			return nil, wrap(what, err)
		}
		return nil, invalidf("%s: want an object of strings, got %s", what, d)
	}
	meta := make(map[string]string)
	for more := !s.accept('}'); more; {
		kb, err := s.key()
		if err != nil {
			return nil, wrap(what, err)
		}
		k := string(kb)
		if _, dup := meta[k]; dup {
			return nil, invalidf("%s: duplicate key %q", what, k)
		}
		if s.peek() != '"' {
			d, err := s.describe()
			if err != nil {
				return nil, wrap(what, err)
			}
			return nil, invalidf("%s: key %q: want a string value, got %s", what, k, d)
		}
		if meta[k], err = s.str(""); err != nil {
			return nil, wrap(what, err)
		}
		if more, err = s.next('}'); err != nil {
			return nil, wrap(what, err)
		}
	}
	return meta, nil
}

func wrapIf(what string, err error) error {
	if err != nil {
		return wrap(what, err)
	}
	return nil
}

// parseEntry parses one tensor's object. Unknown fields are skipped, as
// the reference implementation does.
func parseEntry(s *scanner, name string) (*entry, error) {
	if s.peek() != '{' {
		d, err := s.describe()
		if err != nil {
			return nil, wrap(where(name), err)
		}
		return nil, invalidf("%s: want an object, got %s", where(name), d)
	}
	s.pos++
	e := &entry{name: name}
	var (
		shape, offsets [][]byte
		seen           [3]bool // dtype, shape, data_offsets
		others         []string
	)
	for more := !s.accept('}'); more; {
		k, err := s.key()
		if err != nil {
			return nil, wrap(where(name), err)
		}
		field := -1
		switch string(k) {
		case "dtype":
			field = 0
		case "shape":
			field = 1
		case "data_offsets":
			field = 2
		}
		var dup bool
		if field >= 0 {
			dup = seen[field]
		} else {
			dup = slices.Contains(others, string(k))
			others = append(others, string(k))
		}
		if dup {
			return nil, invalidf("%s: duplicate key %q", where(name), k)
		}
		switch field {
		case 0:
			if s.peek() != '"' {
				d, err := s.describe()
				if err != nil {
					return nil, wrap(where(name), err)
				}
				return nil, invalidf("%s: dtype: want a string, got %s", where(name), d)
			}
			v, err := s.rawString("")
			if err != nil {
				return nil, wrap(where(name), err)
			}
			if e.spec = lookupDType(string(v)); e.spec == nil {
				return nil, invalidf("%s: unknown dtype %q", where(name), v)
			}
		case 1, 2:
			nums, problem, err := s.numbers()
			if err != nil {
				return nil, wrap(where(name)+": "+string(k), err)
			}
			if nums == nil {
				return nil, invalidf("%s: %s: %s", where(name), k, problem)
			}
			if field == 1 {
				shape = nums
			} else {
				offsets = nums
			}
		default:
			if err := s.skipValue(1); err != nil {
				return nil, wrap(where(name), err)
			}
		}
		if field >= 0 {
			seen[field] = true
		}
		if more, err = s.next('}'); err != nil {
			return nil, wrap(where(name), err)
		}
	}
	for i, k := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[i] {
			return nil, invalidf("%s: missing %q", where(name), k)
		}
	}
	e.shape = make([]int, len(shape))
	for i, t := range shape {
		d, problem := parseUint(t)
		if problem != "" {
			return nil, invalidf("%s: shape %s: dimension %d %s", where(name), numList(shape), i, problem)
		}
		e.shape[i] = d
	}
	if len(offsets) != 2 {
		return nil, invalidf("%s: data_offsets %s: want [begin, end]", where(name), numList(offsets))
	}
	var p1, p2 string
	e.begin, p1 = parseUint(offsets[0])
	e.end, p2 = parseUint(offsets[1])
	if p1 != "" || p2 != "" {
		return nil, invalidf("%s: data_offsets %s: want two non-negative integers", where(name), numList(offsets))
	}
	return e, nil
}

// numList prints JSON numbers as a list, for errors.
func numList(nums [][]byte) string { return "[" + string(bytes.Join(nums, []byte(", "))) + "]" }

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
		want, err := byteSize(e.spec, e.shape)
		if err != nil {
			return invalidf("%s: %s %v: %v", where(e.name), e.spec.name, e.shape, err)
		}
		switch {
		case e.end < e.begin:
			return invalidf("%s: data_offsets [%d, %d] end before they begin", where(e.name), e.begin, e.end)
		case e.end > n:
			return invalidf("%s: data_offsets [%d, %d] reach past the end of the %d-byte data region", where(e.name), e.begin, e.end, n)
		case e.end-e.begin != want:
			return invalidf("%s: data_offsets [%d, %d] hold %d bytes, but %s %v needs %d", where(e.name), e.begin, e.end, e.end-e.begin, e.spec.name, e.shape, want)
		case e.begin < pos:
			return invalidf("%s: data_offsets [%d, %d] overlap tensor %q at [%d, %d]", where(e.name), e.begin, e.end, prev.name, prev.begin, prev.end)
		case e.begin > pos && prev == nil:
			return invalidf("%s: data_offsets [%d, %d] leave a hole: bytes [0, %d) belong to no tensor", where(e.name), e.begin, e.end, e.begin)
		case e.begin > pos:
			return invalidf("%s: data_offsets [%d, %d] leave a hole after tensor %q: bytes [%d, %d) belong to no tensor", where(e.name), e.begin, e.end, prev.name, pos, e.begin)
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
