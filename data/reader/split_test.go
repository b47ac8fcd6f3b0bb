package reader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// refDoc is what the reference splitter finds.
type refDoc struct {
	text    string
	line    int
	tooLong bool
}

// refSplit splits the whole input at once with the standard library: the
// independent reference for the streaming splitter.
func refSplit(data, sep string, max int) []refDoc {
	var out []refDoc
	lineAt := func(off int) int { return 1 + strings.Count(data[:off], "\n") }
	if sep == "" { // blank lines
		off, start, para := 0, -1, ""
		flush := func() {
			if start >= 0 {
				d := refDoc{line: lineAt(start), tooLong: len(para) > max}
				if !d.tooLong {
					d.text = strings.TrimRight(para, "\r\n")
				}
				out = append(out, d)
			}
			start, para = -1, ""
		}
		for _, line := range strings.SplitAfter(data, "\n") {
			if line == "" {
				continue
			}
			if strings.TrimSpace(line) == "" {
				flush()
			} else {
				if start < 0 {
					start = off
				}
				para += line
			}
			off += len(line)
		}
		flush()
		return out
	}
	off := 0
	for _, piece := range strings.Split(data, sep) {
		switch {
		case len(piece) > max:
			out = append(out, refDoc{line: lineAt(off), tooLong: true})
		case strings.TrimSpace(piece) != "":
			trimmed := strings.TrimLeft(piece, "\r\n")
			lead := len(piece) - len(trimmed)
			out = append(out, refDoc{text: strings.TrimRight(trimmed, "\r\n"), line: lineAt(off + lead)})
		}
		off += len(piece) + len(sep)
	}
	return out
}

// split runs the streaming splitter, reading r one byte at a time or in
// the reader's own pieces.
func split(t testing.TB, r io.Reader, sep string, max int) ([]refDoc, int64) {
	sp := newSplitter(r, sep, max)
	var out []refDoc
	var total int64
	for {
		d, err := sp.next()
		if errors.Is(err, io.EOF) {
			return out, total
		}
		if err != nil {
			t.Fatal(err)
		}
		total += d.bytes
		out = append(out, refDoc{text: string(d.text), line: d.line, tooLong: d.tooLong})
	}
}

func sameDocs(t testing.TB, got, want []refDoc, what string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d documents, want %d:\ngot  %+v\nwant %+v", what, len(got), len(want), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: document %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

func TestSplit(t *testing.T) {
	cases := []struct {
		name, data, sep string
		max             int
		want            []refDoc
	}{
		{"paragraphs", "Genesis 1\n\n  1 In the beginning.\n  2 And the earth.\n\n\nGenesis 2\n", "", 100,
			[]refDoc{{"Genesis 1", 1, false}, {"  1 In the beginning.\n  2 And the earth.", 3, false}, {"Genesis 2", 7, false}}},
		{"paragraphs crlf and spaces", "a\r\nb\r\n \t\r\nc", "", 100,
			[]refDoc{{"a\r\nb", 1, false}, {"c", 4, false}}},
		{"fortunes", "First fortune.\n%\nSecond\nfortune.\n%\n", "\n%\n", 100,
			[]refDoc{{"First fortune.", 1, false}, {"Second\nfortune.", 3, false}}},
		{"separator inline, blank pieces skipped", "<|e|>one<|e|> \n <|e|>two", "<|e|>", 100,
			[]refDoc{{"one", 1, false}, {"two", 2, false}}},
		{"too long", "short\n%\n" + strings.Repeat("x", 30) + "\n%\nend", "\n%\n", 20,
			[]refDoc{{"short", 1, false}, {"", 3, true}, {"end", 5, false}}},
		{"too long paragraph", "ok\n\n" + strings.Repeat("word ", 10) + "\n\nok", "", 20,
			[]refDoc{{"ok", 1, false}, {"", 3, true}, {"ok", 5, false}}},
		{"empty", "", "%", 10, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sameDocs(t, refSplit(c.data, c.sep, c.max), c.want, "reference")
			got, total := split(t, strings.NewReader(c.data), c.sep, c.max)
			sameDocs(t, got, c.want, "streaming")
			if total > int64(len(c.data)) {
				t.Fatalf("documents account for %d bytes of %d", total, len(c.data))
			}
		})
	}
}

// FuzzSplit checks the streaming splitter against the whole-input
// reference, reading the input one byte at a time (so separators and
// lines straddle every read boundary), with small limits.
func FuzzSplit(f *testing.F) {
	f.Add([]byte("a\n\nb\nc\n\n\n d \n"), "", uint8(8))
	f.Add([]byte("one\n%\ntwo\n%\n%\nthree"), "\n%\n", uint8(5))
	f.Add([]byte("xx<sep>yy<se<sep><sep>zz"), "<sep>", uint8(3))
	f.Add([]byte("aaaa"), "aa", uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, sep string, max uint8) {
		if len(sep) > 16 {
			sep = sep[:16]
		}
		limit := int(max%64) + 1
		want := refSplit(string(data), sep, limit)
		got, total := split(t, iotest.OneByteReader(bytes.NewReader(data)), sep, limit)
		sameDocs(t, got, want, "one byte at a time")
		if total > int64(len(data)) {
			t.Fatalf("documents account for %d bytes of %d", total, len(data))
		}
		got, _ = split(t, bytes.NewReader(data), sep, limit)
		sameDocs(t, got, want, "whole reads")
	})
}

// TestReadSplitKJV reads the King James Bible split at blank lines: each
// chapter is a document (with its heading before it), none is cut or
// lost, and the documents hold every non-blank line of the file.
func TestReadSplitKJV(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "testdata", "corpora", "kjv.txt")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("reference corpora not present: %v", err)
	}
	cfg := Default()
	cfg.Paths = []string{path}
	cfg.TextSplit = SplitBlankLines
	units, err := Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	var total int64
	err = Read(context.Background(), units[0], cfg, nil, func(r *Record) error {
		if r.Problem != "" {
			t.Fatalf("%s: %s %s", r.Doc.Origin, r.Problem, r.Detail)
		}
		docs = append(docs, r.Doc.Text)
		total += r.Bytes
		if !strings.HasPrefix(r.Doc.Origin, path+":") {
			t.Fatalf("origin %q", r.Doc.Origin)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	chapters := strings.Count(string(data), "\n  1 ")
	if len(docs) < chapters || len(docs) > 3*chapters {
		t.Fatalf("%d documents for %d chapters", len(docs), chapters)
	}
	var lines, want []string
	for _, d := range docs {
		lines = append(lines, strings.Split(d, "\n")...)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) != "" {
			want = append(want, l)
		}
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the documents do not hold the file's %d non-blank lines (%d)", len(want), len(lines))
	}
	if total > int64(len(data)) || total < int64(len(data))-2 {
		t.Fatalf("documents account for %d of %d bytes", total, len(data))
	}
	t.Logf("%d documents, %d chapters", len(docs), chapters)
}

func TestSplitConfigErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x"), 0o644)
	for _, c := range []struct {
		split, sep, want string
	}{
		{"paragraph", "", `input.text_split = "paragraph": want file, blank_lines or separator`},
		{"separator", "", "input.text_split = separator needs input.text_separator"},
		{"separator", strings.Repeat("x", 2000), "input.text_separator is 2000 bytes: at most 1024"},
	} {
		cfg := Default()
		cfg.Paths = []string{dir}
		cfg.TextSplit, cfg.TextSeparator = c.split, c.sep
		if _, err := Plan(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("text_split %q separator %q: %v, want %q", c.split, c.sep, err, c.want)
		}
	}
}
