package safetensors

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a strict JSON reader for the header. encoding/json cannot
// report duplicate keys, and its Token API, which can, costs about 70
// allocations per tensor; this reads the header's few shapes directly,
// without reflection. It accepts exactly RFC 8259 JSON (checked against
// encoding/json by FuzzScanner), except that, like the reference
// implementation's parser, it rejects lone UTF-16 surrogates in \u
// escapes and nesting deeper than maxDepth. The input must be valid UTF-8.
type scanner struct {
	b   []byte
	pos int
}

// maxDepth bounds the nesting of values in unknown fields (serde_json's
// default recursion limit), so that a header of 100 MB of '[' cannot
// exhaust the stack.
const maxDepth = 128

// syntaxError is a JSON error at a byte offset of the header.
type syntaxError struct {
	pos int
	msg string
}

func (e *syntaxError) Error() string { return e.msg }

// errEOF reports a header that ends inside a JSON value.
var errEOF = errors.New("header JSON ends early")

// wrap turns a scanner error into an ErrInvalid naming what was being read.
func wrap(what string, err error) error {
	var se *syntaxError
	if errors.As(err, &se) {
		return invalidf("%s: bad JSON at header byte %d: %s", what, se.pos, se.msg)
	}
	return invalidf("%s: %v", what, err)
}

// ws skips whitespace.
func (s *scanner) ws() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte (0 at the end).
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.b) {
		return s.b[s.pos]
	}
	return 0
}

// accept consumes c if it comes next (after whitespace).
func (s *scanner) accept(c byte) bool {
	if s.peek() == c && s.pos < len(s.b) {
		s.pos++
		return true
	}
	return false
}

// unexpected reports the character at pos, in encoding/json's words.
func (s *scanner) unexpected(context string) error {
	if s.pos >= len(s.b) {
		return errEOF
	}
	r, _ := utf8.DecodeRune(s.b[s.pos:])
	return &syntaxError{s.pos, fmt.Sprintf("invalid character %s %s", strconv.QuoteRune(r), context)}
}

// expect consumes c after whitespace or fails with context.
func (s *scanner) expect(c byte, context string) error {
	if s.accept(c) {
		return nil
	}
	return s.unexpected(context)
}

// key reads an object key and the colon after it.
func (s *scanner) key() ([]byte, error) {
	k, err := s.rawString("looking for beginning of object key string")
	if err != nil {
		return nil, err
	}
	return k, s.expect(':', "after object key")
}

// next consumes the ',' or close that follows an element, reporting
// whether another element follows.
func (s *scanner) next(close byte) (more bool, err error) {
	if s.accept(',') {
		return true, nil
	}
	if s.accept(close) {
		return false, nil
	}
	if close == '}' {
		return false, s.unexpected("after object key:value pair")
	}
	return false, s.unexpected("after array element")
}

// str reads a string.
func (s *scanner) str(context string) (string, error) {
	b, err := s.rawString(context)
	return string(b), err
}

// rawString reads a string and returns its value: a subslice of the
// header when it has no escapes (no allocation), a new slice otherwise.
func (s *scanner) rawString(context string) ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.unexpected(context)
	}
	s.pos++
	start := s.pos
	for s.pos < len(s.b) {
		switch c := s.b[s.pos]; {
		case c == '"':
			s.pos++
			return s.b[start : s.pos-1], nil
		case c == '\\':
			return s.escapedString(start)
		case c < 0x20:
			return nil, s.unexpected("in string literal")
		}
		s.pos++
	}
	return nil, errEOF
}

// escapedString finishes a string from its first backslash, decoding.
func (s *scanner) escapedString(start int) ([]byte, error) {
	buf := append([]byte(nil), s.b[start:s.pos]...)
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		switch {
		case c == '"':
			s.pos++
			return buf, nil
		case c < 0x20:
			return nil, s.unexpected("in string literal")
		case c != '\\':
			buf = append(buf, c)
			s.pos++
			continue
		}
		s.pos++ // the backslash
		if s.pos >= len(s.b) {
			return nil, errEOF
		}
		e := s.b[s.pos]
		s.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			at := s.pos - 2
			r, err := s.hex4()
			if err != nil {
				return nil, err
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if r < 0xdc00 && s.pos+1 < len(s.b) && s.b[s.pos] == '\\' && s.b[s.pos+1] == 'u' {
					s.pos += 2
					if r2, err = s.hex4(); err != nil {
						return nil, err
					}
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return nil, &syntaxError{at, "lone surrogate in \\u escape"}
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			s.pos--
			return nil, s.unexpected("in string escape code")
		}
	}
	return nil, errEOF
}

// hex4 reads the four hex digits of a \u escape.
func (s *scanner) hex4() (rune, error) {
	var r rune
	for range 4 {
		if s.pos >= len(s.b) {
			return 0, errEOF
		}
		c := s.b[s.pos]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, s.unexpected("in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(c)
		s.pos++
	}
	return r, nil
}

// number reads a number and returns its text (a subslice of the header).
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start := s.pos
	if s.pos < len(s.b) && s.b[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos >= len(s.b):
		return nil, errEOF
	case s.b[s.pos] == '0':
		s.pos++
	case '1' <= s.b[s.pos] && s.b[s.pos] <= '9':
		s.digits()
	default:
		return nil, s.unexpected("in numeric literal")
	}
	if s.pos < len(s.b) && s.b[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return nil, s.unexpected("after decimal point in numeric literal")
		}
	}
	if s.pos < len(s.b) && (s.b[s.pos] == 'e' || s.b[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.b) && (s.b[s.pos] == '+' || s.b[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return nil, s.unexpected("in exponent of numeric literal")
		}
	}
	return s.b[start:s.pos], nil
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.b) && '0' <= s.b[s.pos] && s.b[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

// literal reads true, false or null.
func (s *scanner) literal(word string) error {
	for i := range len(word) {
		if s.pos >= len(s.b) {
			return errEOF
		}
		if s.b[s.pos] != word[i] {
			return s.unexpected(fmt.Sprintf("in literal %s (expecting %s)", word, strconv.QuoteRune(rune(word[i]))))
		}
		s.pos++
	}
	return nil
}

// skipValue reads and discards any value.
func (s *scanner) skipValue(depth int) error {
	if depth > maxDepth {
		return &syntaxError{s.pos, fmt.Sprintf("values nested deeper than %d levels", maxDepth)}
	}
	switch c := s.peek(); {
	case c == '{':
		s.pos++
		if s.accept('}') {
			return nil
		}
		for more := true; more; {
			if _, err := s.key(); err != nil {
				return err
			}
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			var err error
			if more, err = s.next('}'); err != nil {
				return err
			}
		}
		return nil
	case c == '[':
		s.pos++
		if s.accept(']') {
			return nil
		}
		for more := true; more; {
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			var err error
			if more, err = s.next(']'); err != nil {
				return err
			}
		}
		return nil
	case c == '"':
		_, err := s.rawString("")
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		_, err := s.number()
		return err
	}
	return s.unexpected("looking for beginning of value")
}

// describe reads any value and says what it was, for "want X, got Y"
// errors.
func (s *scanner) describe() (string, error) {
	start := s.pos
	switch c := s.peek(); {
	case c == '"':
		v, err := s.str("")
		return fmt.Sprintf("string %q", v), err
	case c == '{':
		return "an object", s.skipValue(0)
	case c == '[':
		return "an array", s.skipValue(0)
	case c == '-' || '0' <= c && c <= '9':
		n, err := s.number()
		return "number " + string(n), err
	}
	err := s.skipValue(0)
	return string(bytes.TrimLeft(s.b[start:s.pos], " \t\r\n")), err
}

// numbers reads an array of numbers and returns their texts, or what is
// wrong with the value when it is not such an array.
func (s *scanner) numbers() (nums [][]byte, problem string, err error) {
	if s.peek() != '[' {
		d, err := s.describe()
		return nil, "want an array of integers, got " + d, err
	}
	s.pos++
	nums = make([][]byte, 0, 4)
	if s.accept(']') {
		return nums, "", nil
	}
	for more := true; more; {
		if c := s.peek(); c != '-' && (c < '0' || c > '9') {
			d, err := s.describe()
			return nil, "want integers, got " + d, err
		}
		n, err := s.number()
		if err != nil {
			return nil, "", err
		}
		nums = append(nums, n)
		if more, err = s.next(']'); err != nil {
			return nil, "", err
		}
	}
	return nums, "", nil
}

// parseUint parses a number's text as a non-negative integer that fits an
// int; problem says why it does not.
func parseUint(t []byte) (v int, problem string) {
	if len(t) > 0 && t[0] == '-' {
		return 0, "is negative"
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return 0, "is not an integer"
		}
	}
	for _, c := range t {
		d := int(c - '0')
		if v > (math.MaxInt-d)/10 {
			return 0, "overflows int"
		}
		v = v*10 + d
	}
	return v, ""
}
