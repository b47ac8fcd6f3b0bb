package scaling

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Point is one training run: its compute, model size, tokens and held-out
// loss. A JSONL of points needs only the first four fields.
type Point struct {
	FLOPs  float64 `json:"flops"`
	Params float64 `json:"params"`
	Tokens float64 `json:"tokens"`
	Loss   float64 `json:"loss"`
	// Budget groups the point into an IsoFLOP curve (default: FLOPs
	// rounded to 3 significant digits).
	Budget float64 `json:"budget,omitempty"`
	Size   int     `json:"size,omitempty"`
	Run    string  `json:"run,omitempty"`
	Layers int     `json:"layers,omitempty"`
	Hidden int     `json:"hidden,omitempty"`
	// Dir is the run directory a point was read from (not serialised).
	Dir string `json:"-"`
}

// maxLine bounds one JSONL line of points.
const maxLine = 1 << 16

// readPoints parses a JSONL of points (blank lines and lines starting
// with # are skipped). Errors name the line.
func readPoints(r io.Reader, name string) ([]Point, error) {
	var pts []Point
	err := scanJSONL(r, name, maxLine, func(line int, dec *json.Decoder) error {
		var raw struct {
			FLOPs, Params, Tokens, Loss *float64
			Budget                      float64
			Size                        int
			Run                         string
			Layers, Hidden              int
		}
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s:%d: %v (want {\"flops\": …, \"params\": …, \"tokens\": …, \"loss\": …})", name, line, err)
		}
		var missing []string
		for _, f := range []struct {
			name string
			v    *float64
		}{{"flops", raw.FLOPs}, {"params", raw.Params}, {"tokens", raw.Tokens}, {"loss", raw.Loss}} {
			if f.v == nil {
				missing = append(missing, f.name)
			} else if !(*f.v > 0) || math.IsInf(*f.v, 0) {
				return fmt.Errorf("%s:%d: %s must be a positive finite number, got %v", name, line, f.name, *f.v)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s:%d: missing %s", name, line, strings.Join(missing, ", "))
		}
		if raw.Budget < 0 || math.IsInf(raw.Budget, 0) || math.IsNaN(raw.Budget) {
			return fmt.Errorf("%s:%d: budget must be a positive finite number, got %v", name, line, raw.Budget)
		}
		pts = append(pts, Point{FLOPs: *raw.FLOPs, Params: *raw.Params, Tokens: *raw.Tokens, Loss: *raw.Loss,
			Budget: raw.Budget, Size: raw.Size, Run: raw.Run, Layers: raw.Layers, Hidden: raw.Hidden})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pts, nil
}

// scanJSONL calls fn with a strict decoder (unknown fields refused) for
// each non-blank line of r that does not start with '#', and checks that
// the line holds one JSON value. Errors name the file and line.
func scanJSONL(r io.Reader, name string, limit int, fn func(line int, dec *json.Decoder) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), limit)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := fn(line, dec); err != nil {
			return err
		}
		if dec.More() {
			return fmt.Errorf("%s:%d: more than one JSON value on the line", name, line)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s: a line is longer than %d bytes; one object per line", name, limit)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// readPointFile reads a run's point.json.
func readPointFile(path string) (Point, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Point{}, err
	}
	pts, err := readPoints(strings.NewReader(strings.Join(strings.Fields(string(data)), " ")), path)
	if err != nil {
		return Point{}, err
	}
	if len(pts) != 1 {
		return Point{}, fmt.Errorf("%s: want one point, found %d", path, len(pts))
	}
	pts[0].Dir = filepath.Dir(path)
	return pts[0], nil
}

// ReadRuns returns the points of the finished runs in a sweep directory
// (its subdirectories holding point.json), sorted by budget then size.
func ReadRuns(dir string) ([]Point, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var pts []Point
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p, err := readPointFile(filepath.Join(dir, e.Name(), pointFile))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pts = append(pts, p)
	}
	sortPoints(pts)
	return pts, nil
}

// LoadPoints reads a sweep directory (ReadRuns) or a JSONL file of points.
func LoadPoints(path string) ([]Point, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var pts []Point
	if st.IsDir() {
		pts, err = ReadRuns(path)
	} else {
		f, err2 := os.Open(path)
		if err2 != nil {
			return nil, err2
		}
		defer f.Close()
		pts, err = readPoints(f, path)
	}
	if err != nil {
		return nil, err
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("%s: no points (a sweep directory needs finished runs with %s)", path, pointFile)
	}
	for i := range pts {
		if pts[i].Budget == 0 {
			pts[i].Budget = roundSig(pts[i].FLOPs, 3)
		}
	}
	sortPoints(pts)
	return pts, nil
}

func sortPoints(pts []Point) {
	slices.SortStableFunc(pts, func(a, b Point) int {
		if a.Budget != b.Budget {
			return cmpF(a.Budget, b.Budget)
		}
		return cmpF(a.Params, b.Params)
	})
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// roundSig rounds x to n significant digits.
func roundSig(x float64, n int) float64 {
	if x == 0 {
		return 0
	}
	e := math.Floor(math.Log10(math.Abs(x))) - float64(n-1)
	p := math.Pow(10, e)
	return math.Round(x/p) * p
}

// WritePointTable prints points as a text table.
func WritePointTable(w io.Writer, pts []Point) {
	fmt.Fprintf(w, "%-16s %10s %12s %12s %10s\n", "run", "budget", "params", "tokens", "loss")
	for _, p := range pts {
		fmt.Fprintf(w, "%-16s %10.3g %12.0f %12.0f %10.4f\n", cmpOr(p.Run, "-"), p.Budget, p.Params, p.Tokens, p.Loss)
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// SelectBudgets keeps the points of the listed budgets (comma-separated
// numbers, matched to 3 significant digits).
func SelectBudgets(pts []Point, list string) ([]Point, error) {
	want := map[float64]bool{}
	for _, f := range strings.Split(list, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0) {
			return nil, fmt.Errorf("-budgets: %q is not a positive number", strings.TrimSpace(f))
		}
		want[roundSig(v, 3)] = true
	}
	var out []Point
	found := map[float64]bool{}
	for _, p := range pts {
		if b := roundSig(p.Budget, 3); want[b] {
			out = append(out, p)
			found[b] = true
		}
	}
	for b := range want {
		if !found[b] {
			return nil, fmt.Errorf("-budgets: no finished runs of budget %g", b)
		}
	}
	return out, nil
}
