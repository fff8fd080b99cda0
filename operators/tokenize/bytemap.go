package tokenize

// GPT-2's byte-level alphabet (bytes_to_unicode in openai/gpt-2 encoder.py,
// and Hugging Face's ByteLevel): the printable bytes '!'..'~', '¡'..'¬' and
// '®'..'ÿ' stand for themselves; the other 68 bytes (controls, space, DEL,
// 0x80..0xA0, soft hyphen) map in byte order to U+0100, U+0101, ... So a
// space is 'Ġ' (U+0120) and a newline 'Ċ' (U+010A), and every vocabulary
// string is printable.
var byteToRune, runeToByte = byteLevelAlphabet()

func byteLevelAlphabet() (fwd [256]rune, back map[rune]byte) {
	back = make(map[rune]byte, 256)
	n := rune(0)
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			fwd[b] = rune(b)
		} else {
			fwd[b] = 256 + n
			n++
		}
		back[fwd[b]] = byte(b)
	}
	return fwd, back
}

// ByteToRune returns the character that stands for byte b in byte-level
// vocabularies.
func ByteToRune(b byte) rune { return byteToRune[b] }

// ByteLevelString maps the bytes of s to byte-level characters (how a
// byte-level vocabulary writes s: "hello world" is "helloĠworld").
func ByteLevelString(s string) string {
	out := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = byteToRune[s[i]]
	}
	return string(out)
}

// byteLevelBytes maps a vocabulary string back to bytes; ok is false when
// a character is outside the alphabet (Hugging Face's decoder then uses the
// string's own UTF-8 bytes).
func byteLevelBytes(tok string) (b []byte, ok bool) {
	b = make([]byte, 0, len(tok))
	for _, r := range tok {
		c, found := runeToByte[r]
		if !found {
			return nil, false
		}
		b = append(b, c)
	}
	return b, true
}
