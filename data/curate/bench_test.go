package curate

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/data/dedup/planted"
	"github.com/herdml/herd/data/document"
	"github.com/herdml/herd/internal/benchutil"
)

// benchDocs returns real documents (~5 MB) from the planted corpus.
func benchDocs(b *testing.B) ([]planted.Doc, int64) {
	b.Helper()
	needCorpora(b)
	c, err := planted.Generate(planted.Config{Dir: corpora, Seed: 3, Originals: 2000})
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, d := range c.Docs {
		n += int64(len(d.Text))
	}
	return c.Docs, n
}

// BenchmarkStage measures one core's throughput of each per-document stage
// on real text (MB/s = input bytes per second on one goroutine).
func BenchmarkStage(b *testing.B) {
	docs, total := benchDocs(b)
	cfg := Default()
	e, err := newEnv(&cfg)
	if err != nil {
		b.Fatal(err)
	}
	norm := e.local(StageNormalize)
	groups := []struct {
		name   string
		stages []string
	}{
		{"normalize", []string{StageNormalize}},
		{"langid", []string{StageLangID}},
		{"gopher", []string{StageGopher}},
		{"gopher_repetition", []string{StageGopherRepetition}},
		{"c4", []string{StageC4}},
		{"fineweb", []string{StageFineWeb}},
		{"dirty_words", []string{StageDirtyWords}},
		{"exact_hash", nil},
		{"minhash_signature", nil},
		{"norm+heuristics+dirty+exact", []string{StageNormalize, StageGopher, StageGopherRepetition, StageFineWeb, StageDirtyWords}},
		{"norm+heuristics+c4+dirty+exact", []string{StageNormalize, StageGopher, StageGopherRepetition, StageC4, StageFineWeb, StageDirtyWords}},
	}
	for _, g := range groups {
		b.Run(g.name, func(b *testing.B) {
			s, _ := e.newScratch()
			fns := make([]localFunc, len(g.stages))
			for i, st := range g.stages {
				fns[i] = e.local(st)
			}
			// Pre-normalize for stages that expect normalized text.
			texts := make([]string, len(docs))
			for i, d := range docs {
				dd := document.Doc{Text: d.Text}
				if g.name != "normalize" && !strings.HasPrefix(g.name, "norm+") {
					norm(&dd, s)
				}
				texts[i] = dd.Text
			}
			b.SetBytes(total)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := benchutil.CPUSeconds()
			defer func() { benchutil.ReportMBPerCPUSecond(b, cpu0, total) }()
			for range b.N {
				for _, t := range texts {
					d := document.Doc{Text: t, Lang: "en"}
					s.an.Reset()
					for _, fn := range fns {
						fn(&d, s)
					}
					switch g.name {
					case "exact_hash", "norm+heuristics+dirty+exact", "norm+heuristics+c4+dirty+exact":
						s.exact.Key(d.Text)
					case "minhash_signature":
						s.sig, _ = s.mh.Signature(d.Text, s.sig)
					}
				}
			}
		})
	}
}

// BenchmarkWebRecipe runs the default web recipe end to end (reading
// JSONL, all stages, Parquet output) on one worker: MB/s per core
// (MB/cpu-s counts every goroutine's CPU time, zstd and GC included).
func BenchmarkWebRecipe(b *testing.B) {
	docs, total := benchDocs(b)
	in := b.TempDir()
	writeJSONL(b, in, docs, 4)
	b.SetBytes(total)
	b.ResetTimer()
	cpu0 := benchutil.CPUSeconds()
	defer func() { benchutil.ReportMBPerCPUSecond(b, cpu0, total) }()
	for i := range b.N {
		cfg := Default()
		cfg.Input.Paths = []string{in}
		cfg.Output.Dir = filepath.Join(b.TempDir(), "out", string(rune('a'+i%26)))
		cfg.Workers = 1
		cfg.LangID.Keep = nil
		if _, err := Run(context.Background(), cfg, Options{Logger: quietLogger()}); err != nil {
			b.Fatal(err)
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
