package curate

import (
	"fmt"
	"strings"

	"github.com/herdml/herd/data/classify"
	"github.com/herdml/herd/data/dedup"
	"github.com/herdml/herd/data/dirtywords"
	"github.com/herdml/herd/data/document"
	"github.com/herdml/herd/data/heuristics"
	"github.com/herdml/herd/data/langid"
	"github.com/herdml/herd/data/textnorm"
	"github.com/herdml/herd/data/urlfilter"
)

// scratch is per-goroutine working memory for the per-document stages.
type scratch struct {
	norm  *textnorm.Normalizer
	an    heuristics.Analysis
	exact *dedup.ExactHasher
	mh    *dedup.MinHasher
	sig   []uint64
	kl    *heuristics.KLScorer // token_kl: made from the loaded decision on first use
	line  []byte // line hashing buffer
}

// verdict is what a stage says about one document: keep (rule == ""), or
// remove with a rule and optional detail.
type verdict struct {
	rule, detail string
	linesRemoved int // lines removed from the text (line dedup)
}

// localFunc is a per-document stage: it may change the document and says
// whether to keep it. It must be safe to run on many goroutines, each with
// its own scratch.
type localFunc func(d *document.Doc, s *scratch) verdict

// env holds the loaded, read-only resources of a run.
type env struct {
	cfg      *Config
	blocked  []*urlfilter.Filter
	dirty    map[string]*dirtywords.Matcher
	quality  *classify.Model
	domain   *classify.Model
	mhCfg    dedup.MinHashConfig
	exactCfg dedup.ExactConfig
	urlCfg   dedup.URLConfig
	globals  map[string]globalStage // the recipe's global stages by name
}

func newEnv(cfg *Config) (*env, error) {
	e := &env{cfg: cfg, dirty: map[string]*dirtywords.Matcher{}, globals: map[string]globalStage{}}
	for _, s := range cfg.Stages {
		if g := newGlobal(s, e); g != nil {
			e.globals[s] = g
		}
	}
	has := func(s string) bool {
		for _, x := range cfg.Stages {
			if x == s {
				return true
			}
		}
		return false
	}
	if has(StageURLFilter) {
		for _, f := range cfg.URLFilter.BlockLists {
			fl, err := urlfilter.Load(f)
			if err != nil {
				return nil, err
			}
			e.blocked = append(e.blocked, fl)
		}
	}
	if has(StageDirtyWords) {
		for lang, file := range cfg.DirtyWords.Lists {
			m, err := dirtywords.LoadFile(lang, file)
			if err != nil {
				return nil, err
			}
			e.dirty[lang] = m
		}
		for _, lang := range dirtywords.Languages() {
			if _, ok := e.dirty[lang]; !ok {
				m, err := dirtywords.Load(lang)
				if err != nil {
					return nil, err
				}
				e.dirty[lang] = m
			}
		}
		if _, ok := e.dirty[cfg.DirtyWords.DefaultLang]; !ok && cfg.DirtyWords.DefaultLang != "" {
			return nil, fmt.Errorf("dirty_words.default_lang %q has no list (shipped: %s)", cfg.DirtyWords.DefaultLang, strings.Join(dirtywords.Languages(), " "))
		}
	}
	var err error
	if has(StageQuality) {
		if e.quality, err = classify.LoadFile(cfg.Quality.Model); err != nil {
			return nil, fmt.Errorf("quality.model: %w", err)
		}
		found := false
		for _, l := range e.quality.Labels() {
			found = found || l == cfg.Quality.Label
		}
		if !found {
			return nil, fmt.Errorf("quality.label %q is not a label of %s (labels: %v)", cfg.Quality.Label, cfg.Quality.Model, e.quality.Labels())
		}
	}
	if has(StageDomain) {
		if e.domain, err = classify.LoadFile(cfg.Domain.Model); err != nil {
			return nil, fmt.Errorf("domain.model: %w", err)
		}
	}
	m := cfg.MinHash
	e.mhCfg = dedup.MinHashConfig{NGram: m.NGram, CharShingles: m.CharShingles, Bands: m.Bands, Rows: m.Rows, Seed: m.Seed, Threshold: m.Threshold}
	e.exactCfg = dedup.ExactConfig{KeepCase: cfg.ExactDedup.KeepCase, KeepWhitespace: cfg.ExactDedup.KeepWhitespace}
	e.urlCfg = dedup.URLConfig{StripWWW: cfg.URLDedup.StripWWW}
	return e, nil
}

func (e *env) newScratch() (*scratch, error) {
	s := &scratch{norm: textnorm.New(e.cfg.Normalize), exact: dedup.NewExactHasher(e.exactCfg)}
	mh, err := dedup.NewMinHasher(e.mhCfg)
	if err != nil {
		return nil, fmt.Errorf("minhash: %w", err)
	}
	s.mh = mh
	return s, nil
}

// local returns the per-document function of a local stage (a global
// stage applied per document has its own: docStep).
func (e *env) local(stage string) localFunc {
	cfg := e.cfg
	switch stage {
	case StageNormalize:
		return func(d *document.Doc, s *scratch) verdict {
			d.Text = s.norm.Normalize(d.Text)
			if d.Text == "" {
				return verdict{rule: "empty"}
			}
			return verdict{}
		}
	case StageLangID:
		return func(d *document.Doc, s *scratch) verdict {
			d.Lang, d.LangScore = langid.Detect(d.Text, cfg.LangID.SampleBytes)
			return verdict{rule: cfg.LangID.Check(d.Lang, d.LangScore), detail: d.Lang}
		}
	case StageURLFilter:
		return func(d *document.Doc, s *scratch) verdict {
			for _, f := range e.blocked {
				if f.Blocked(d.URL) {
					return verdict{rule: "blocked_domain", detail: urlfilter.Host(d.URL)}
				}
			}
			return verdict{}
		}
	case StageGopher:
		return func(d *document.Doc, s *scratch) verdict {
			return verdict{rule: cfg.Filters.Gopher.Check(s.an.Of(d.Text))}
		}
	case StageGopherRepetition:
		return func(d *document.Doc, s *scratch) verdict {
			return verdict{rule: cfg.Filters.GopherRepetition.Check(s.an.Of(d.Text))}
		}
	case StageC4:
		return func(d *document.Doc, s *scratch) verdict {
			text, rule, _ := cfg.Filters.C4.Apply(s.an.Of(d.Text))
			d.Text = text
			return verdict{rule: rule}
		}
	case StageFineWeb:
		return func(d *document.Doc, s *scratch) verdict {
			return verdict{rule: cfg.Filters.FineWeb.Check(s.an.Of(d.Text))}
		}
	case StageDirtyWords:
		return func(d *document.Doc, s *scratch) verdict {
			m := e.dirty[d.Lang]
			if m == nil {
				m = e.dirty[cfg.DirtyWords.DefaultLang]
			}
			if m == nil {
				return verdict{}
			}
			if r := m.RatioWords(d.Text, s.an.Of(d.Text).Words); r > cfg.DirtyWords.MaxRatio {
				return verdict{rule: "ratio", detail: fmt.Sprintf("%.4f", r)}
			}
			return verdict{}
		}
	case StageQuality:
		return func(d *document.Doc, s *scratch) verdict {
			d.Quality = e.quality.Prob(d.Text, cfg.Quality.Label)
			if d.Quality < cfg.Quality.MinScore {
				return verdict{rule: "low_score", detail: fmt.Sprintf("%.4f", d.Quality)}
			}
			return verdict{}
		}
	case StageDomain:
		return func(d *document.Doc, s *scratch) verdict {
			d.Domain, d.DomainScore = e.domain.Predict(d.Text)
			return verdict{}
		}
	}
	return nil
}
