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
	line  []byte               // line hashing buffer
}

// verdict is what a stage says about one document: keep (rule == ""), or
// remove with a rule and optional detail.
type verdict struct {
	rule, detail string
	linesRemoved int // lines the stage removed from the text
}

// localFunc is a per-document stage: it may change the document and says
// whether to keep it. It must be safe to run on many goroutines, each with
// its own scratch.
type localFunc func(d *document.Doc, s *scratch) verdict

// countLines counts the lines of s, a last line without a line break
// included.
func countLines(s string) int {
	n := strings.Count(s, "\n")
	if s != "" && s[len(s)-1] != '\n' {
		n++
	}
	return n
}

// found is the verdict of a heuristic's finding; prefix is the recipe
// path of the heuristic's settings, so the detail names the field.
func found(prefix string, f heuristics.Finding) verdict {
	if f.Rule == "" {
		return verdict{}
	}
	if f.Field != "" {
		f.Field = prefix + f.Field
	}
	return verdict{rule: f.Rule, detail: f.String()}
}

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
			before := d.Text
			d.Text = s.norm.Normalize(d.Text)
			if d.Text == "" {
				return verdict{rule: "empty", detail: fmt.Sprintf("%d bytes, nothing left after normalization", len(before))}
			}
			if len(d.Text) != len(before) {
				return verdict{linesRemoved: countLines(before) - countLines(d.Text)}
			}
			return verdict{}
		}
	case StageLangID:
		return func(d *document.Doc, s *scratch) verdict {
			d.Lang, d.LangScore = langid.Detect(d.Text, cfg.LangID.SampleBytes)
			switch rule := cfg.LangID.Check(d.Lang, d.LangScore); rule {
			case "":
				return verdict{}
			case "language":
				return verdict{rule: rule, detail: fmt.Sprintf("%s (score %.3f) not in langid.keep %v", d.Lang, d.LangScore, cfg.LangID.Keep)}
			default:
				return verdict{rule: rule, detail: fmt.Sprintf("%s score %.3f < langid.min_score %g", d.Lang, d.LangScore, cfg.LangID.MinScore)}
			}
		}
	case StageURLFilter:
		return func(d *document.Doc, s *scratch) verdict {
			for i, f := range e.blocked {
				if f.Blocked(d.URL) {
					return verdict{rule: "blocked_domain", detail: fmt.Sprintf("host %s is blocked by %s (url_filter.block_lists)", urlfilter.Host(d.URL), cfg.URLFilter.BlockLists[i])}
				}
			}
			return verdict{}
		}
	case StageGopher:
		return func(d *document.Doc, s *scratch) verdict {
			return found("filters.gopher.", cfg.Filters.Gopher.Find(s.an.Of(d.Text)))
		}
	case StageGopherRepetition:
		return func(d *document.Doc, s *scratch) verdict {
			return found("filters.gopher_repetition.", cfg.Filters.GopherRepetition.Find(s.an.Of(d.Text)))
		}
	case StageC4:
		return func(d *document.Doc, s *scratch) verdict {
			text, f, lines := cfg.Filters.C4.Clean(s.an.Of(d.Text))
			d.Text = text
			v := found("filters.c4.", f)
			v.linesRemoved = lines
			return v
		}
	case StageFineWeb:
		return func(d *document.Doc, s *scratch) verdict {
			return found("filters.fineweb.", cfg.Filters.FineWeb.Find(s.an.Of(d.Text)))
		}
	case StageDirtyWords:
		return func(d *document.Doc, s *scratch) verdict {
			lang := d.Lang
			m := e.dirty[lang]
			if m == nil {
				lang = cfg.DirtyWords.DefaultLang
				m = e.dirty[lang]
			}
			if m == nil {
				return verdict{}
			}
			if r := m.RatioWords(d.Text, s.an.Of(d.Text).Words); r > cfg.DirtyWords.MaxRatio {
				return verdict{rule: "ratio", detail: fmt.Sprintf("%.4f > dirty_words.max_ratio %g (%s list)", r, cfg.DirtyWords.MaxRatio, lang)}
			}
			return verdict{}
		}
	case StageQuality:
		return func(d *document.Doc, s *scratch) verdict {
			d.Quality = e.quality.Prob(d.Text, cfg.Quality.Label)
			if d.Quality < cfg.Quality.MinScore {
				return verdict{rule: "low_score", detail: fmt.Sprintf("%s score %.4f < quality.min_score %g", cfg.Quality.Label, d.Quality, cfg.Quality.MinScore)}
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
