package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/herdml/herd/data/curate"
	"github.com/herdml/herd/data/htmltext"
)

type classFlags []string

func (c *classFlags) String() string     { return strings.Join(*c, " ") }
func (c *classFlags) Set(v string) error { *c = append(*c, v); return nil }

func trainClassifier(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("curate train-classifier", flag.ContinueOnError)
	var classes classFlags
	fs.Var(&classes, "class", "label=path (file, directory or glob; repeat per class; the first class is the positive one for AUC)")
	out := fs.String("out", "", "model file to write")
	holdout := fs.Float64("holdout", 0.2, "fraction of each class held out for evaluation")
	seed := fs.Uint64("seed", 1, "seed for the split and training")
	epochs := fs.Int("epochs", 0, "training epochs (0 = classifier default)")
	buckets := fs.Int("buckets", 1<<18, "hashed feature rows")
	textField := fs.String("text-field", "text", "text field of JSONL/Parquet inputs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(classes) < 2 || *out == "" {
		return fmt.Errorf("usage: curate train-classifier -class hq=good/ -class lq=bad/ -out quality.model")
	}
	spec := curate.TrainSpec{Holdout: *holdout, Seed: *seed, Epochs: *epochs, Buckets: *buckets, TextField: *textField, HTML: htmltext.Extractor{}}
	for _, c := range classes {
		label, path, ok := strings.Cut(c, "=")
		if !ok || label == "" || path == "" {
			return fmt.Errorf("-class %q: want label=path", c)
		}
		spec.Classes = append(spec.Classes, curate.Class{Label: label, Paths: []string{path}})
	}
	res, err := curate.TrainClassifier(ctx, spec)
	if err != nil {
		return err
	}
	if err := res.Model.SaveFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "trained on %d documents, held out %d\nheld-out accuracy %.4f\nheld-out AUC (%s vs rest) %.4f\nmodel written to %s\n",
		res.Train, res.Eval.N, res.Eval.Accuracy, res.Eval.Positive, res.Eval.AUC, *out)
	return nil
}
