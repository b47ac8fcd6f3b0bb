package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Hugging Face's ByteLevel pre-tokenizer and decoder (from GPT-2) store each
// byte of a token as one printable character: the bytes '!'..'~', '¡'..'¬'
// and '®'..'ÿ' stand for themselves, and the other 68 bytes, in increasing
// order, for U+0100, U+0101, …, U+0143. tokenizer.json vocabularies and
// merges are written in this alphabet.

// byteChar maps a byte to its character in the byte-level alphabet.
var byteChar = func() (t [256]rune) {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			t[b] = rune(b)
		} else {
			t[b] = 256 + n
			n++
		}
	}
	return t
}()

// charByte is the inverse of byteChar: it maps U+0000..U+0143 to the byte
// plus one, 0 meaning the character is not in the alphabet.
var charByte = func() (t [0x144]uint16) {
	for b, r := range byteChar {
		t[r] = uint16(b) + 1
	}
	return t
}()

// byteLevelEncode writes the bytes b in the byte-level alphabet.
func byteLevelEncode(b []byte) string {
	var s strings.Builder
	s.Grow(len(b) * 2)
	for _, c := range b {
		s.WriteRune(byteChar[c])
	}
	return s.String()
}

// byteLevelDecode converts a token written in the byte-level alphabet back
// to its bytes.
func byteLevelDecode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i, r := range s {
		if r == utf8.RuneError || r >= rune(len(charByte)) || charByte[r] == 0 {
			return nil, fmt.Errorf("character %q at byte %d of token %q is not in the byte-level alphabet", r, i, s)
		}
		out = append(out, byte(charByte[r]-1))
	}
	return out, nil
}
