// Package curate runs the curation pipeline: raw documents in, clean,
// deduplicated, quality-scored Parquet shards out, with every removed
// document kept in removed/ Parquet with the stage and rule that removed it,
// and a funnel of documents and bytes per stage in stats.json.
//
// Stages run in the order the recipe lists them. Per-document stages run in
// parallel across cores; stages that need the whole corpus (URL dedup, exact
// dedup, line dedup, the token KL filter, MinHash) end a pass: every unit
// writes its keys to files, a decision step merges them, and the next pass
// applies the decision; each such stage is one type in its own file (see
// globalStage in global.go). Each pass writes one file per input unit atomically,
// so a rerun after a crash skips finished units, and units are split across
// ranks that share a file system. A rerun reuses a finished unit only when
// its input files and the recipe are unchanged (resume.go), removes what an
// interrupted run left half-written (temps.go), and each rank holds a lock
// on its part of the output so a second writer is refused (lock.go).
//
// Memory does not grow with the corpus: documents stream through in chunks
// of at most 1024 documents or 32 MB; dedup decisions are split per unit
// and read alongside the documents; key files are sorted with spilling
// (minhash.memory_mb); line dedup counts one bucket at a time. Only the
// MinHash clustering step keeps state per near-duplicate document.
//
// The funnel (stats.json, and the table `curate` prints) accounts for
// every byte: per stage the documents and bytes in and out, the removals
// per rule with the first detail of each (the measured value and the
// recipe threshold it crossed), and the edits of kept documents (lines and
// bytes cut by normalization, line dedup and C4's line filter; truncation
// at limits.max_doc_bytes and the input bytes that are not text). A run
// that keeps nothing fails with ErrNothingKept.
// BENCHMARKS.md gives throughput per stage and peak memory on a 1 GB
// corpus made by `curate gen-synthetic`.
package curate

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/herdml/herd/data/heuristics"
	"github.com/herdml/herd/data/langid"
	"github.com/herdml/herd/data/reader"
	"github.com/herdml/herd/data/textnorm"
)

// Stage names, in the default order of the web recipe.
const (
	StageNormalize        = "normalize"
	StageLangID           = "langid"
	StageURLFilter        = "url_filter"
	StageURLDedup         = "url_dedup"
	StageExactDedup       = "exact_dedup"
	StageLineDedup        = "line_dedup"
	StageGopher           = "gopher"
	StageGopherRepetition = "gopher_repetition"
	StageC4               = "c4"
	StageFineWeb          = "fineweb"
	StageTokenKL          = "token_kl"
	StageDirtyWords       = "dirty_words"
	StageMinHash          = "minhash"
	StageQuality          = "quality"
	StageDomain           = "domain"
)

// allStages lists every stage name in the default order.
var allStages = []string{StageNormalize, StageLangID, StageURLFilter, StageURLDedup, StageExactDedup,
	StageLineDedup, StageGopher, StageGopherRepetition, StageC4, StageFineWeb, StageTokenKL,
	StageDirtyWords, StageMinHash, StageQuality, StageDomain}

// Config is a curation recipe. Every field has a default (Default); a
// recipe file only lists what it changes.
type Config struct {
	// Input: files and field names (see reader.Config).
	Input reader.Config `yaml:"input"`
	// Limits: what happens to bad or huge input documents.
	Limits Limits `yaml:"limits"`
	// Output: where shards go.
	Output Output `yaml:"output"`
	// Stages: which stages run, in this order (default: normalize, langid,
	// url_filter, url_dedup, exact_dedup, line_dedup, gopher,
	// gopher_repetition, c4, fineweb, token_kl, dirty_words, minhash; the
	// other stages, quality and domain, need a model file).
	Stages []string `yaml:"stages"`
	// Workers is the number of goroutines for per-document work (0 = all cores).
	Workers int `yaml:"workers"`

	Normalize  textnorm.Options `yaml:"normalize"`
	LangID     langid.Config    `yaml:"langid"`
	URLFilter  URLFilter        `yaml:"url_filter"`
	URLDedup   URLDedup         `yaml:"url_dedup"`
	ExactDedup ExactDedup       `yaml:"exact_dedup"`
	LineDedup  LineDedup        `yaml:"line_dedup"`
	Filters    Filters          `yaml:"filters"`
	DirtyWords DirtyWords       `yaml:"dirty_words"`
	MinHash    MinHash          `yaml:"minhash"`
	Quality    Classifier       `yaml:"quality"`
	Domain     Classifier       `yaml:"domain"`
}

// Limits bounds input documents.
type Limits struct {
	MaxDocBytes int    `yaml:"max_doc_bytes"` // larger documents are capped or dropped (default 1 MiB)
	Huge        string `yaml:"huge"`          // "truncate" (default) or "drop"
	InvalidUTF8 string `yaml:"invalid_utf8"`  // "repair" (default: bad bytes become U+FFFD) or "drop"
	FailFast    bool   `yaml:"fail_fast"`     // stop at the first malformed record instead of counting it
}

// Output says where results go.
type Output struct {
	Dir          string `yaml:"dir"`            // output directory (required; also the -out flag)
	RowGroupDocs int    `yaml:"row_group_docs"` // Parquet row group size (default 1024)
	KeepWork     bool   `yaml:"keep_work"`      // keep intermediate pass files after success (default false)
}

// URLFilter holds the domain block lists.
type URLFilter struct {
	BlockLists []string `yaml:"block_lists"` // files, one domain per line
}

// URLDedup keeps the most recent document per normalized URL.
type URLDedup struct {
	StripWWW bool `yaml:"strip_www"` // treat www.example.com as example.com (default true)
}

// ExactDedup removes documents whose normalized text equals an earlier one.
type ExactDedup struct {
	KeepCase       bool `yaml:"keep_case"`       // compare case-sensitively (default false)
	KeepWhitespace bool `yaml:"keep_whitespace"` // compare whitespace exactly (default false)
}

// LineDedup removes lines repeated more than MaxRepeats times within
// buckets of BucketDocs consecutive input documents (ccNet). Buckets follow
// input order across files and ranks: bucket b holds input positions
// [b·M, (b+1)·M). Memory for counting is one entry per distinct line of a
// bucket (tens of bytes each), whatever the corpus size; the Llama 3 paper
// uses 30M-document buckets, which need a few GB per counting worker.
type LineDedup struct {
	MaxRepeats int `yaml:"max_repeats"` // N (default 6)
	BucketDocs int `yaml:"bucket_docs"` // M (default 10000)
	MinChars   int `yaml:"min_chars"`   // documents left shorter than this are dropped (default 1)
}

// Filters holds the heuristic quality filters.
type Filters struct {
	Gopher           heuristics.GopherQuality    `yaml:"gopher"`
	GopherRepetition heuristics.GopherRepetition `yaml:"gopher_repetition"`
	C4               heuristics.C4               `yaml:"c4"`
	FineWeb          heuristics.FineWeb          `yaml:"fineweb"`
	TokenKL          heuristics.TokenKL          `yaml:"token_kl"`
}

// DirtyWords configures the dirty-word filter.
type DirtyWords struct {
	MaxRatio    float64           `yaml:"max_ratio"`    // listed terms / words, at most (default 0.01)
	DefaultLang string            `yaml:"default_lang"` // list used when the language is unknown (default "en")
	Lists       map[string]string `yaml:"lists"`        // language → list file, replacing the shipped list
}

// MinHash configures near-duplicate removal.
type MinHash struct {
	NGram        int     `yaml:"ngram"`         // shingle size in words (default 5)
	CharShingles bool    `yaml:"char_shingles"` // character shingles instead of words
	Bands        int     `yaml:"bands"`         // LSH bands: documents sharing all rows of one band are candidates (default 14)
	Rows         int     `yaml:"rows"`          // MinHash values per band (default 8)
	Seed         uint64  `yaml:"seed"`          // hash permutations (default 1)
	Threshold    float64 `yaml:"threshold"`     // verify candidates by estimated Jaccard (default 0.5; < 0 off)
	MemoryMB     int     `yaml:"memory_mb"`     // sort buffer before spilling (default 256)
}

// Classifier configures a model-based stage (data/classify models).
type Classifier struct {
	Model    string  `yaml:"model"`     // model file from `curate train-classifier` (required when the stage runs)
	Label    string  `yaml:"label"`     // quality: the label whose probability is the score (default "hq")
	MinScore float64 `yaml:"min_score"` // quality: drop documents scoring lower (default 0 = annotate only)
}

// Default returns the default recipe (the web recipe without model stages).
func Default() Config {
	return Config{
		Input:  reader.Default(),
		Limits: Limits{MaxDocBytes: 1 << 20, Huge: "truncate", InvalidUTF8: "repair"},
		Output: Output{RowGroupDocs: 1024},
		Stages: slices.DeleteFunc(slices.Clone(allStages), func(s string) bool {
			return s == StageQuality || s == StageDomain
		}),
		Normalize: textnorm.Default(),
		LangID:    langid.Default(),
		URLDedup:  URLDedup{StripWWW: true},
		LineDedup: LineDedup{MaxRepeats: 6, BucketDocs: 10000, MinChars: 1},
		Filters: Filters{
			Gopher: heuristics.DefaultGopherQuality(), GopherRepetition: heuristics.DefaultGopherRepetition(),
			C4: heuristics.DefaultC4(), FineWeb: heuristics.DefaultFineWeb(), TokenKL: heuristics.DefaultTokenKL(),
		},
		DirtyWords: DirtyWords{MaxRatio: 0.01, DefaultLang: "en"},
		MinHash:    MinHash{NGram: 5, Bands: 14, Rows: 8, Seed: 1, Threshold: 0.5, MemoryMB: 256},
		Quality:    Classifier{Label: "hq"},
	}
}

// Validate checks a resolved recipe and says how to fix what is wrong.
func (c *Config) Validate() error {
	if c.Output.Dir == "" {
		return fmt.Errorf("output.dir is empty: pass -out DIR or set output.dir")
	}
	if err := checkNumbers(reflect.ValueOf(c).Elem(), ""); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range c.Stages {
		if !slices.Contains(allStages, s) {
			return fmt.Errorf("stages: unknown stage %q (known: %s)", s, strings.Join(allStages, ", "))
		}
		if seen[s] {
			return fmt.Errorf("stages: %q listed twice", s)
		}
		seen[s] = true
	}
	switch c.Limits.Huge {
	case "truncate", "drop":
	default:
		return fmt.Errorf("limits.huge = %q: want truncate or drop", c.Limits.Huge)
	}
	switch c.Limits.InvalidUTF8 {
	case "repair", "drop":
	default:
		return fmt.Errorf("limits.invalid_utf8 = %q: want repair or drop", c.Limits.InvalidUTF8)
	}
	if seen[StageTokenKL] {
		if err := c.Filters.TokenKL.Validate(); err != nil {
			return fmt.Errorf("filters.%w", err)
		}
	}
	for _, s := range []string{StageQuality, StageDomain} {
		cl := c.Quality
		if s == StageDomain {
			cl = c.Domain
		}
		if seen[s] && cl.Model == "" {
			return fmt.Errorf("stage %s needs %s.model (train one with `curate train-classifier`)", s, s)
		}
	}
	return nil
}

// numberRule is the allowed range of a numeric recipe field. Every number
// must be finite, and ≥ 0 unless its rule says otherwise.
type numberRule struct {
	min, max float64 // inclusive bounds
	note     string  // what the value means, for the message
}

// ruleFor returns the range of the numeric field at a recipe path.
func ruleFor(path string) numberRule {
	general := numberRule{min: 0, max: math.Inf(1)}
	atLeast1 := numberRule{min: 1, max: math.Inf(1)}
	switch path {
	case "workers":
		general.note = " (0 = all cores)"
	case "input.html_timeout_seconds":
		return numberRule{min: 0.001, max: math.Inf(1), note: " (seconds)"}
	case "input.files_per_unit", "input.max_line_bytes", "limits.max_doc_bytes", "output.row_group_docs",
		"input.html_max_bytes", "input.html_max_depth", "input.html_max_elements",
		"line_dedup.max_repeats", "line_dedup.bucket_docs",
		"minhash.ngram", "minhash.bands", "minhash.rows", "minhash.memory_mb":
		return atLeast1
	case "langid.min_score", "quality.min_score", "domain.min_score":
		return numberRule{min: 0, max: 1}
	case "minhash.threshold":
		return numberRule{min: math.Inf(-1), max: 1, note: " (< 0 turns verification off)"}
	}
	return general
}

// maxListEntries bounds the per-n threshold lists of the heuristics (each
// entry is one more pass over every document).
const maxListEntries = 16

// checkNumbers walks the numeric fields of a recipe struct (named by their
// yaml paths) and reports the first that is NaN, infinite or out of range.
func checkNumbers(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !t.Field(i).IsExported() {
				continue
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			if err := checkNumbers(v.Field(i), p); err != nil {
				return err
			}
		}
	case reflect.Slice:
		k := v.Type().Elem().Kind()
		if k != reflect.Float64 && k != reflect.Int {
			return nil
		}
		if v.Len() > maxListEntries {
			return fmt.Errorf("%s has %d entries: at most %d", path, v.Len(), maxListEntries)
		}
		for i := range v.Len() {
			if err := checkNumber(v.Index(i), path+"["+strconv.Itoa(i)+"]", ruleFor(path)); err != nil {
				return err
			}
		}
	case reflect.Float64, reflect.Int:
		return checkNumber(v, path, ruleFor(path))
	}
	return nil
}

func checkNumber(v reflect.Value, path string, r numberRule) error {
	var x float64
	var text string
	if v.Kind() == reflect.Int {
		x, text = float64(v.Int()), strconv.FormatInt(v.Int(), 10)
	} else {
		x = v.Float()
		text = strconv.FormatFloat(x, 'g', -1, 64)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%s = %s: must be a finite number", path, text)
		}
	}
	if x >= r.min && x <= r.max {
		return nil
	}
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	switch {
	case math.IsInf(r.max, 1):
		return fmt.Errorf("%s = %s: must be ≥ %s%s", path, text, num(r.min), r.note)
	case math.IsInf(r.min, -1):
		return fmt.Errorf("%s = %s: must be ≤ %s%s", path, text, num(r.max), r.note)
	}
	return fmt.Errorf("%s = %s: must be between %s and %s%s", path, text, num(r.min), num(r.max), r.note)
}
