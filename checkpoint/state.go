package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/herdml/herd/checkpoint/safetensors"
	"github.com/herdml/herd/model"
)

// File names of the training state kept beside the model.
const (
	TrainerStateFile = "trainer_state.json"
	OptimizerFile    = "optimizer.safetensors"
)

// trainerStateFormat identifies trainer_state.json documents.
const trainerStateFormat = "herd-trainer-state/1"

// Optimizer moment tensors are named with these prefixes in
// optimizer.safetensors (PyTorch's AdamW state names).
const (
	firstMomentPrefix  = "exp_avg."
	secondMomentPrefix = "exp_avg_sq."
)

// OptimizerState is AdamW's state: its update count and its first and
// second moments, laid out like the parameters.
type OptimizerState struct {
	Name string // e.g. "adamw"
	Step int    // updates applied so far (drives bias correction)
	M, V *model.Params
}

// TrainingState is everything besides the weights that an exact resume
// needs. The opaque fields are stored as given and returned unchanged.
type TrainingState struct {
	// Step is the number of training steps completed.
	Step int
	// Optimizer is nil when there is no optimizer state to keep.
	Optimizer *OptimizerState
	// RNG is the caller's serialized generator state (e.g. a
	// math/rand/v2 PCG's MarshalBinary).
	RNG []byte
	// DataPosition is the data loader's position, as JSON. It is stored
	// indented and loaded compacted, so compact JSON round-trips byte for
	// byte (and any JSON round-trips in meaning).
	DataPosition json.RawMessage
	// Recipe is the resolved recipe/configuration, as JSON (stored like
	// DataPosition).
	Recipe json.RawMessage
	// Metrics are free-form numbers (loss, tokens seen, …); NaN and ±Inf
	// are kept.
	Metrics Metrics
}

// Metrics is a map of named numbers whose JSON form also carries NaN and
// infinities (as the strings "NaN", "Infinity", "-Infinity"). Finite
// values round-trip bit-exactly.
type Metrics map[string]float64

// MarshalJSON implements json.Marshaler.
func (m Metrics) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	b, _ := m.AppendJSON(nil, nil)
	return b, nil
}

// AppendJSON appends m's JSON object, names in sorted order, to dst.
// keys is scratch space for the sorted names, returned for reuse, so a
// caller that keeps both buffers appends without allocating.
func (m Metrics) AppendJSON(dst []byte, keys []string) ([]byte, []string) {
	keys = keys[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		switch v := m[k]; {
		case math.IsNaN(v):
			dst = append(dst, `"NaN"`...)
		case math.IsInf(v, 1):
			dst = append(dst, `"Infinity"`...)
		case math.IsInf(v, -1):
			dst = append(dst, `"-Infinity"`...)
		default:
			dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
		}
	}
	return append(dst, '}'), keys
}

// appendJSONString appends s as encoding/json writes it.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *Metrics) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw == nil {
		*m = nil
		return nil
	}
	out := make(Metrics, len(raw))
	for k, r := range raw {
		var s string
		if json.Unmarshal(r, &s) == nil {
			switch s {
			case "NaN":
				out[k] = math.NaN()
			case "Infinity":
				out[k] = math.Inf(1)
			case "-Infinity":
				out[k] = math.Inf(-1)
			default:
				return fmt.Errorf("metric %q: %q is not a number", k, s)
			}
			continue
		}
		var v float64
		if err := json.Unmarshal(r, &v); err != nil {
			return fmt.Errorf("metric %q: %w", k, err)
		}
		out[k] = v
	}
	*m = out
	return nil
}

// trainerStateJSON is the trainer_state.json document.
type trainerStateJSON struct {
	Format       string          `json:"format"`
	Step         int             `json:"step"`
	Optimizer    *optimizerJSON  `json:"optimizer,omitempty"`
	RNG          []byte          `json:"rng,omitempty"`
	DataPosition json.RawMessage `json:"data_position,omitempty"`
	Recipe       json.RawMessage `json:"recipe,omitempty"`
	Metrics      Metrics         `json:"metrics,omitempty"`
}

type optimizerJSON struct {
	Name string `json:"name"`
	Step int    `json:"step"`
	File string `json:"file"`
}

func writeTrainingState(s sink, st *TrainingState) error {
	if st == nil {
		return errors.New("training state is nil")
	}
	if st.Step < 0 {
		return fmt.Errorf("step must not be negative, got %d", st.Step)
	}
	for _, r := range []struct {
		name string
		v    json.RawMessage
	}{{"data position", st.DataPosition}, {"recipe", st.Recipe}} {
		if len(r.v) > 0 && !json.Valid(r.v) {
			return fmt.Errorf("%s is not valid JSON", r.name)
		}
	}
	doc := trainerStateJSON{Format: trainerStateFormat, Step: st.Step, RNG: st.RNG, DataPosition: st.DataPosition, Recipe: st.Recipe, Metrics: st.Metrics}
	if o := st.Optimizer; o != nil {
		if err := checkMoments(o); err != nil {
			return err
		}
		doc.Optimizer = &optimizerJSON{Name: o.Name, Step: o.Step, File: OptimizerFile}
		if err := s.write(OptimizerFile, func(w io.Writer) error { return writeMoments(w, o) }); err != nil {
			return err
		}
	}
	return s.write(TrainerStateFile, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	})
}

func checkMoments(o *OptimizerState) error {
	if o.M == nil || o.V == nil || o.M.Layout == nil || o.V.Layout == nil {
		return errors.New("optimizer state needs both moments")
	}
	if o.Step < 0 {
		return fmt.Errorf("optimizer step must not be negative, got %d", o.Step)
	}
	lm, lv := o.M.Layout, o.V.Layout
	if len(lm.Tensors) != len(lv.Tensors) || len(o.M.Data) != lm.Total || len(o.V.Data) != lv.Total || lm.Total != lv.Total {
		return errors.New("optimizer moments have different layouts")
	}
	for i := range lm.Tensors {
		if lm.Tensors[i].Name != lv.Tensors[i].Name || !slices.Equal(lm.Tensors[i].Shape, lv.Tensors[i].Shape) {
			return fmt.Errorf("optimizer moments differ at tensor %s", lm.Tensors[i].Name)
		}
	}
	return nil
}

// writeMoments stores both moments in one F32 safetensors file.
func writeMoments(w io.Writer, o *OptimizerState) error {
	l := o.M.Layout
	specs := make([]safetensors.TensorSpec, 0, 2*len(l.Tensors))
	for _, t := range l.Tensors {
		specs = append(specs,
			safetensors.TensorSpec{Name: firstMomentPrefix + t.Name, DType: safetensors.F32, Shape: t.Shape},
			safetensors.TensorSpec{Name: secondMomentPrefix + t.Name, DType: safetensors.F32, Shape: t.Shape})
	}
	meta := map[string]string{"format": "pt", "optimizer": o.Name, "step": strconv.Itoa(o.Step)}
	sw, err := safetensors.NewWriter(w, specs, meta)
	if err != nil {
		return err
	}
	for _, t := range sw.Order() {
		var src []float32
		if name, ok := strings.CutPrefix(t.Name, secondMomentPrefix); ok {
			src = o.V.Get(name)
		} else {
			src = o.M.Get(strings.TrimPrefix(t.Name, firstMomentPrefix))
		}
		if err := sw.WriteFloat32(t.Name, src); err != nil {
			return err
		}
	}
	return sw.Close()
}

// loadTrainingState reads the training state in dir. With optimizer state,
// its moments are allocated with the given layout (the parameters') and
// every tensor must be present with its shape.
func loadTrainingState(dir string, layout *model.Layout) (*TrainingState, error) {
	path := filepath.Join(dir, TrainerStateFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load training state: %w", err)
	}
	doc, err := parseTrainerState(data, path)
	if err != nil {
		return nil, err
	}
	st := &TrainingState{Step: doc.Step, RNG: doc.RNG, DataPosition: compact(doc.DataPosition), Recipe: compact(doc.Recipe), Metrics: doc.Metrics}
	if o := doc.Optimizer; o != nil {
		if layout == nil {
			return nil, fmt.Errorf("%s: optimizer state needs the parameter layout", path)
		}
		opt := &OptimizerState{Name: o.Name, Step: o.Step, M: model.NewParams(layout), V: model.NewParams(layout)}
		if err := readMoments(filepath.Join(dir, o.File), opt); err != nil {
			return nil, err
		}
		st.Optimizer = opt
	}
	return st, nil
}

// parseTrainerState decodes and validates trainer_state.json (read from
// path).
func parseTrainerState(data []byte, path string) (*trainerStateJSON, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc trainerStateJSON
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: data after the JSON document", path)
	}
	if doc.Format != trainerStateFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", path, doc.Format, trainerStateFormat)
	}
	if doc.Step < 0 {
		return nil, fmt.Errorf("%s: negative step %d", path, doc.Step)
	}
	if o := doc.Optimizer; o != nil {
		if !validFileName(o.File) {
			return nil, fmt.Errorf("%s: optimizer file %q is not a file name in the checkpoint", path, o.File)
		}
		if o.Step < 0 {
			return nil, fmt.Errorf("%s: negative optimizer step %d", path, o.Step)
		}
	}
	return &doc, nil
}

// compact undoes the indentation trainer_state.json adds to opaque JSON.
func compact(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

func readMoments(path string, o *OptimizerState) error {
	sf, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	defer sf.Close()
	var problems []string
	want := map[string]bool{}
	for _, t := range o.M.Layout.Tensors {
		for _, m := range []struct {
			prefix string
			p      *model.Params
		}{{firstMomentPrefix, o.M}, {secondMomentPrefix, o.V}} {
			name := m.prefix + t.Name
			want[name] = true
			ti, ok := sf.Lookup(name)
			switch {
			case !ok:
				problems = append(problems, "missing tensor "+name)
			case !slices.Equal(ti.Shape, t.Shape):
				problems = append(problems, fmt.Sprintf("tensor %s has shape %v, the parameters have %v", name, ti.Shape, t.Shape))
			default:
				if err := sf.ReadFloat32(name, m.p.Get(t.Name)); err != nil {
					problems = append(problems, err.Error())
				}
			}
		}
	}
	for _, t := range sf.Tensors {
		if !want[t.Name] {
			problems = append(problems, "unexpected tensor "+t.Name)
		}
	}
	return report("optimizer state "+path+" does not match the model", problems)
}
