package safetensors

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanAll checks that b is one JSON value and nothing else.
func scanAll(b []byte) error {
	s := &scanner{b: b}
	if err := s.skipValue(0); err != nil {
		return err
	}
	if s.ws(); s.pos != len(b) {
		return s.unexpected("after top-level value")
	}
	return nil
}

var scannerSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `-12E+7`, `true`, `false`, `null`,
	`{"a":[1,{"b":null}],"c":"d"}`, ` [ 1 , 2 ] `, `"\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00"`,
	`"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`, `01`, `1.`, `.5`, `+1`, `1e`, `-`, `tru`, `nul`,
	`[1,]`, `{"a":1,}`, `{"a"}`, `{1:2}`, `"a` + "\x01" + `"`, `"\x"`, `"\u12G4"`, `[` + strings.Repeat("[", 200),
	strings.Repeat("[", 100) + strings.Repeat("]", 100), `"é☃"`, "\ufeff{}",
}

// FuzzScanner checks the scanner against encoding/json: it accepts
// exactly what json.Valid accepts, except lone surrogates and deep nesting
// (which the reference implementation's parser rejects too), and decodes
// strings as json.Unmarshal does.
func FuzzScanner(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // parseHeader rejects these before scanning
		}
		err := scanAll(b)
		std := json.Valid(b)
		switch {
		case err == nil && !std:
			t.Fatalf("scanner accepts invalid JSON %q", b)
		case err != nil && std:
			if m := err.Error(); !strings.Contains(m, "lone surrogate") && !strings.Contains(m, "nested deeper") {
				t.Fatalf("scanner rejects valid JSON %q: %v", b, err)
			}
			return
		case err != nil:
			return
		}
		s := &scanner{b: b}
		if s.peek() != '"' {
			return
		}
		got, err := s.str("")
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("scanner decodes %s as %q, encoding/json as %q", b, got, want)
		}
	})
}

func TestScannerErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"\ud83d"`, `lone surrogate in \u escape`},
		{`"\ude00x"`, `lone surrogate in \u escape`},
		{`"\ud83d\u0041"`, `lone surrogate in \u escape`},
		{`01`, `invalid character '1' after top-level value`},
		{`1.`, `header JSON ends early`},
		{`1.x`, `invalid character 'x' after decimal point in numeric literal`},
		{`1ex`, `invalid character 'x' in exponent of numeric literal`},
		{`-x`, `invalid character 'x' in numeric literal`},
		{`+1`, `invalid character '+' looking for beginning of value`},
		{`trux`, `invalid character 'x' in literal true (expecting 'e')`},
		{`[1,]`, `invalid character ']' looking for beginning of value`},
		{`{"a":1,}`, `invalid character '}' looking for beginning of object key string`},
		{`{"a"}`, `invalid character '}' after object key`},
		{`[1 2]`, `invalid character '2' after array element`},
		{`{"a":1 "b":2}`, `invalid character '"' after object key:value pair`},
		{"\"a\x01\"", `invalid character '\x01' in string literal`},
		{`"\x"`, `invalid character 'x' in string escape code`},
		{`"\u12G4"`, `invalid character 'G' in \u hexadecimal character escape`},
		{strings.Repeat("[", 200), `values nested deeper than 128 levels`},
		{"\ufeff{}", `invalid character '\ufeff' looking for beginning of value`},
	} {
		err := scanAll([]byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v, want %s", tc.in, err, tc.want)
		}
	}
}
