package recipes

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// anyRecipe takes any YAML value, so nesting reaches the parser and the
// decoder unchecked by field types.
type anyRecipe struct {
	Data any      `yaml:"data"`
	Tags []string `yaml:"tags"`
}

// nested builds YAML values nested depth levels deep, in each style the
// depth pre-scan must understand.
var nested = []struct {
	name string
	make func(depth int) string // the value of the key "data" (a YAML fragment after "data:")
}{
	{"flow-seq", func(d int) string { return " " + strings.Repeat("[", d) + strings.Repeat("]", d) + "\n" }},
	{"flow-map", func(d int) string { return " " + strings.Repeat("{a: ", d) + "1" + strings.Repeat("}", d) + "\n" }},
	{"flow-seq-multiline", func(d int) string { return " " + strings.Repeat("[\n", d) + strings.Repeat("]\n", d) }},
	{"block-map", func(d int) string {
		var b strings.Builder
		b.WriteString("\n")
		for i := 1; i < d; i++ {
			fmt.Fprintf(&b, "%sa:\n", strings.Repeat(" ", i))
		}
		fmt.Fprintf(&b, "%sa: 1\n", strings.Repeat(" ", d))
		return b.String()
	}},
	{"block-seq", func(d int) string {
		var b strings.Builder
		b.WriteString("\n")
		for i := 1; i <= d; i++ {
			fmt.Fprintf(&b, "%s-\n", strings.Repeat(" ", i))
		}
		return b.String()
	}},
	{"compact-seq", func(d int) string { return "\n  " + strings.Repeat("- ", d) + "x\n" }},
}

// allocDuring returns the bytes allocated and the time taken by f.
func allocDuring(f func()) (uint64, time.Duration) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, elapsed
}

// TestDeepNestingRefused: a recipe file of 64 KiB, or an override value of
// 8 KiB, nested far beyond maxDepth is refused before the YAML parser runs
// (which took gigabytes and tens of seconds on such input), with the
// position and the limit in the message.
func TestDeepNestingRefused(t *testing.T) {
	for _, n := range nested {
		t.Run(n.name+"/file", func(t *testing.T) {
			depth := 2 * maxDepth
			for len(n.make(depth*2)) < 64<<10 {
				depth *= 2
			}
			path := filepath.Join(t.TempDir(), "deep.yaml")
			if err := os.WriteFile(path, []byte("data:"+n.make(depth)), 0o644); err != nil {
				t.Fatal(err)
			}
			var err error
			alloc, took := allocDuring(func() { _, err = Load(path, anyRecipe{}, nil) })
			if err == nil || !strings.Contains(err.Error(), path+": [") || !strings.Contains(err.Error(), fmt.Sprint(maxDepth)) {
				t.Fatalf("error %v, want one naming %s, a position and the limit %d", err, path, maxDepth)
			}
			if alloc > 16<<20 || took > 2*time.Second {
				t.Fatalf("refusing took %v and allocated %d MB", took, alloc>>20)
			}
			t.Log(err)
		})
		t.Run(n.name+"/override", func(t *testing.T) {
			depth := 2 * maxDepth
			for len(n.make(depth*2)) < 8<<10 {
				depth *= 2
			}
			var err error
			alloc, took := allocDuring(func() { _, err = Load("", anyRecipe{}, []string{"data=" + n.make(depth)}) })
			if err == nil || !strings.Contains(err.Error(), `override "data=`) || !strings.Contains(err.Error(), fmt.Sprint(maxDepth)) {
				t.Fatalf("error %v, want one naming the override and the limit %d", err, maxDepth)
			}
			if alloc > 16<<20 || took > 2*time.Second {
				t.Fatalf("refusing took %v and allocated %d MB", took, alloc>>20)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("the message repeats the whole value (%d bytes)", len(err.Error()))
			}
			t.Log(err)
		})
	}
}

// TestDepthLimitEdge: nesting up to the limit decodes; one level more is
// refused, in every style. The key "data" is the first level.
func TestDepthLimitEdge(t *testing.T) {
	for _, n := range nested {
		t.Run(n.name, func(t *testing.T) {
			var r anyRecipe
			if err := Decode([]byte("data:"+n.make(maxDepth-1)), "ok.yaml", &r); err != nil {
				t.Fatalf("%d levels: %v", maxDepth, err)
			}
			if err := Decode([]byte("data:"+n.make(maxDepth+1)), "deep.yaml", &r); err == nil {
				t.Fatalf("%d levels accepted", maxDepth+2)
			}
		})
	}
}

// TestDepthScanIgnoresText: brackets and indentation inside quoted
// strings, comments, block scalars and multi-line plain scalars are text,
// not nesting, so the pre-scan must not count them.
func TestDepthScanIgnoresText(t *testing.T) {
	deep := strings.Repeat("[{", 100)
	for _, doc := range []string{
		"tags: [\"" + deep + "\", '" + deep + "']\n",
		"tags: ['it''s " + deep + "', \"say \\\"" + deep + "\\\"\"]\n",
		"tags:\n  - \"" + deep + "\n    " + deep + "\"\n  - x\n",
		"data: x # " + deep + "\n# " + deep + "\n",
		"data: a" + deep + "\n",
		"tags: [it's, a" + "'" + "b, c]\ndata: \"" + deep + "\"\n",
		"data: |\n  " + deep + "\n\n    " + deep + "\ntags: [x]\n",
		"tags:\n  - >-\n    " + deep + "\n  - y\n",
		"data: plain text\n  continued " + deep + "\n",
		"data:\n" + strings.Repeat("  a:\n", 1) + strings.Repeat("    - b\n", 500),
	} {
		var r anyRecipe
		if err := Decode([]byte(doc), "text.yaml", &r); err != nil {
			t.Errorf("%q: %v", doc, err)
		}
	}
	for _, name := range allShipped() {
		data, err := ReadShipped(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkDepth(data, 6); err != nil { // stages[i].sources[j].paths is 6 deep
			t.Errorf("shipped recipe %s: %v", name, err)
		}
	}
}

// TestSizeLimits: a recipe file above maxRecipeBytes and an override value
// above maxOverrideBytes are refused before parsing, naming the file or key
// and the limit.
func TestSizeLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	big := "tags:\n" + strings.Repeat("  - abcdefghijklmnopqrstuvwxyz\n", maxRecipeBytes/30+1)
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	alloc, _ := allocDuring(func() {
		_, err := Load(path, anyRecipe{}, nil)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprint(maxRecipeBytes)) {
			t.Errorf("big file: %v", err)
		}
	})
	if alloc > 8<<20 {
		t.Errorf("refusing a big file allocated %d MB", alloc>>20)
	}
	var r anyRecipe
	if err := Decode([]byte(big), "big.yaml", &r); err == nil || !strings.Contains(err.Error(), "big.yaml") {
		t.Errorf("Decode of a big document: %v", err)
	}
	long := "tags=[" + strings.Repeat("abc, ", maxOverrideBytes/5+10) + "x]"
	err := Override(&r, long)
	if err == nil || !strings.Contains(err.Error(), "tags") || !strings.Contains(err.Error(), fmt.Sprint(maxOverrideBytes)) || len(err.Error()) > 300 {
		t.Errorf("long override: %.300v", err)
	}
	// Just below the limits is fine.
	if err := Override(&r, long[:maxOverrideBytes-10]+"]"); err != nil {
		t.Errorf("override of %d bytes: %v", maxOverrideBytes-10, err)
	}
}
