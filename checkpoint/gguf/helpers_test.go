package gguf

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusText returns about n bytes of English text: the start of the King
// James Bible of ../shared/testdata/corpora, or a built-in text repeated
// when the reference data is absent.
func corpusText(t testing.TB, n int) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "..", "shared", "testdata", "corpora", "kjv.txt"))
	if err != nil {
		t.Logf("corpus missing (%v): using a built-in text", err)
		return strings.Repeat("In the beginning God created the heaven and the earth. And the earth was without form, and void.\n", n/96+1)[:n]
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(n)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
