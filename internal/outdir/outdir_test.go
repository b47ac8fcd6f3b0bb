package outdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReplace(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, files map[string]string) string {
		dir := filepath.Join(root, name)
		os.MkdirAll(dir, 0o755)
		for f, c := range files {
			os.WriteFile(filepath.Join(dir, f), []byte(c), 0o644)
		}
		return dir
	}
	user := mk("user", map[string]string{"thesis.tex": "x"})
	hfModel := mk("hf", map[string]string{"config.json": "{}", "model.safetensors": "x"})
	empty := mk("empty", nil)
	// A kill inside Claim leaves the lock and the marker's temporary file.
	killedClaim := mk("killed-claim", map[string]string{".herd.lock": "", "." + MarkerFile + ".tmp-123": "{"})
	otherTemp := mk("other-temp", map[string]string{".herd.lock": "", ".notes.txt.tmp-123": "x"})
	model := mk("model", map[string]string{MarkerFile: string(Marker(Model)), "config.json": "{}"})
	run := mk("run", map[string]string{MarkerFile: string(Marker(Run))})
	bad := mk("bad", map[string]string{MarkerFile: "not json"})
	file := filepath.Join(root, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	link := filepath.Join(root, "link")
	os.Symlink(model, link)
	cases := []struct {
		dst, kind, want string // want: "" ok, else a substring of the error
	}{
		{filepath.Join(root, "new"), Model, ""},
		{empty, Model, ""},
		{killedClaim, Model, ""},
		{otherTemp, Model, "has no .herd-output marker"},
		{model, Model, ""},
		{user, Model, "has no .herd-output marker"},
		{hfModel, Model, "has no .herd-output marker"},
		{run, Model, "is a herd pretrain-run directory"},
		{bad, Model, "not a herd output marker"},
		{file, Model, "not a directory"},
		{link, Model, "symbolic link"},
		{".", Model, "directory of its own"},
		{"..", Model, "directory of its own"},
		{filepath.Join(model, ".."), Model, "has no .herd-output marker"},
		{model + "/..", Model, "directory of its own"},
		{"/", Model, "directory of its own"},
		{"", Model, "directory of its own"},
	}
	for _, c := range cases {
		err := CheckReplace(c.dst, c.kind)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckReplace(%q): %v", c.dst, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckReplace(%q) = %v, want an error containing %q", c.dst, err, c.want)
		}
	}
}

func TestClaim(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "run")
	if err := Claim(dir, Run); err != nil {
		t.Fatal(err)
	}
	if k, err := KindOf(dir); err != nil || k != Run {
		t.Fatalf("KindOf = %q, %v", k, err)
	}
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte("{}\n"), 0o644)
	if err := Claim(dir, Run); err != nil {
		t.Fatalf("claiming its own run again: %v", err)
	}
	if err := Claim(dir, Tokens); err == nil {
		t.Fatal("claimed a run directory as a tokens directory")
	}
	user := filepath.Join(root, "home")
	os.MkdirAll(user, 0o755)
	os.WriteFile(filepath.Join(user, "notes"), []byte("x"), 0o644)
	if err := Claim(user, Run); err == nil {
		t.Fatal("claimed a user's directory")
	}
	if _, err := os.Stat(filepath.Join(user, MarkerFile)); err == nil {
		t.Fatal("a refused claim wrote its marker")
	}
}

func TestOverlaps(t *testing.T) {
	root := t.TempDir()
	a := filepath.Join(root, "ckpt", "step-1")
	os.MkdirAll(a, 0o755)
	link := filepath.Join(root, "alias")
	os.Symlink(filepath.Join(root, "ckpt"), link)
	cases := []struct {
		x, y string
		want bool
	}{
		{a, a, true},
		{a, filepath.Join(root, "ckpt"), true},
		{filepath.Join(root, "ckpt"), a, true},
		{filepath.Join(link, "step-1"), a, true},
		{filepath.Join(link, "step-1", "new"), a, true},
		{filepath.Join(root, "ckpt", "step-10"), a, false},
		{filepath.Join(root, "other"), a, false},
		{filepath.Join(a, "..", "..", "other"), a, false},
		{filepath.Join(root, "..steps"), filepath.Join(root, "x"), false},
	}
	for _, c := range cases {
		got, err := Overlaps(c.x, c.y)
		if err != nil || got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, %v; want %v", c.x, c.y, got, err, c.want)
		}
	}
}
