package reader

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestInvalidUTF8InJSON checks that invalid UTF-8 inside the text field of
// a JSON record is counted, though encoding/json silently replaces it.
func TestInvalidUTF8InJSON(t *testing.T) {
	cases := []struct {
		name, line string
		want       int
	}{
		{"valid", `{"text":"caf\u00e9 and café"}`, 0},
		{"raw bad byte", "{\"text\":\"a\xffb\"}", 1},
		{"two raw bad bytes", "{\"text\":\"a\xc3\x28b\xfe\"}", 2},
		{"truncated sequence at end", "{\"text\":\"ab\xe2\x82\"}", 2},
		{"bad byte in another field", "{\"id\":\"\xff\",\"text\":\"fine\"}", 0},
		{"lone high surrogate", `{"text":"x\ud800y"}`, 1},
		{"lone low surrogate", `{"text":"x\udc00y"}`, 1},
		{"surrogate pair", `{"text":"\ud83d\ude00 smile"}`, 0},
		{"high then high+low", `{"text":"\ud800\ud83d\ude00"}`, 1},
		{"high at end", `{"text":"x\ud800"}`, 1},
		{"high then escape", `{"text":"\ud800\n"}`, 1},
		{"literal replacement char is valid", `{"text":"\ufffd and �"}`, 0},
		{"escaped backslash u", `{"text":"\\ud800"}`, 0},
		{"last duplicate key wins", "{\"text\":\"\xff\",\"text\":\"ok\"}", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Record{}
			parseJSONRecord([]byte(c.line), Default(), nil, r)
			if r.Problem != "" {
				t.Fatalf("problem %s: %s", r.Problem, r.Detail)
			}
			if r.InvalidUTF8 != c.want {
				t.Fatalf("InvalidUTF8 = %d, want %d (text %q)", r.InvalidUTF8, c.want, r.Doc.Text)
			}
			if !utf8.ValidString(r.Doc.Text) {
				t.Fatalf("decoded text is not valid UTF-8: %q", r.Doc.Text)
			}
		})
	}
}

// FuzzInvalidUTF8Count compares the count with an independent oracle: the
// number of U+FFFD encoding/json puts in the decoded string, less the ones
// the input spelled itself (literally or as \ufffd).
func FuzzInvalidUTF8Count(f *testing.F) {
	for _, s := range []string{"a\xffb", `x\ud800y`, `\ud83d\ude00`, `\ufffd�`, "\xed\xa0\x80", `\ud800\ud800\udc00`, `\u0041`, `\"`, "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		line := []byte(`{"text":"` + body + `"}`)
		var m map[string]string
		if json.Unmarshal(line, &m) != nil {
			return // not a JSON string body
		}
		if strings.Contains(body, `\\`) {
			return // keeps the oracle simple: every backslash starts an escape
		}
		legit := strings.Count(body, "\uFFFD") + strings.Count(strings.ToLower(body), `\ufffd`)
		want := strings.Count(m["text"], "\uFFFD") - legit
		r := &Record{}
		parseJSONRecord(line, Default(), nil, r)
		if r.InvalidUTF8 != want {
			t.Fatalf("body %q: counted %d, decoder replaced %d", body, r.InvalidUTF8, want)
		}
	})
}
