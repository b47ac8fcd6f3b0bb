package curate

import (
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestValidateNumbers: bad numbers in a recipe are errors that name the
// field and the allowed range.
func TestValidateNumbers(t *testing.T) {
	cases := []struct {
		name string
		set  func(c *Config)
		want string // "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"workers 0 means all cores", func(c *Config) { c.Workers = 0 }, ""},
		{"negative workers", func(c *Config) { c.Workers = -5 }, "workers = -5: must be ≥ 0"},
		{"files per unit 0", func(c *Config) { c.Input.FilesPerUnit = 0 }, "input.files_per_unit = 0: must be ≥ 1"},
		{"max line bytes 0", func(c *Config) { c.Input.MaxLineBytes = 0 }, "input.max_line_bytes = 0: must be ≥ 1"},
		{"row group 0", func(c *Config) { c.Output.RowGroupDocs = 0 }, "output.row_group_docs = 0: must be ≥ 1"},
		{"max doc bytes 0", func(c *Config) { c.Limits.MaxDocBytes = 0 }, "limits.max_doc_bytes = 0: must be ≥ 1"},
		{"langid NaN", func(c *Config) { c.LangID.MinScore = math.NaN() }, "langid.min_score = NaN: must be a finite number"},
		{"langid above 1", func(c *Config) { c.LangID.MinScore = 1.5 }, "langid.min_score = 1.5: must be between 0 and 1"},
		{"langid sample negative", func(c *Config) { c.LangID.SampleBytes = -1 }, "langid.sample_bytes = -1: must be ≥ 0"},
		{"quality min score inf", func(c *Config) { c.Quality.MinScore = math.Inf(1) }, "quality.min_score = +Inf: must be a finite number"},
		{"quality min score negative", func(c *Config) { c.Quality.MinScore = -0.1 }, "quality.min_score = -0.1: must be between 0 and 1"},
		{"dirty ratio negative", func(c *Config) { c.DirtyWords.MaxRatio = -1 }, "dirty_words.max_ratio = -1: must be ≥ 0"},
		{"gopher NaN", func(c *Config) { c.Filters.Gopher.MaxBulletLines = math.NaN() }, "filters.gopher.max_bullet_lines = NaN"},
		{"gopher negative words", func(c *Config) { c.Filters.Gopher.MinWords = -1 }, "filters.gopher.min_words = -1: must be ≥ 0"},
		{"ngram fraction NaN", func(c *Config) { c.Filters.GopherRepetition.TopNGramCharFrac[1] = math.NaN() }, "filters.gopher_repetition.top_ngram_char_frac[1] = NaN"},
		{"too many ngram fractions", func(c *Config) { c.Filters.GopherRepetition.DupNGramCharFrac = make([]float64, 100) }, "filters.gopher_repetition.dup_ngram_char_frac has 100 entries"},
		{"token kl max NaN", func(c *Config) { c.Filters.TokenKL.MaxKL = math.NaN() }, "filters.token_kl.max_kl = NaN"},
		{"line dedup repeats 0", func(c *Config) { c.LineDedup.MaxRepeats = 0 }, "line_dedup.max_repeats = 0: must be ≥ 1"},
		{"line dedup min chars negative", func(c *Config) { c.LineDedup.MinChars = -2 }, "line_dedup.min_chars = -2: must be ≥ 0"},
		{"minhash bands 0", func(c *Config) { c.MinHash.Bands = 0 }, "minhash.bands = 0: must be ≥ 1"},
		{"minhash memory 0", func(c *Config) { c.MinHash.MemoryMB = 0 }, "minhash.memory_mb = 0: must be ≥ 1"},
		{"minhash threshold negative is off", func(c *Config) { c.MinHash.Threshold = -1 }, ""},
		{"minhash threshold above 1", func(c *Config) { c.MinHash.Threshold = 2 }, "minhash.threshold = 2: must be ≤ 1"},
		{"minhash threshold NaN", func(c *Config) { c.MinHash.Threshold = math.NaN() }, "minhash.threshold = NaN"},
		{"normalize blank lines negative", func(c *Config) { c.Normalize.MaxBlankLines = -1 }, "normalize.max_blank_lines = -1: must be ≥ 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			cfg.Output.Dir = t.TempDir()
			c.set(&cfg)
			err := cfg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestValidateEveryNumber sets every numeric field of the recipe in turn to
// NaN (floats) or -1 (integers) and requires an error naming that field:
// no number of the recipe escapes validation.
func TestValidateEveryNumber(t *testing.T) {
	type leaf struct {
		path string
		set  func(c *Config)
	}
	var leaves []leaf
	var walk func(typ reflect.Type, path string, get func(c *Config) reflect.Value)
	walk = func(typ reflect.Type, path string, get func(c *Config) reflect.Value) {
		switch typ.Kind() {
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if name == "" || name == "-" {
					continue
				}
				p := name
				if path != "" {
					p = path + "." + name
				}
				walk(f.Type, p, func(c *Config) reflect.Value { return get(c).Field(i) })
			}
		case reflect.Slice:
			if k := typ.Elem().Kind(); k == reflect.Float64 || k == reflect.Int {
				walk(typ.Elem(), path+"[0]", func(c *Config) reflect.Value { return get(c).Index(0) })
			}
		case reflect.Float64:
			leaves = append(leaves, leaf{path, func(c *Config) { get(c).SetFloat(math.NaN()) }})
		case reflect.Int:
			leaves = append(leaves, leaf{path, func(c *Config) { get(c).SetInt(-1) }})
		}
	}
	walk(reflect.TypeFor[Config](), "", func(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() })
	if len(leaves) < 30 {
		t.Fatalf("found only %d numeric fields: %v", len(leaves), leaves)
	}
	for _, l := range leaves {
		cfg := Default()
		cfg.Output.Dir = t.TempDir()
		for _, s := range []*[]float64{&cfg.Filters.GopherRepetition.TopNGramCharFrac, &cfg.Filters.GopherRepetition.DupNGramCharFrac} {
			if len(*s) == 0 {
				*s = []float64{0.1}
			}
		}
		l.set(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), l.path+" = ") {
			t.Errorf("%s: got %v, want an error naming the field", l.path, err)
		}
	}
}

// TestRunRankRange: a rank outside [0, world) or a negative world size is
// refused before anything is written.
func TestRunRankRange(t *testing.T) {
	cases := []struct {
		rank, world int
		want        string
	}{
		{-3, 1, "rank -3: must be ≥ 0 and < the world size 1"},
		{2, 2, "rank 2: must be ≥ 0 and < the world size 2"},
		{0, -1, "world size -1: must be ≥ 1"},
	}
	for _, c := range cases {
		cfg := Default()
		cfg.Input.Paths = []string{t.TempDir()}
		cfg.Output.Dir = t.TempDir() + "/out"
		_, err := Run(t.Context(), cfg, Options{Rank: c.rank, World: c.world, Logger: quietLogger()})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("rank %d world %d: got %v, want %q", c.rank, c.world, err, c.want)
		}
		if _, err := os.Stat(cfg.Output.Dir); err == nil {
			t.Errorf("rank %d world %d: output directory created", c.rank, c.world)
		}
	}
}
