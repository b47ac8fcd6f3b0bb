package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/outdir"
)

// OverlapError is AverageModels' refusal of an output directory that is
// one of the inputs, holds one, or lies inside one.
type OverlapError struct {
	Out, Input string
}

func (e *OverlapError) Error() string {
	return fmt.Sprintf("output %s is (or holds, or lies inside) the input %s; write the average to another directory", e.Out, e.Input)
}

// AverageModels writes to the model directory out the weighted average of
// the model (or checkpoint) directories inputs, as AverageWeighted computes
// it (weights nil: uniform), with the configuration of the last input and
// the tokenizer files (tokenizer.json, tokenizer_config.json) of the last
// input that has a tokenizer.json.
//
// Nothing is read or written when out overlaps an input (an *OverlapError)
// or may not be replaced: out must not exist, be empty, or be a model
// directory herd made (internal/outdir). The result is published
// atomically by SaveModel, so out holds either its previous content or the
// complete average.
func AverageModels(out string, inputs []string, weights []float64) error {
	if len(inputs) == 0 {
		return errors.New("average: no input models")
	}
	if _, _, err := averageCoefficients(inputs, weights); err != nil {
		return err
	}
	for _, in := range inputs {
		overlap, err := outdir.Overlaps(out, in)
		if err != nil {
			return fmt.Errorf("average: compare output %s with input %s: %w", out, in, err)
		}
		if overlap {
			return &OverlapError{Out: out, Input: in}
		}
	}
	if err := outdir.CheckReplace(out, outdir.Model); err != nil {
		return fmt.Errorf("average: %w", err)
	}
	cfg, params, err := AverageWeighted(inputs, weights)
	if err != nil {
		return err
	}
	extra, err := tokenizerFiles(inputs)
	if err != nil {
		return err
	}
	return SaveModel(out, cfg, params, SaveOptions{Extra: extra})
}

// tokenizerFiles returns the tokenizer files of the last of dirs that has
// a tokenizer.json (with its tokenizer_config.json when present), or nil
// when none has one.
func tokenizerFiles(dirs []string) (map[string][]byte, error) {
	for i := len(dirs) - 1; i >= 0; i-- {
		tj, err := os.ReadFile(filepath.Join(dirs[i], tokenizer.TokenizerFile))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("average: tokenizer: %w", err)
		}
		extra := map[string][]byte{tokenizer.TokenizerFile: tj}
		cj, err := os.ReadFile(filepath.Join(dirs[i], tokenizer.ConfigFile))
		switch {
		case err == nil:
			extra[tokenizer.ConfigFile] = cj
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("average: tokenizer: %w", err)
		}
		return extra, nil
	}
	return nil, nil
}
