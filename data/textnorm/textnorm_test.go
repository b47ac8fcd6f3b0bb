package textnorm

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestNormalize(t *testing.T) {
	web, code := Default(), Options{TrimTrailing: true, MaxBlankLines: 2}
	cases := []struct {
		name string
		opt  Options
		in   string
		want string
	}{
		{"nfc", web, "cafe\u0301", "caf\u00e9"},
		{"crlf", web, "a\r\nb\rc\n", "a\nb\nc"},
		{"collapse", web, "  a \t b\u00a0\u00a0c  \n", "a b c"},
		{"blank lines", web, "a\n\n\n\nb", "a\n\nb"},
		{"controls", web, "a\x00b\x07c\u0085d\u200be", "abc\nde"},
		{"overstrike", web, "_\bH_\bi", "Hi"},
		{"bidi and bom", web, "\ufeffab\u200ec", "abc"},
		{"invalid utf8", web, "a\xffb", "a\ufffdb"},
		{"code keeps indent", code, "func f() {\n\treturn  1   \n}\n\n\n\n", "func f() {\n\treturn  1\n}"},
		{"code keeps tabs, nbsp->space", code, "\ta\u00a0b", "\ta b"},
		{"empty", web, " \n\t\n", ""},
		{"line separator", web, "a\u2028b", "a\nb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := New(c.opt).Normalize(c.in)
			if got != c.want {
				t.Fatalf("Normalize(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func checkInvariants(t *testing.T, n *Normalizer, in string) {
	out := n.Normalize(in)
	if !utf8.ValidString(out) {
		t.Fatalf("invalid UTF-8 out of %q: %q", in, out)
	}
	if !norm.NFC.IsNormalString(out) {
		t.Fatalf("not NFC out of %q: %q", in, out)
	}
	if again := n.Normalize(out); again != out {
		t.Fatalf("not idempotent on %q: %q then %q", in, out, again)
	}
	for _, r := range out {
		if r < 0x20 && r != '\n' && r != '\t' {
			t.Fatalf("control %U left in %q", r, out)
		}
	}
	if strings.HasPrefix(out, "\n") || strings.HasSuffix(out, "\n") {
		t.Fatalf("surrounding newlines in %q", out)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"", "a b", "x\r\n\r\ny", "\b\b", "e\u0301\b\u0301", "\t \u3000x\u2029", "a\xc3", "\u0300"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, collapse bool) {
		opt := Options{CollapseSpaces: collapse, TrimTrailing: true, MaxBlankLines: 1}
		checkInvariants(t, New(opt), s)
		checkInvariants(t, New(Options{}), s)
	})
}
