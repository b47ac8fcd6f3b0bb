// Package report writes report.html, the one-page summary every herd run
// leaves in its directory (pretraining, each post-training kind,
// curation). A page is self-contained: its plots are inlined as data: URIs
// and its style sheet is in the page, so it opens from the file system in
// any browser, without a server or network access.
package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"

	"github.com/herdml/herd/internal/atomicfile"
)

// File is the name of the report in a run directory.
const File = "report.html"

// Page is one report.
type Page struct {
	Title string // e.g. "pretraining run"
	Dir   string // the run directory, shown under the title
	// Sections appear in order.
	Sections []Section
}

// Section is a titled part of a page; every part is optional and they
// are shown in the order of the fields.
type Section struct {
	Title  string
	Text   string   // a paragraph
	Facts  []Fact   // a two-column table of names and values
	Table  *Table   // a table with a header row
	Images []Image  // plots, inlined
	Pre    []string // preformatted blocks (samples, text tables)
	Notes  []string // warnings, shown highlighted
}

// Fact is a named value.
type Fact struct{ Name, Value string }

// Table is a table with a header; the first column is left-aligned, the
// others right-aligned.
type Table struct {
	Header []string
	Rows   [][]string
}

// Image is a PNG shown inline.
type Image struct {
	Alt string
	PNG []byte
}

// ImageFile reads a PNG for a page; a missing file gives ok false (a run
// that has not plotted yet), other errors are returned.
func ImageFile(path, alt string) (img Image, ok bool, err error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Image{}, false, nil
	}
	if err != nil {
		return Image{}, false, err
	}
	return Image{Alt: alt, PNG: data}, true, nil
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"png": func(b []byte) template.URL {
		return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:sans-serif;margin:1.5em 2em;max-width:70em;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:.1em}h2{font-size:1.25em;border-bottom:2px solid #3a6ea5;padding-bottom:.2em;margin-top:1.5em}
.dir{color:#555;font-family:monospace}
pre{background:#f4f4f4;padding:.8em;overflow-x:auto;white-space:pre-wrap}
img{max-width:100%;display:block;margin:.5em 0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 9px;text-align:right}
th{background:#e8eef6}td:first-child,th:first-child{text-align:left}
table.facts td:first-child{font-weight:bold;background:#f6f6f6}table.facts td{text-align:left}
.note{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
</style></head><body>
<h1>{{.Title}}</h1>{{with .Dir}}<div class="dir">{{.}}</div>{{end}}
{{range .Sections}}<h2>{{.Title}}</h2>
{{range .Notes}}<div class="note">{{.}}</div>
{{end}}{{with .Text}}<p>{{.}}</p>
{{end}}{{with .Facts}}<table class="facts">{{range .}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</table>
{{end}}{{with .Table}}<table><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}{{range .Images}}<img alt="{{.Alt}}" src="{{png .PNG}}">
{{end}}{{range .Pre}}<pre>{{.}}</pre>
{{end}}{{end}}</body></html>
`))

// renderPage writes the page's HTML to w.
func renderPage(w io.Writer, p Page) error {
	return page.Execute(w, p)
}

// Write renders the page into dir/report.html, replacing it atomically.
func Write(dir string, p Page) error {
	var buf bytes.Buffer
	if err := renderPage(&buf, p); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, File), buf.Bytes(), 0o644)
}
