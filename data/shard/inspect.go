package shard

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"github.com/herdml/herd/internal/pqcheck"
)

// InspectOptions bound what Inspect prints.
type InspectOptions struct {
	Rows  int // rows to print (default 0: none)
	Width int // longest value printed, in bytes; longer ones are cut (default 200)
	Items int // list elements printed per value (default 16)
}

// Inspect prints a Parquet file's summary (rows, row groups, created_by,
// key/value metadata), its schema, and its first opt.Rows rows, one
// column per line; long strings and lists are cut. Any Parquet file is
// accepted (docs, removed and token shards alike); it reads only the rows
// it prints.
func Inspect(w io.Writer, path string, opt InspectOptions) (err error) {
	if opt.Width <= 0 {
		opt.Width = 200
	}
	if opt.Items <= 0 {
		opt.Items = 16
	}
	defer pqcheck.Recover(path, &err)
	pf, f, err := pqcheck.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	md := pf.Metadata()
	fmt.Fprintf(w, "file:       %s (%d bytes)\n", path, pf.Size())
	fmt.Fprintf(w, "rows:       %d in %d row groups\n", pf.NumRows(), len(pf.RowGroups()))
	fmt.Fprintf(w, "created_by: %s\n", md.CreatedBy)
	for _, kv := range md.KeyValueMetadata {
		fmt.Fprintf(w, "metadata:   %s = %s\n", kv.Key, cut(kv.Value, opt.Width))
	}
	fmt.Fprintf(w, "schema:\n%s\n", indent(pf.Schema().String()))
	if opt.Rows <= 0 || pf.NumRows() == 0 {
		return nil
	}
	cols := pf.Schema().Columns()
	names := make([]string, len(cols))
	lists := make([]bool, len(cols))
	width := 0
	for i, c := range cols {
		names[i] = strings.Join(c, ".")
		width = max(width, len(names[i]))
		if leaf, ok := pf.Schema().Lookup(c...); ok {
			lists[i] = leaf.MaxRepetitionLevel > 0
		}
	}
	buf := make([]parquet.Row, 1)
	row := 0
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for row < opt.Rows {
			n, err := rows.ReadRows(buf)
			if n == 1 {
				row++
				fmt.Fprintf(w, "row %d:\n", row)
				printRow(w, buf[0], names, lists, width, opt)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("%s: row %d: %w", path, row+1, err)
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if row >= opt.Rows {
			break
		}
	}
	return nil
}

// printRow prints one row's values by leaf column; the values of a
// repeated column (lists[c]) are listed in brackets.
func printRow(w io.Writer, r parquet.Row, names []string, lists []bool, width int, opt InspectOptions) {
	byCol := make([][]parquet.Value, len(names))
	for _, v := range r {
		if c := v.Column(); c >= 0 && c < len(names) {
			byCol[c] = append(byCol[c], v)
		}
	}
	for c, vs := range byCol {
		var s string
		switch {
		case len(vs) == 0:
			s = "null"
		case len(vs) == 1 && !lists[c]:
			s = formatValue(vs[0], opt.Width)
		default:
			items := make([]string, 0, min(len(vs), opt.Items))
			for _, v := range vs[:min(len(vs), opt.Items)] {
				if !v.IsNull() {
					items = append(items, formatValue(v, opt.Width))
				}
			}
			s = "[" + strings.Join(items, " ")
			if len(vs) > opt.Items {
				s += fmt.Sprintf(" … %d values", len(vs))
			}
			s += "]"
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, names[c], s)
	}
}

// formatValue writes a value: strings quoted and cut to width bytes.
func formatValue(v parquet.Value, width int) string {
	if v.IsNull() {
		return "null"
	}
	if v.Kind() == parquet.ByteArray || v.Kind() == parquet.FixedLenByteArray {
		b := v.ByteArray()
		s := strconv.Quote(cut(string(b), width))
		if len(b) > width {
			s += fmt.Sprintf(" … (%d bytes)", len(b))
		}
		return s
	}
	return v.String()
}

// cut keeps at most n bytes of s, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "" })
	return "  " + strings.Join(lines, "\n  ")
}
