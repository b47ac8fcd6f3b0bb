package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("got %q, %v; want %q", got, err, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestAbortKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	f.Abort()
	got, _ := os.ReadFile(p)
	if string(got) != "old" {
		t.Fatalf("abort changed the file: %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

// TestRemoveTemps leaves an interrupted write behind (a pending temporary
// file and a temporary directory) and checks that RemoveTemps clears
// exactly those, keeping the user's files, including dot files.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"data.parquet", ".hidden", "notes.tmp-1", "x.old-2"}
	for _, name := range keep {
		os.WriteFile(filepath.Join(dir, name), []byte("user"), 0o644)
	}
	f, err := Create(filepath.Join(dir, "out.json"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial")) // the process "dies" here: no Commit, no Abort
	f.Close()
	os.MkdirAll(filepath.Join(dir, ".final.tmp-123", "sub"), 0o755)
	os.MkdirAll(filepath.Join(dir, ".final.old-456"), 0o755)
	removed, err := RemoveTemps(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 {
		t.Errorf("removed %v, want the temporary file and the two directories", removed)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if len(left) != len(keep) {
		t.Errorf("left %v, want exactly %v", left, keep)
	}
	if r, err := RemoveTemps(filepath.Join(dir, "missing")); err != nil || r != nil {
		t.Errorf("missing dir: %v %v", r, err)
	}
}
