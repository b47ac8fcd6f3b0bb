package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/internal/atomicfile"
)

// MetricsFile is the name of the metrics log in the run directory.
const MetricsFile = "metrics.jsonl"

// Record is one line of metrics.jsonl: a training step, an evaluation, or
// any other kind a trainer writes. Its JSON form is one object: kind,
// step, stage, tokens, skipped (when true), then the values by name in
// sorted order, with non-finite numbers as the strings "NaN", "Infinity"
// and "-Infinity".
//
// Every herd tool writes this schema: the record type is always "kind",
// and a value's unit is part of its name (elapsed_s, tokens_per_s,
// gflop_per_s; losses are in nats per token; mfu, a fraction, and lr have
// no unit). Lines of older runs are read as well: an
// "event" key is taken as the kind and "gflops" as gflop_per_s.
type Record struct {
	Kind    string // "train", "eval", "final_eval", …
	Step    int    // global steps done
	Stage   string // the stage the step belongs to
	Tokens  int64  // training tokens seen after Step
	Skipped bool   // the step's update was skipped (non-finite loss or gradient)
	// Values are the record's numbers, e.g. loss, lr, grad_norm,
	// tokens_per_s, eval_loss.
	Values checkpoint.Metrics
}

// MarshalJSON writes the record on one line.
func (r Record) MarshalJSON() ([]byte, error) {
	b, _ := r.appendJSON(nil, nil)
	return b, nil
}

// appendJSON appends the record's JSON form to dst; keys is scratch space
// for sorting the value names (see checkpoint.Metrics.AppendJSON).
func (r *Record) appendJSON(dst []byte, keys []string) ([]byte, []string) {
	dst = append(dst, `{"kind":`...)
	dst = strconv.AppendQuote(dst, r.Kind)
	dst = append(dst, `,"step":`...)
	dst = strconv.AppendInt(dst, int64(r.Step), 10)
	dst = append(dst, `,"stage":`...)
	dst = strconv.AppendQuote(dst, r.Stage)
	dst = append(dst, `,"tokens":`...)
	dst = strconv.AppendInt(dst, r.Tokens, 10)
	if r.Skipped {
		dst = append(dst, `,"skipped":true`...)
	}
	if len(r.Values) == 0 {
		return append(dst, '}'), keys
	}
	n := len(dst)
	dst, keys = r.Values.AppendJSON(dst, keys)
	dst[n] = ',' // the values' '{' continues the object
	return dst, keys
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Record) UnmarshalJSON(data []byte) error {
	var head struct {
		Kind    string `json:"kind"`
		Stage   string `json:"stage"`
		Step    int    `json:"step"`
		Tokens  int64  `json:"tokens"`
		Skipped bool   `json:"skipped"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if ev, ok := raw["event"]; ok && head.Kind == "" {
		// metrics.jsonl of curation runs before the schema was unified.
		if err := json.Unmarshal(ev, &head.Kind); err != nil {
			return fmt.Errorf("event: %w", err)
		}
		delete(raw, "event")
	}
	for _, k := range []string{"kind", "stage", "step", "tokens", "skipped"} {
		delete(raw, k)
	}
	for _, k := range legacyKeys() {
		old, name := k[0], k[1]
		if v, ok := raw[old]; ok {
			if _, dup := raw[name]; !dup {
				raw[name] = v
			}
			delete(raw, old)
		}
	}
	rest, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	var m checkpoint.Metrics
	if err := m.UnmarshalJSON(rest); err != nil {
		return err
	}
	*r = Record{Kind: head.Kind, Stage: head.Stage, Step: head.Step, Tokens: head.Tokens, Skipped: head.Skipped, Values: m}
	return nil
}

// legacyKeys are value names of metrics.jsonl files written by older herd
// versions and today's names for them; readers rename them so old runs
// still plot, report and resume.
func legacyKeys() [][2]string { return [][2]string{{"gflops", "gflop_per_s"}} }

// ReadMetrics reads a metrics.jsonl file; errors name the line.
func ReadMetrics(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readMetrics(f, path)
}

// readMetrics reads metrics.jsonl lines from r (named path in errors).
func readMetrics(r io.Reader, path string) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// metricsLog appends records to metrics.jsonl.
type metricsLog struct {
	f    *os.File
	w    *bufio.Writer
	line []byte   // reused for each record
	keys []string // reused for sorting value names
}

// openMetrics opens path for appending. When resuming at step, lines of
// later steps (written after that checkpoint) are dropped first; when not
// resuming the file starts empty.
func openMetrics(path string, resume bool, step int) (*metricsLog, error) {
	if resume {
		// A kill can leave a torn last line (the buffer flushes mid-line);
		// it belongs to a step after the checkpoint, so it goes with them.
		data, err := os.ReadFile(path)
		var recs []Record
		if err == nil {
			recs, err = readMetrics(bytes.NewReader(data[:bytes.LastIndexByte(data, '\n')+1]), path)
		}
		if err == nil {
			var buf bytes.Buffer
			for _, r := range recs {
				if r.Step <= step {
					b, _ := r.MarshalJSON()
					buf.Write(b)
					buf.WriteByte('\n')
				}
			}
			if err := atomicfile.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				return nil, err
			}
		} else if !os.IsNotExist(err) {
			return nil, fmt.Errorf("resume: %w", err)
		}
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if !resume {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsLog{f: f, w: bufio.NewWriter(f)}, nil
}

func (l *metricsLog) write(r Record) error {
	l.line, l.keys = r.appendJSON(l.line[:0], l.keys)
	l.line = append(l.line, '\n')
	_, err := l.w.Write(l.line)
	return err
}

// sync flushes buffered lines to the file.
func (l *metricsLog) sync() error {
	if err := l.w.Flush(); err != nil {
		return err
	}
	return l.f.Sync()
}

func (l *metricsLog) close() error {
	err := l.sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
