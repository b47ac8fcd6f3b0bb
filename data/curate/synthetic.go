package curate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/herdml/herd/data/dedup/planted"
	"github.com/herdml/herd/internal/atomicfile"
)

// SyntheticConfig describes a synthetic web-like corpus built from the
// reference corpora, for measuring throughput and memory at scale.
type SyntheticConfig struct {
	Corpora string // folder of the reference corpora (../shared/testdata/corpora)
	Out     string // output folder; files part-NNNNN.jsonl.zst
	Bytes   int64  // uncompressed JSONL bytes to write (at least one document)
	Files   int    // number of files (default: one per 64 MB, at least 1)
	Seed    uint64
}

// SyntheticStats counts what GenerateSynthetic wrote.
type SyntheticStats struct {
	Files, Docs, ExactCopies, NearCopies, WithBoilerplate, RepeatedURLs int64
	Bytes                                                               int64 // uncompressed JSONL
}

// syntheticBoilerplate is the pool of planted boilerplate lines.
var syntheticBoilerplate = []string{
	"We use cookies to improve your experience. By continuing you accept our cookie policy.",
	"Home | News | Sport | Weather | Contact us",
	"Subscribe to our newsletter and never miss a story.",
	"Follow us on social media for the latest updates.",
	"All content copyright the publisher unless noted otherwise.",
	"Skip to main content",
	"Click here to read more articles like this one.",
	"Log in | Register | Forgot your password?",
	"This page was last edited by the site team.",
	"Back to top",
}

// GenerateSynthetic writes cfg.Bytes of JSONL (zstd) documents with id,
// url, date and text fields. Texts are 2–6 paragraphs drawn from the
// reference corpora with about 8% of their words replaced by other corpus
// words (so documents are new, yet read like the sources); 5% of documents
// are exact copies and 5% near copies (a few words changed) of a recent
// document, 30% carry 1–2 boilerplate lines, and 2% reuse a recent URL
// with a later date. The output depends only on the config.
func GenerateSynthetic(ctx context.Context, cfg SyntheticConfig) (SyntheticStats, error) {
	var st SyntheticStats
	if cfg.Bytes <= 0 {
		return st, fmt.Errorf("synthetic corpus: -bytes must be > 0")
	}
	if cfg.Files <= 0 {
		cfg.Files = int(max(1, cfg.Bytes/(64<<20)))
	}
	srcs, err := planted.Sources(cfg.Corpora)
	if err != nil {
		return st, err
	}
	var paras []string
	vocab := map[string]bool{}
	var words []string
	for _, s := range srcs {
		for p := range strings.SplitSeq(s.Text, "\n\n") {
			if p = strings.TrimSpace(p); len(p) >= 40 {
				paras = append(paras, p)
			}
		}
		if len(words) < 50000 {
			for _, w := range strings.Fields(s.Text) {
				if len(w) > 2 && !vocab[w] {
					vocab[w] = true
					words = append(words, w)
				}
			}
		}
	}
	if len(paras) == 0 || len(words) == 0 {
		return st, fmt.Errorf("synthetic corpus: no text in %s", cfg.Corpora)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return st, fmt.Errorf("synthetic corpus: %w", err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	type rec struct {
		ID   string `json:"id"`
		URL  string `json:"url"`
		Date string `json:"date"`
		Text string `json:"text"`
	}
	var recent [512]rec
	nRecent := 0
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	mutate := func(text string, rate float64) string {
		fs := strings.Fields(text)
		for i := range fs {
			if rng.Float64() < rate {
				fs[i] = words[rng.IntN(len(words))]
			}
		}
		return strings.Join(fs, " ")
	}
	perFile := (cfg.Bytes + int64(cfg.Files) - 1) / int64(cfg.Files)
	for f := range cfg.Files {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		path := filepath.Join(cfg.Out, fmt.Sprintf("part-%05d.jsonl.zst", f))
		af, err := atomicfile.Create(path, 0o644)
		if err != nil {
			return st, err
		}
		z, err := zstd.NewWriter(af, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			af.Abort()
			return st, fmt.Errorf("zstd writer: %w", err)
		}
		w := bufio.NewWriterSize(z, 1<<20)
		fail := func(err error) (SyntheticStats, error) {
			z.Close()
			af.Abort()
			return st, fmt.Errorf("write %s: %w", path, err)
		}
		for written := int64(0); written < perFile && st.Bytes < cfg.Bytes; {
			var r rec
			x := rng.Float64()
			switch {
			case x < 0.05 && nRecent > 0:
				r = recent[rng.IntN(min(nRecent, len(recent)))]
				st.ExactCopies++
			case x < 0.10 && nRecent > 0:
				r = recent[rng.IntN(min(nRecent, len(recent)))]
				fs := strings.Split(r.Text, " ")
				for range 1 + rng.IntN(3) {
					fs[rng.IntN(len(fs))] = words[rng.IntN(len(words))]
				}
				r.Text = strings.Join(fs, " ")
				st.NearCopies++
			default:
				n := 2 + rng.IntN(5)
				ps := make([]string, 0, n+2)
				for range n {
					ps = append(ps, mutate(paras[rng.IntN(len(paras))], 0.08))
				}
				if rng.Float64() < 0.3 {
					bp := syntheticBoilerplate[rng.IntN(len(syntheticBoilerplate))]
					if rng.IntN(2) == 0 {
						ps = append([]string{bp}, ps...)
					} else {
						ps = append(ps, bp)
					}
					if rng.IntN(3) == 0 {
						ps = append(ps, syntheticBoilerplate[rng.IntN(len(syntheticBoilerplate))])
					}
					st.WithBoilerplate++
				}
				r.Text = strings.Join(ps, "\n\n")
				r.URL = fmt.Sprintf("https://site%d.example/%s/%d", rng.IntN(5000), words[rng.IntN(len(words))], rng.IntN(1e6))
				if rng.Float64() < 0.02 && nRecent > 0 {
					r.URL = recent[rng.IntN(min(nRecent, len(recent)))].URL
					st.RepeatedURLs++
				}
				recent[nRecent%len(recent)] = r
				nRecent++
			}
			if x < 0.10 && st.Docs > 0 && nRecent > 0 {
				// A copy on another site (a mirror), so URL dedup does not see it.
				r.URL = fmt.Sprintf("https://mirror%d.example/%d", rng.IntN(5000), st.Docs)
			}
			r.ID = fmt.Sprintf("syn-%d", st.Docs)
			r.Date = base.Add(time.Duration(st.Docs) * time.Minute).Format(time.RFC3339)
			b, err := json.Marshal(r)
			if err != nil {
				return fail(err)
			}
			b = append(b, '\n')
			if _, err := w.Write(b); err != nil {
				return fail(err)
			}
			written += int64(len(b))
			st.Bytes += int64(len(b))
			st.Docs++
		}
		if err := w.Flush(); err != nil {
			return fail(err)
		}
		if err := z.Close(); err != nil {
			af.Abort()
			return st, fmt.Errorf("write %s: %w", path, err)
		}
		if err := af.Commit(); err != nil {
			return st, err
		}
		st.Files++
	}
	return st, nil
}
