package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/herdml/herd/data/curate"
)

// genSynthetic writes a synthetic corpus for throughput and memory runs.
func genSynthetic(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("curate gen-synthetic", flag.ContinueOnError)
	out := fs.String("out", "", "output folder for part-NNNNN.jsonl.zst")
	size := fs.String("bytes", "100M", "uncompressed JSONL size (suffix K, M or G: powers of 1000)")
	files := fs.Int("files", 0, "number of files (default one per 64 MB)")
	corpora := fs.String("corpora", "../shared/testdata/corpora", "folder of the reference corpora")
	seed := fs.Uint64("seed", 1, "seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("gen-synthetic: -out is required")
	}
	n, err := parseSize(*size)
	if err != nil {
		return fmt.Errorf("gen-synthetic: -bytes: %w", err)
	}
	st, err := curate.GenerateSynthetic(ctx, curate.SyntheticConfig{Corpora: *corpora, Out: *out, Bytes: n, Files: *files, Seed: *seed})
	if err != nil {
		return err
	}
	fmt.Printf("wrote %d files, %d documents, %.1f MB of JSONL to %s: %d exact copies, %d near copies, %d with boilerplate, %d repeated URLs\n",
		st.Files, st.Docs, float64(st.Bytes)/1e6, *out, st.ExactCopies, st.NearCopies, st.WithBoilerplate, st.RepeatedURLs)
	return nil
}

// parseSize reads "1G", "500M", "64K" or a plain number of bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1e3, strings.TrimSuffix(s, "K")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a size like 1G, 500M or 4096", s)
	}
	return int64(v * float64(mult)), nil
}
