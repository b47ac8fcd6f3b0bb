package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/herdml/herd/data/shard"
)

// inspect prints the schema, metadata and first rows of Parquet files
// (curated docs and removed shards, token shards): what pyarrow or DuckDB
// would show, without installing them.
func inspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("curate inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.Int("rows", 3, "rows to print (0: schema and metadata only)")
	width := fs.Int("width", 200, "longest value printed, in bytes (longer ones are cut)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: curate inspect [-rows N] [-width BYTES] FILE.parquet ...\n  prints each file's row count, created_by, metadata, schema and first rows\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch {
	case fs.NArg() == 0:
		return errors.New("inspect: name one or more Parquet files, e.g. curate inspect curated/docs-00000.parquet")
	case *rows < 0:
		return fmt.Errorf("inspect: -rows %d: must be ≥ 0", *rows)
	case *width < 1:
		return fmt.Errorf("inspect: -width %d: must be ≥ 1", *width)
	}
	for i, path := range fs.Args() {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := shard.Inspect(stdout, path, shard.InspectOptions{Rows: *rows, Width: *width}); err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
	}
	return nil
}
