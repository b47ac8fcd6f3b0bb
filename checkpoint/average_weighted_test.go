package checkpoint

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
)

// averageInputs saves n tiny models of the same architecture (different
// weights; the last one with a longer context, to tell whose configuration
// the average keeps) and returns their directories and parameters.
func averageInputs(t *testing.T, root string, n int) ([]string, []*model.Params) {
	t.Helper()
	dirs := make([]string, n)
	params := make([]*model.Params, n)
	for i := range n {
		c := tinyConfig(false)
		if i == n-1 {
			c.MaxPositionEmbeddings = 128
		}
		params[i] = tinyParams(c, uint64(10+i))
		dirs[i] = filepath.Join(root, fmt.Sprintf("m%d", i))
		if err := SaveModel(dirs[i], c, params[i], SaveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return dirs, params
}

// withinULP reports whether got is want or one of its float32 neighbours.
func withinULP(got, want float32) bool {
	return got == want || got == math.Nextafter32(want, float32(math.Inf(1))) || got == math.Nextafter32(want, float32(math.Inf(-1)))
}

func TestAverageWeightedMatchesFloat64(t *testing.T) {
	dirs, params := averageInputs(t, t.TempDir(), 3)
	for _, weights := range [][]float64{
		{0.5, 0.3, 0.2},
		{2, 1, 0},
		{0, 0, 4},
		{1e-3, 5, 7.25},
		{1e-300, 3e-300, 2e-300},
	} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			cfg, got, err := AverageWeighted(dirs, weights)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MaxPositionEmbeddings != 128 {
				t.Errorf("configuration of the average has max_position_embeddings %d, want the last input's 128", cfg.MaxPositionEmbeddings)
			}
			sum := 0.0
			for _, w := range weights {
				sum += w
			}
			for j := range got.Data {
				var s float64
				for i, p := range params {
					s += weights[i] * float64(p.Data[j])
				}
				want := float32(s / sum)
				if !withinULP(got.Data[j], want) {
					t.Fatalf("element %d = %g, want %g (float64 recomputation)", j, got.Data[j], want)
				}
			}
		})
	}
}

func TestAverageWeightedUniform(t *testing.T) {
	dirs, params := averageInputs(t, t.TempDir(), 3)
	_, mean, err := Average(dirs)
	if err != nil {
		t.Fatal(err)
	}
	for j := range mean.Data {
		s := float64(params[0].Data[j]) + float64(params[1].Data[j]) + float64(params[2].Data[j])
		if want := float32(s / 3); !withinULP(mean.Data[j], want) {
			t.Fatalf("Average element %d = %g, want %g", j, mean.Data[j], want)
		}
	}
	for _, weights := range [][]float64{nil, {1, 1, 1}, {0.1, 0.1, 0.1}, {7, 7, 7}, {1e-310, 1e-310, 1e-310}} {
		_, got, err := AverageWeighted(dirs, weights)
		if err != nil {
			t.Fatalf("%v: %v", weights, err)
		}
		sameBits(t, fmt.Sprintf("weights %v", weights), got.Data, mean.Data)
	}
	// One model averages to itself.
	_, one, err := AverageWeighted(dirs[:1], []float64{0.3})
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "average of one model", one.Data, params[0].Data)
}

func TestAverageWeightedErrors(t *testing.T) {
	root := t.TempDir()
	dirs, _ := averageInputs(t, root, 3)
	tied := filepath.Join(root, "tied")
	if err := SaveModel(tied, tinyConfig(true), tinyParams(tinyConfig(true), 1), SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	eps := filepath.Join(root, "eps")
	ec := tinyConfig(false)
	ec.RMSNormEps = 1e-6
	if err := SaveModel(eps, ec, tinyParams(ec, 1), SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(root, "missing")
	for _, tc := range []struct {
		name      string
		dirs      []string
		weights   []float64
		badWeight bool     // the error wraps ErrInvalidWeights
		want      []string // substrings of the error
	}{
		{"no models", nil, nil, false, []string{"no checkpoints"}},
		{"too few weights", dirs, []float64{1, 2}, true, []string{"2 weights for 3 models"}},
		{"too many weights", dirs, []float64{1, 2, 3, 4}, true, []string{"4 weights for 3 models"}},
		{"negative", dirs, []float64{1, -0.5, 1}, true, []string{"weight 2 (-0.5)", dirs[1], "negative"}},
		{"NaN", dirs, []float64{math.NaN(), 1, 1}, true, []string{"weight 1 (NaN)", dirs[0], "not a finite number"}},
		{"infinite", dirs, []float64{1, 1, math.Inf(1)}, true, []string{"weight 3 (+Inf)", dirs[2], "not a finite number"}},
		{"zero sum", dirs, []float64{0, 0, 0}, true, []string{"sum to zero"}},
		{"overflowing sum", dirs, []float64{1e308, 1e308, 1e308}, true, []string{"sum to +Inf"}},
		{"different layout", []string{dirs[0], tied}, nil, false, []string{tied, "different model than " + dirs[0], "tensors"}},
		{"different architecture", []string{dirs[0], eps}, nil, false, []string{eps, "rms_norm_eps is 1e-06, not 1e-05"}},
		{"different model at weight zero", []string{dirs[0], tied}, []float64{1, 0}, false, []string{tied, "different model"}},
		{"missing directory", []string{dirs[0], missing}, nil, false, []string{missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, p, err := AverageWeighted(tc.dirs, tc.weights)
			if err == nil {
				t.Fatalf("accepted (%d weights)", len(p.Data))
			}
			if got := errors.Is(err, ErrInvalidWeights); got != tc.badWeight {
				t.Errorf("errors.Is(err, ErrInvalidWeights) = %v, want %v: %v", got, tc.badWeight, err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// digest renders every path under root with a hash of its content.
func digest(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %v", rel, d.Type())
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestAverageModels(t *testing.T) {
	root := t.TempDir()
	dirs, _ := averageInputs(t, root, 3)
	// The first two inputs carry tokenizers; the second one (the last
	// that has one) must be copied, without the first one's config.
	os.WriteFile(filepath.Join(dirs[0], tokenizer.TokenizerFile), []byte(`{"first":true}`), 0o644)
	os.WriteFile(filepath.Join(dirs[0], tokenizer.ConfigFile), []byte(`{"first":true}`), 0o644)
	os.WriteFile(filepath.Join(dirs[1], tokenizer.TokenizerFile), []byte(`{"second":true}`), 0o644)
	weights := []float64{0.5, 0.3, 0.2}
	out := filepath.Join(root, "avg")
	for range 2 { // a fresh directory, then its own output again
		if err := AverageModels(out, dirs, weights); err != nil {
			t.Fatal(err)
		}
	}
	cfg, got, err := LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	wantCfg, want, err := AverageWeighted(dirs, weights)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "saved average", got.Data, want.Data)
	if !sameConfig(cfg, wantCfg) {
		t.Errorf("saved configuration differs from the last input's")
	}
	if data, err := os.ReadFile(filepath.Join(out, tokenizer.TokenizerFile)); err != nil || string(data) != `{"second":true}` {
		t.Errorf("%s = %q, %v; want the second input's", tokenizer.TokenizerFile, data, err)
	}
	if _, err := os.Stat(filepath.Join(out, tokenizer.ConfigFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was copied from another input than tokenizer.json (stat: %v)", tokenizer.ConfigFile, err)
	}

	// Without any tokenizer, the average has none.
	plain, _ := averageInputs(t, filepath.Join(root, "plain"), 2)
	out2 := filepath.Join(root, "avg2")
	if err := AverageModels(out2, plain, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out2, tokenizer.TokenizerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("average of models without a tokenizer has %s (stat: %v)", tokenizer.TokenizerFile, err)
	}
}

func TestAverageModelsRefuses(t *testing.T) {
	root := t.TempDir()
	dirs, _ := averageInputs(t, root, 2)
	user := filepath.Join(root, "thesis")
	os.MkdirAll(user, 0o755)
	os.WriteFile(filepath.Join(user, "chapter1.tex"), []byte("years of work"), 0o644)
	file := filepath.Join(root, "notes.txt")
	os.WriteFile(file, []byte("notes"), 0o644)
	for _, tc := range []struct {
		name    string
		out     string
		weights []float64
		overlap bool   // the error is an *OverlapError
		want    string // a substring of the error
	}{
		{"an input", dirs[1], nil, true, "is (or holds, or lies inside) the input " + dirs[1]},
		{"inside an input", filepath.Join(dirs[0], "sub"), nil, true, "the input " + dirs[0]},
		{"holding the inputs", root, nil, true, "the input " + dirs[0]},
		{"a foreign non-empty directory", user, nil, false, "not empty"},
		{"a file", file, nil, false, "not a directory"},
		{"bad weights", filepath.Join(root, "avg"), []float64{1, -1}, false, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := digest(t, root)
			err := AverageModels(tc.out, dirs, tc.weights)
			if err == nil {
				t.Fatal("accepted")
			}
			var oe *OverlapError
			if got := errors.As(err, &oe); got != tc.overlap {
				t.Errorf("errors.As(err, *OverlapError) = %v, want %v: %v", got, tc.overlap, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if digest(t, root) != before {
				t.Fatalf("refused (%v) but changed files", err)
			}
		})
	}
}

// TestAverageAcrossRopeChange averages checkpoints on both sides of a
// long-context stage (rope_theta and the context length changed, the
// weights did not change shape): allowed, with the last one's settings.
func TestAverageAcrossRopeChange(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	ac := tinyConfig(false)
	bc := ac
	bc.RopeTheta, bc.MaxPositionEmbeddings = 500000, 2*ac.MaxPositionEmbeddings
	if err := SaveModel(a, ac, tinyParams(ac, 1), SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := SaveModel(b, bc, tinyParams(bc, 2), SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := AverageWeighted([]string{a, b}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RopeTheta != 500000 || cfg.MaxPositionEmbeddings != bc.MaxPositionEmbeddings {
		t.Fatalf("averaged config has rope_theta %v, context %d; want the last checkpoint's", cfg.RopeTheta, cfg.MaxPositionEmbeddings)
	}
}
