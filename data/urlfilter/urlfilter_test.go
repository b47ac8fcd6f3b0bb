package urlfilter

import (
	"strings"
	"testing"
)

func TestBlocked(t *testing.T) {
	f, err := parse(strings.NewReader("# adult\nbad.example\n*.tracker.test  # comment\n\nwww.people-search.test\n"), "list")
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 3 {
		t.Fatalf("Len %d", f.Len())
	}
	for _, c := range []struct {
		url  string
		want bool
	}{
		{"https://bad.example/page", true},
		{"http://WWW.Bad.Example:8080/x", true},
		{"https://sub.bad.example/", true},
		{"https://notbad.example/", false},
		{"https://a.tracker.test/", true},
		{"people-search.test/john", true},
		{"https://good.test/bad.example", false},
		{"", false},
		{"::not a url", false},
	} {
		if got := f.Blocked(c.url); got != c.want {
			t.Errorf("Blocked(%q) = %v, want %v", c.url, got, c.want)
		}
	}
	if _, err := parse(strings.NewReader("ok.test\nhttp://x.test/a\n"), "l.txt"); err == nil || !strings.Contains(err.Error(), "l.txt:2") {
		t.Fatalf("want error naming l.txt:2, got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("a.test\n# c\n*.b.test\n")
	f.Add("http://x/")
	f.Fuzz(func(t *testing.T, s string) {
		fl, err := parse(strings.NewReader(s), "fuzz")
		if err == nil {
			fl.Blocked("https://" + strings.TrimSpace(s) + "/")
		}
	})
}
