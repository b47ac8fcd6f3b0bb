package curate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herdml/herd/data/htmltext"
)

// TestPathologicalHTML feeds the pages of the issue (made here, small):
// 5,000 unclosed <table><tr><td> (went past 4 GB in the extractor),
// 100,000 nested <div> (ran for minutes), a page of 200,000 elements and
// a page over the byte limit. Each is dropped before the extractor sees
// it, with its own counted reason; a normal page is still extracted.
func TestPathologicalHTML(t *testing.T) {
	in := t.TempDir()
	pages := map[string]string{
		"tables.html":  "<html><body>" + strings.Repeat("<table><tr><td>", 5000) + "text</body></html>",
		"divs.html":    "<html><body>" + strings.Repeat("<div>x", 100000) + "</body></html>",
		"wide.html":    "<html><body>" + strings.Repeat("<p>x</p>", 200000) + "</body></html>",
		"large.html":   "<html><body><p>" + strings.Repeat("word ", 2000) + "</p></body></html>",
		"regular.html": htmlPage,
	}
	for name, page := range pages {
		if err := os.WriteFile(filepath.Join(in, name), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Input.HTMLMaxBytes = len(pages["wide.html"]) + 1 // the default 8 MiB would do; the second run lowers it
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize}
	res, err := Run(t.Context(), cfg, Options{Logger: quietLogger(), HTML: htmltext.Extractor{}})
	if err != nil {
		t.Fatal(err)
	}
	kept, removed := readOutputs(t, cfg.Output.Dir)
	reasons := map[string]string{}
	for _, r := range removed {
		reasons[filepath.Base(r.ID)] = r.Reason
	}
	want := map[string]string{
		"tables.html": "input/html_too_deep",
		"divs.html":   "input/html_too_deep",
		"wide.html":   "input/html_too_many_elements",
	}
	for name, reason := range want {
		if reasons[name] != reason {
			t.Errorf("%s: removed for %q, want %q", name, reasons[name], reason)
		}
	}
	if len(kept) != 2 {
		t.Errorf("kept %d documents, want regular.html and large.html", len(kept))
	}
	input := res.Stats.Stages["input"]
	if input.Removed["html_too_deep"].Docs != 2 || input.Removed["html_too_many_elements"].Docs != 1 {
		t.Errorf("funnel: %+v", input.Removed)
	}

	cfg.Output.Dir = t.TempDir()
	cfg.Input.HTMLMaxBytes = 9000
	res, err = Run(t.Context(), cfg, Options{Logger: quietLogger(), HTML: htmltext.Extractor{}})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Stats.Stages["input"].Removed["html_too_large"].Docs; n != 4 { // all but regular.html
		t.Errorf("html_too_large removed %d pages, want 4: %+v", n, res.Stats.Stages["input"].Removed)
	}
}

// blockingExtractor never finishes a page until released.
type blockingExtractor struct {
	release chan struct{}
	started atomic.Int32
}

func (b *blockingExtractor) Extract(string, string) (string, error) {
	b.started.Add(1)
	<-b.release
	return "", errors.New("released")
}

// TestHTMLTimeoutAndCancel: an extraction that takes longer than
// input.html_timeout_seconds drops its page with a counted reason, and a
// cancelled run stops while an extraction hangs.
func TestHTMLTimeoutAndCancel(t *testing.T) {
	in := t.TempDir()
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(in, fmt.Sprintf("p%d.html", i)), []byte(htmlPage), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ext := &blockingExtractor{release: make(chan struct{})}
	t.Cleanup(func() { close(ext.release) })
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Input.HTMLTimeout = 0.05
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize}
	if err := runBounded(t, t.Context(), cfg, Options{Logger: quietLogger(), HTML: ext}, 20*time.Second); !errors.Is(err, ErrNothingKept) {
		t.Fatalf("every page timed out: got %v, want ErrNothingKept", err)
	}
	_, removed := readOutputs(t, cfg.Output.Dir)
	if len(removed) != 3 {
		t.Fatalf("removed %d pages, want 3", len(removed))
	}
	for _, r := range removed {
		if r.Reason != "input/html_timeout" || !strings.Contains(r.Detail, "input.html_timeout_seconds") {
			t.Errorf("%s: %s (%s)", r.ID, r.Reason, r.Detail)
		}
	}

	cfg.Input.HTMLTimeout = 3600
	cfg.Output.Dir = t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for ext.started.Load() < 4 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := runBounded(t, ctx, cfg, Options{Logger: quietLogger(), HTML: ext}, 20*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// cancelAfterUnits cancels a run's context once n units are done.
type cancelAfterUnits struct {
	n      int
	cancel context.CancelFunc
	done   atomic.Int32
}

func (c *cancelAfterUnits) StartPass(string, int) {}
func (c *cancelAfterUnits) EndPass()              {}
func (c *cancelAfterUnits) UnitDone(int64) {
	if int(c.done.Add(1)) == c.n {
		c.cancel()
	}
}

// TestCancelStopsRun: a curation stops soon after its context is
// cancelled (here after the first unit of many), leaving the rest undone.
func TestCancelStopsRun(t *testing.T) {
	in := t.TempDir()
	writeDistinctFiles(t, in, "a", 0, 40)
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Input.FilesPerUnit = 1
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize, StageExactDedup, StageMinHash}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := &cancelAfterUnits{n: 1, cancel: cancel}
	err := runBounded(t, ctx, cfg, Options{Logger: quietLogger(), Progress: p}, 20*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := p.done.Load(); n > 2 {
		t.Errorf("%d units were done after the cancel", n-1)
	}
}
