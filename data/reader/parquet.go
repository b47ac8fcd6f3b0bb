package reader

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/parquet-go/parquet-go"

	"github.com/herdml/herd/internal/pqcheck"
)

// readParquet streams the rows of a Parquet file with flat (top-level)
// string columns named by the config.
func readParquet(path string, cfg Config, pg *pages, emit func(*Record) error) (err error) {
	// The Parquet library panics on some corrupted files: report those as
	// errors naming the file, but let panics of the callbacks through.
	inCallback := false
	defer func() {
		if r := recover(); r != nil {
			if inCallback {
				panic(r)
			}
			err = fmt.Errorf("%s: corrupted Parquet file (%v); re-create it", path, r)
		}
	}()
	pf, f, err := pqcheck.Open(path)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	defer f.Close()
	col := func(name string) int {
		if name == "" {
			return -1
		}
		if c, ok := pf.Schema().Lookup(name); ok {
			return c.ColumnIndex
		}
		return -1
	}
	textCol, htmlCol := col(cfg.TextField), col(cfg.HTMLField)
	if textCol < 0 && htmlCol < 0 {
		return fmt.Errorf("%s: no column %q (set input.text_field or input.html_field; columns: %v)", path, cfg.TextField, pf.Schema().Columns())
	}
	idCol, urlCol, dateCol := col(cfg.IDField), col(cfg.URLField), col(cfg.DateField)
	src := cfg.Source
	if src == "" {
		src = base(path)
	}
	row := 0
	buf := make([]parquet.Row, 64)
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(buf)
			for _, pr := range buf[:n] {
				row++
				r := &Record{}
				r.Doc.Source = src
				r.Doc.Origin = path + ":row" + strconv.Itoa(row)
				get := func(c int) (string, bool) {
					if c < 0 {
						return "", false
					}
					for _, v := range pr {
						if v.Column() == c {
							if v.IsNull() {
								return "", false
							}
							return v.String(), true
						}
					}
					return "", false
				}
				r.Doc.ID, _ = get(idCol)
				r.Doc.URL, _ = get(urlCol)
				r.Doc.Date, _ = get(dateCol)
				if h, ok := get(htmlCol); ok {
					r.Bytes = int64(len(h))
					inCallback = true
					e := pg.set(r, h)
					inCallback = false
					if e != nil {
						rows.Close()
						return e
					}
				} else if t, ok := get(textCol); ok {
					r.Bytes = int64(len(t))
					r.Doc.Text = t
				} else {
					r.Problem, r.Detail = "missing_text", fmt.Sprintf("row %d has no value in column %q", row, cfg.TextField)
				}
				if r.Doc.ID == "" {
					r.Doc.ID = r.Doc.Origin
				}
				inCallback = true
				e := emit(r)
				inCallback = false
				if e != nil {
					rows.Close()
					return e
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("%s: row %d: %w", path, row, err)
			}
		}
		rows.Close()
	}
	return nil
}
