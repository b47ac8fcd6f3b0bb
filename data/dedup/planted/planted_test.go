package planted

import (
	"strings"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

const dir = "../../../../shared/testdata/corpora"

func TestGenerate(t *testing.T) {
	testenv.Testdata(t, dir)
	srcs, err := Sources(dir)
	if err != nil {
		t.Fatal(err)
	}
	kjv := 0
	for _, s := range srcs {
		if strings.HasPrefix(s.Name, "kjv.txt#") {
			kjv++
		}
	}
	if kjv != 1189 { // chapters of the KJV
		t.Errorf("%d KJV chapters, want 1189", kjv)
	}
	cfg := Config{Dir: dir, Seed: 3, Originals: 400}
	a, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(cfg)
	if len(a.Docs) != 400+40+40 {
		t.Fatalf("%d docs, want 480", len(a.Docs))
	}
	boiler := 0
	for i, d := range a.Docs {
		if d.Text != b.Docs[i].Text || d.Group != b.Docs[i].Group {
			t.Fatalf("doc %d differs between runs with one seed", i)
		}
		if d.ID != uint64(i) {
			t.Fatalf("doc %d has id %d", i, d.ID)
		}
		g := a.Docs[d.Group]
		if g.Kind != Original || g.Source != d.Source || (d.Kind == Original) != (d.Group == d.ID) {
			t.Errorf("doc %d (%v): group %d is %v from %s", i, d.Kind, d.Group, g.Kind, g.Source)
		}
		norm := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
		switch d.Kind {
		case Exact:
			if norm(d.Text) != norm(g.Text) {
				t.Errorf("exact copy %d differs from %d beyond case and whitespace", i, d.Group)
			}
		case Near:
			if d.Text == g.Text || len(d.Edits) == 0 {
				t.Errorf("near copy %d: identical or no edits (%v)", i, d.Edits)
			}
		}
		for _, l := range d.Boilerplate {
			if !strings.Contains(norm(d.Text), norm(l)) {
				t.Errorf("doc %d lacks its boilerplate line %q", i, l)
			}
			boiler++
		}
	}
	if boiler < 100 {
		t.Errorf("only %d boilerplate lines planted", boiler)
	}
	if _, err := Generate(Config{Dir: dir, Originals: 1 << 20}); err == nil {
		t.Error("asking for more originals than sources is not an error")
	}
}
