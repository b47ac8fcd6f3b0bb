package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/outdir"
)

// TestSaveModelNeverReplacesForeignDirs: publishing a model directory
// replaces only an empty directory or one herd wrote as a model; a user's
// directory, a downloaded Hugging Face model, a checkpoint, ".", ".." and
// symlinks are refused and left exactly as they were.
func TestSaveModelNeverReplacesForeignDirs(t *testing.T) {
	cfg := tinyConfig(true)
	p := tinyParams(cfg, 3)
	root := t.TempDir()
	user := filepath.Join(root, "thesis")
	os.MkdirAll(user, 0o755)
	os.WriteFile(filepath.Join(user, "chapter1.tex"), []byte("years of work"), 0o644)
	// A model directory that herd did not write (no marker).
	hf := filepath.Join(root, "downloaded")
	if err := SaveModel(hf, cfg, p, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(hf, outdir.MarkerFile))
	ckpt, err := Save(filepath.Join(root, "ckpts"), cfg, p, &TrainingState{Step: 5}, SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	os.Symlink(user, link)
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(user)
	for _, dst := range []string{user, hf, ckpt, link, ".", "..", filepath.Join(user, "..")} {
		before := snapshot(t, root)
		err := SaveModel(dst, cfg, p, SaveOptions{})
		if err == nil {
			t.Errorf("SaveModel(%q) replaced a directory herd did not make as a model", dst)
			continue
		}
		if after := snapshot(t, root); after != before {
			t.Errorf("SaveModel(%q) failed (%v) but changed the tree:\nbefore %s\nafter  %s", dst, err, before, after)
		}
	}
	// Its own model directory and an empty one are replaced.
	own := filepath.Join(root, "avg")
	for range 2 {
		if err := SaveModel(own, cfg, p, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)
	if err := SaveModel(empty, cfg, p, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if k, _ := outdir.KindOf(empty); k != outdir.Model {
		t.Errorf("saved model has marker %q", k)
	}
	if k, _ := outdir.KindOf(ckpt); k != outdir.Checkpoint {
		t.Errorf("saved checkpoint has marker %q", k)
	}
}

// TestSaveModelCleansItsLeftovers: a save killed before publishing leaves
// its temporary directory; the next save of the same destination removes
// it, and leaves other destinations' files alone.
func TestSaveModelCleansItsLeftovers(t *testing.T) {
	cfg := tinyConfig(true)
	p := tinyParams(cfg, 3)
	parent := t.TempDir()
	dst := filepath.Join(parent, "final")
	os.MkdirAll(filepath.Join(parent, ".final.tmp-123", "x"), 0o755)
	os.MkdirAll(filepath.Join(parent, ".final.old-9"), 0o755)
	os.MkdirAll(filepath.Join(parent, ".other.tmp-5"), 0o755)
	if err := SaveModel(dst, cfg, p, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(parent)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != ".other.tmp-5 final" {
		t.Errorf("after the save the parent holds %q, want %q", got, ".other.tmp-5 final")
	}
}

// snapshot lists every path under root with its size, as a string.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel)
		if info.Mode().IsRegular() {
			b.WriteString(":" + string(rune('0'+info.Size()%10)))
		}
		b.WriteString(" ")
		return nil
	})
	return b.String()
}
