package safetensors_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/omniflow-go/omniflow/tensor/safetensors"
)

// halfInt squared overflows int; quarterInt fits, but not in bytes of F64.
const (
	halfInt    = 1 << (strconv.IntSize / 2)
	quarterInt = 1 << (strconv.IntSize - 2)
)

func sizePrefix(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }

// invalidFiles has one failing case for every rule Parse enforces, with
// the error text it must give. FuzzParse seeds its corpus from them.
var invalidFiles = []struct {
	name string
	file []byte
	want string
}{
	// Header size.
	{"empty file", nil, "file is 0 bytes, shorter than the 8-byte header size"},
	{"short file", []byte{2, 0, 0}, "file is 3 bytes, shorter than the 8-byte header size"},
	{"header over limit", sizePrefix(100_000_001), "header size 100000001 exceeds the limit of 100000000 bytes"},
	{"header size 2^64-1", sizePrefix(1<<64 - 1), "header size 18446744073709551615 exceeds the limit"},
	{"truncated header", append(sizePrefix(64), "{}"...), "header size 64 exceeds the 2 bytes after the size (truncated file?)"},
	{"zero header", sizePrefix(0), "header does not start with '{'"},

	// Header text.
	{"not UTF-8", rawFile("{\"\xff\":1}", nil), "header is not valid UTF-8"},
	{"leading space", rawFile(" {}", nil), "header does not start with '{'"},
	{"array header", rawFile("[]", nil), "header does not start with '{'"},
	{"unterminated", rawFile(`{"a":{"dtype":"F32"`, nil), `tensor "a": header JSON ends early`},
	{"missing colon", rawFile(`{"a" 1}`, nil), `tensor "a": bad JSON at header byte 5: invalid character '1' after object key`},
	{"missing comma", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]} "b":{}}`, []byte{1}), "header: bad JSON at header byte 53: invalid character '\"' after object key:value pair"},
	{"lone surrogate in name", rawFile(`{"\ud800":{}}`, nil), `header: bad JSON at header byte 2: lone surrogate in \u escape`},
	{"deep unknown field", rawFile(`{"w":{"x":`+strings.Repeat("[", 200), nil), `tensor "w": bad JSON at header byte 138: values nested deeper than 128 levels`},
	{"metadata bad literal", rawFile(`{"__metadata__":nul}`, nil), `__metadata__: bad JSON at header byte 19: invalid character '}' in literal null (expecting 'l')`},
	{"trailing garbage", rawFile("{} x", nil), "header continues after the JSON object at byte 3; only whitespace may pad it"},
	{"two objects", rawFile("{}{}", nil), "header continues after the JSON object at byte 2"},
	{"NUL padding", rawFile("{}\x00\x00", nil), "header continues after the JSON object at byte 2"},

	// Keys.
	{"duplicate tensor", rawFile(hdr(info("w", "U8", "[1]", 0, 1), info("w", "U8", "[1]", 1, 2)), seq(2)), `duplicate key "w" in header`},
	{"duplicate escaped tensor", rawFile(hdr(info("w", "U8", "[1]", 0, 1), `"\u0077":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}`), seq(2)), `duplicate key "w" in header`},
	{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), `duplicate key "__metadata__" in header`},
	{"duplicate metadata key", rawFile(`{"__metadata__":{"a":"1","a":"2"}}`, nil), `__metadata__: duplicate key "a"`},
	{"duplicate field", rawFile(`{"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, seq(1)), `tensor "w": duplicate key "dtype"`},

	// Metadata.
	{"metadata missing colon", rawFile(`{"__metadata__" {}}`, nil), `__metadata__: bad JSON at header byte 16: invalid character '{' after object key`},
	{"metadata key not string", rawFile(`{"__metadata__":{1:"a"}}`, nil), `__metadata__: bad JSON at header byte 17: invalid character '1' looking for beginning of object key string`},
	{"metadata not object", rawFile(`{"__metadata__":["a"]}`, nil), "__metadata__: want an object of strings, got an array"},
	{"metadata number value", rawFile(`{"__metadata__":{"epoch":3}}`, nil), `__metadata__: key "epoch": want a string value, got number 3`},

	// Tensor entries.
	{"entry not object", rawFile(`{"w":[1]}`, nil), `tensor "w": want an object, got an array`},
	{"unknown dtype", rawFile(hdr(info("w", "F33", "[1]", 0, 4)), seq(4)), `tensor "w": unknown dtype "F33"`},
	{"lowercase dtype", rawFile(hdr(info("w", "f32", "[1]", 0, 4)), seq(4)), `tensor "w": unknown dtype "f32"`},
	{"dtype not string", rawFile(`{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, seq(4)), `tensor "w": dtype: want a string, got number 4`},
	{"missing dtype", rawFile(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, seq(4)), `tensor "w": missing "dtype"`},
	{"missing shape", rawFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, seq(4)), `tensor "w": missing "shape"`},
	{"missing offsets", rawFile(`{"w":{"dtype":"F32","shape":[1]}}`, seq(4)), `tensor "w": missing "data_offsets"`},
	{"shape not array", rawFile(`{"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}`, seq(4)), `tensor "w": shape: want an array of integers, got number 1`},
	{"shape of strings", rawFile(hdr(info("w", "F32", `["1"]`, 0, 4)), seq(4)), `tensor "w": shape: want integers, got string "1"`},
	{"negative dim", rawFile(hdr(info("w", "F32", "[2,-1]", 0, 4)), seq(4)), `tensor "w": shape [2, -1]: dimension 1 is negative`},
	{"fractional dim", rawFile(hdr(info("w", "F32", "[1.5]", 0, 4)), seq(4)), `tensor "w": shape [1.5]: dimension 0 is not an integer`},
	{"exponent dim", rawFile(hdr(info("w", "F32", "[1e0]", 0, 4)), seq(4)), `tensor "w": shape [1e0]: dimension 0 is not an integer`},
	{"huge dim", rawFile(hdr(info("w", "F32", "[18446744073709551616]", 0, 4)), seq(4)), `tensor "w": shape [18446744073709551616]: dimension 0 overflows int`},
	{"dim over MaxInt", rawFile(hdr(info("w", "U8", "[9223372036854775808]", 0, 4)), seq(4)), `tensor "w": shape [9223372036854775808]: dimension 0 overflows int`},
	{"element count overflow", rawFile(hdr(info("w", "U8", fmt.Sprintf("[%d,%d]", halfInt, halfInt), 0, 4)), seq(4)), fmt.Sprintf(`tensor "w": U8 [%d %d]: element count overflows`, halfInt, halfInt)},
	{"byte size overflow", rawFile(hdr(info("w", "F64", fmt.Sprintf("[%d]", quarterInt), 0, 4)), seq(4)), fmt.Sprintf(`tensor "w": F64 [%d]: byte size overflows`, quarterInt)},
	{"partial byte", rawFile(hdr(info("w", "F4", "[3]", 0, 2)), seq(2)), `tensor "w": F4 [3]: 3 elements of 4 bits do not fill whole bytes`},
	{"offsets not pair", rawFile(hdr(`"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}`), seq(2)), `tensor "w": data_offsets [0, 1, 2]: want [begin, end]`},
	{"negative offset", rawFile(hdr(info("w", "U8", "[1]", -1, 0)), seq(1)), `tensor "w": data_offsets [-1, 0]: want two non-negative integers`},
	{"offset over MaxInt", rawFile(hdr(`"w":{"dtype":"U8","shape":[1],"data_offsets":[0,9223372036854775808]}`), seq(1)), `tensor "w": data_offsets [0, 9223372036854775808]: want two non-negative integers`},

	// Layout of the data region.
	{"end before begin", rawFile(hdr(info("w", "U8", "[1]", 4, 3)), seq(4)), `tensor "w": data_offsets [4, 3] end before they begin`},
	{"past the end", rawFile(hdr(info("w", "F32", "[2]", 0, 8)), seq(4)), `tensor "w": data_offsets [0, 8] reach past the end of the 4-byte data region`},
	{"truncated data", mustTruncate(rawFile(hdr(info("a", "U8", "[2]", 0, 2), info("w", "F32", "[2]", 2, 10)), seq(10)), 1), `tensor "w": data_offsets [2, 10] reach past the end of the 9-byte data region`},
	{"wrong size for shape", rawFile(hdr(info("w", "F32", "[2,2]", 0, 12)), seq(12)), `tensor "w": data_offsets [0, 12] hold 12 bytes, but F32 [2 2] needs 16`},
	{"scalar wrong size", rawFile(hdr(info("s", "I64", "[]", 0, 4)), seq(4)), `tensor "s": data_offsets [0, 4] hold 4 bytes, but I64 [] needs 8`},
	{"empty tensor with bytes", rawFile(hdr(info("e", "F32", "[0,4]", 0, 4)), seq(4)), `tensor "e": data_offsets [0, 4] hold 4 bytes, but F32 [0 4] needs 0`},
	{"overlap", rawFile(hdr(info("a", "U8", "[4]", 0, 4), info("b", "U8", "[4]", 2, 6)), seq(6)), `tensor "b": data_offsets [2, 6] overlap tensor "a" at [0, 4]`},
	{"same offsets", rawFile(hdr(info("a", "U8", "[4]", 0, 4), info("b", "U8", "[4]", 0, 4)), seq(4)), `tensor "b": data_offsets [0, 4] overlap tensor "a" at [0, 4]`},
	{"empty inside another", rawFile(hdr(info("a", "U8", "[4]", 0, 4), info("e", "U8", "[0]", 2, 2)), seq(4)), `tensor "e": data_offsets [2, 2] overlap tensor "a" at [0, 4]`},
	{"hole", rawFile(hdr(info("a", "U8", "[2]", 0, 2), info("b", "U8", "[2]", 4, 6)), seq(6)), `tensor "b": data_offsets [4, 6] leave a hole after tensor "a": bytes [2, 4) belong to no tensor`},
	{"hole at start", rawFile(hdr(info("a", "U8", "[2]", 2, 4)), seq(4)), `tensor "a": data_offsets [2, 4] leave a hole: bytes [0, 2) belong to no tensor`},
	{"hole at end", rawFile(hdr(info("a", "U8", "[2]", 0, 2)), seq(5)), `data region has 5 bytes but the last tensor "a" ends at 2: bytes [2, 5) belong to no tensor`},
	{"data without tensors", rawFile("{}", seq(3)), "data region has 3 bytes but the header lists no tensors"},
}

func mustTruncate(b []byte, n int) []byte { return b[:len(b)-n] }

func TestParseRejects(t *testing.T) {
	for _, tc := range invalidFiles {
		t.Run(tc.name, func(t *testing.T) {
			f, err := safetensors.Parse(tc.file)
			if err == nil {
				t.Fatalf("Parse accepted %q: %v", tc.file, f.Names())
			}
			if !errors.Is(err, safetensors.ErrInvalid) {
				t.Fatalf("%v is not ErrInvalid", err)
			}
			want := "safetensors: invalid file: " + tc.want
			if !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error\n%s\nwant it to start with\n%s", err, want)
			}
		})
	}
}

// validFiles are edge cases the format allows.
var validFiles = []struct {
	name  string
	file  []byte
	names []string
}{
	{"no tensors", rawFile("{}", nil), nil},
	{"space padding", rawFile("{}      ", nil), nil},
	{"whitespace padding", rawFile("{}\n\t\r ", nil), nil},
	{"whitespace inside", rawFile("{ \"w\" : {\"dtype\" : \"U8\", \"shape\" : [ 1 ] , \"data_offsets\" : [0, 1]} }", seq(1)), []string{"w"}},
	{"null metadata", rawFile(`{"__metadata__":null}`, nil), nil},
	{"unknown field", rawFile(`{"w":{"extra":{"x":[1,{}]},"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, seq(1)), []string{"w"}},
	{"fields in any order", rawFile(`{"w":{"data_offsets":[0,1],"shape":[1],"dtype":"U8"}}`, seq(1)), []string{"w"}},
	{"tensors in any order", rawFile(hdr(info("b", "U8", "[1]", 1, 2), info("a", "U8", "[1]", 0, 1)), seq(2)), []string{"a", "b"}},
	{"empty tensors anywhere", rawFile(hdr(info("e0", "F32", "[0]", 0, 0), info("a", "U8", "[1]", 0, 1), info("e1", "I64", "[3,0]", 1, 1)), seq(1)), []string{"a", "e0", "e1"}},
	{"only empty tensors", rawFile(hdr(info("e", "F32", "[0]", 0, 0)), nil), []string{"e"}},
	{"unsupported dtypes", rawFile(hdr(info("d", "F64", "[1]", 0, 8), info("b", "BOOL", "[2]", 8, 10), info("f", "F4", "[2]", 10, 11)), seq(11)), []string{"b", "d", "f"}},
	{"empty name", rawFile(hdr(info("", "U8", "[1]", 0, 1)), seq(1)), []string{""}},
	{"escaped name", rawFile(`{"a\"\u00e9\n":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, seq(1)), []string{"a\"é\n"}},
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range validFiles {
		t.Run(tc.name, func(t *testing.T) {
			f, err := safetensors.Parse(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Names(); strings.Join(got, "|") != strings.Join(tc.names, "|") {
				t.Fatalf("Names() = %q, want %q", got, tc.names)
			}
		})
	}
}

// TestParseAllocatesLittle checks that a header size or shape that claims
// more than the buffer holds is rejected before anything that large is
// allocated.
func TestParseAllocatesLittle(t *testing.T) {
	for _, file := range [][]byte{
		append(sizePrefix(safetensors.MaxHeaderSize), "{}"...),
		append(sizePrefix(1<<62), "{}"...),
		rawFile(hdr(info("w", "F32", "[1073741824,1073741824]", 0, 4)), seq(4)),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := safetensors.Parse(file); err == nil {
			t.Fatal("Parse accepted a bad file")
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Fatalf("Parse(%q) allocated %d bytes", file, n)
		}
	}
}
