package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// special makes a destination that is not a regular file in dir and returns
// its path and the word the error must use for it.
type special struct {
	name, word string
	make       func(t *testing.T, dir string) string
}

var specials = []special{
	{"fifo", "named pipe", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "pipe")
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		return p
	}},
	{"char-device", "device", func(t *testing.T, dir string) string {
		// A copy of /dev/null (major 1, minor 3), as `generate -logits
		// /dev/full` met: it must stay a device.
		p := filepath.Join(dir, "null")
		if err := syscall.Mknod(p, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
			t.Skipf("mknod (needs privileges): %v", err)
		}
		return p
	}},
	{"directory", "directory", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "sub")
		os.Mkdir(p, 0o755)
		os.WriteFile(filepath.Join(p, "keep"), []byte("x"), 0o644)
		return p
	}},
	{"symlink-to-fifo", "named pipe", func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "pipe")
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		link := filepath.Join(dir, "link")
		os.Symlink("pipe", link)
		return link
	}},
	{"dangling-symlink", "symbolic link", func(t *testing.T, dir string) string {
		link := filepath.Join(dir, "link")
		os.Symlink("missing/target", link)
		return link
	}},
	{"symlink-to-dir", "directory", func(t *testing.T, dir string) string {
		os.Mkdir(filepath.Join(dir, "sub"), 0o755)
		link := filepath.Join(dir, "link")
		os.Symlink("sub", link)
		return link
	}},
}

// tree lists dir's entries with their types and link targets.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + d.Type().String())
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			b.WriteString(" -> " + target)
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

// TestRefusesNonRegularDestinations: a FIFO, a device node, a directory, or
// a symlink to one of them (or to nothing) is never replaced by a regular
// file; Create and WriteFile refuse, naming the path and what it is, and
// leave the directory exactly as it was.
func TestRefusesNonRegularDestinations(t *testing.T) {
	for _, s := range specials {
		for _, how := range []string{"WriteFile", "Create", "Check"} {
			t.Run(s.name+"/"+how, func(t *testing.T) {
				dir := t.TempDir()
				p := s.make(t, dir)
				before := tree(t, dir)
				var err error
				switch how {
				case "WriteFile":
					err = WriteFile(p, []byte("data"), 0o644)
				case "Create":
					var f *File
					if f, err = Create(p, 0o644); err == nil {
						f.Write([]byte("data"))
						err = f.Commit()
					}
				case "Check":
					err = Check(p)
				}
				if err == nil {
					t.Fatalf("%s accepted a %s", how, s.name)
				}
				if !errors.Is(err, errNotRegular) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), s.word) {
					t.Errorf("error %q: want ErrNotRegular naming %s and %q", err, p, s.word)
				}
				if after := tree(t, dir); after != before {
					t.Errorf("the directory changed:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
	}
}

// TestWritesThroughSymlinks: a symlink (or a chain of them) to a regular
// file stays a symlink; the file it points to is replaced atomically.
func TestWritesThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "runs"), 0o755)
	target := filepath.Join(dir, "runs", "out.json")
	os.WriteFile(target, []byte("old"), 0o644)
	link := filepath.Join(dir, "latest.json")
	os.Symlink("runs/out.json", link)
	link2 := filepath.Join(dir, "current.json")
	os.Symlink("latest.json", link2)
	for _, p := range []string{link, link2} {
		if err := Check(p); err != nil {
			t.Fatalf("Check(%s): %v", p, err)
		}
		if err := WriteFile(p, []byte("new via "+p), 0o644); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("%s is no longer a symlink: %v %v", p, fi.Mode(), err)
		}
		if got, _ := os.ReadFile(target); string(got) != "new via "+p {
			t.Fatalf("target holds %q", got)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "runs")} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if IsTemp(e.Name()) {
				t.Errorf("temporary file left behind: %s", e.Name())
			}
		}
	}
}

// TestCommitRechecks: a destination that became a FIFO between Create and
// Commit is not replaced either.
func TestCommitRechecks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	f.Write([]byte("data"))
	if err := f.Commit(); !errors.Is(err, errNotRegular) {
		t.Fatalf("Commit over a FIFO: %v", err)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
