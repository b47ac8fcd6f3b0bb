package checkpoint

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"testing"
)

// memSink collects written files in memory.
type memSink map[string][]byte

func (m memSink) write(name string, fn func(w io.Writer) error) error {
	var b bytes.Buffer
	if err := fn(&b); err != nil {
		return err
	}
	m[name] = b.Bytes()
	return nil
}

// FuzzTrainerState parses arbitrary trainer_state.json documents; one
// that parses must survive a write and re-parse unchanged.
func FuzzTrainerState(f *testing.F) {
	for _, seed := range []string{
		`{"format":"herd-trainer-state/1","step":3,"rng":"AAEC","data_position":{"a":[1,2]},"recipe":{"lr":1e-3},"metrics":{"loss":2.5,"x":"NaN","y":"-Infinity"}}`,
		`{"format":"herd-trainer-state/1","step":0,"optimizer":{"name":"adamw","step":9,"file":"optimizer.safetensors"}}`,
		`{"format":"herd-trainer-state/1","step":1,"metrics":{"a":"high"}}`,
		`{"format":"herd-trainer-state/1","step":-4}`,
		`{"format":"herd-trainer-state/1","step":1,"optimizer":{"file":"../../etc/passwd"}}`,
		`{"format":"herd-trainer-state/1","step":1e400}`,
		`{"format":"herd-trainer-state/1","step":1} {}`,
		`{"step":`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := parseTrainerState(data, "trainer_state.json")
		if err != nil {
			return
		}
		if doc.Step < 0 || doc.Optimizer != nil && (doc.Optimizer.Step < 0 || !validFileName(doc.Optimizer.File)) {
			t.Fatalf("accepted invalid document %+v", doc)
		}
		st := &TrainingState{Step: doc.Step, RNG: doc.RNG, DataPosition: compact(doc.DataPosition), Recipe: compact(doc.Recipe), Metrics: doc.Metrics}
		out := memSink{}
		if err := writeTrainingState(out, st); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		again, err := parseTrainerState(out[TrainerStateFile], "rewritten")
		if err != nil {
			t.Fatalf("rewritten state does not parse: %v\n%s", err, out[TrainerStateFile])
		}
		if again.Step != st.Step || !bytes.Equal(again.RNG, st.RNG) || !bytes.Equal(compact(again.DataPosition), st.DataPosition) || !bytes.Equal(compact(again.Recipe), st.Recipe) || len(again.Metrics) != len(st.Metrics) {
			t.Fatalf("state changed in rewrite: %+v vs %+v", again, st)
		}
		for k, v := range st.Metrics {
			w := again.Metrics[k]
			if math.Float64bits(v) != math.Float64bits(w) && !(math.IsNaN(v) && math.IsNaN(w)) {
				t.Fatalf("metric %q: %v became %v", k, v, w)
			}
		}
	})
}

// FuzzWeightsIndex parses arbitrary model.safetensors.index.json
// documents; accepted ones name only plain files and list each tensor once.
func FuzzWeightsIndex(f *testing.F) {
	for _, seed := range []string{
		`{"metadata":{"total_size":12},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`,
		`{"weight_map":{"a":"../x"}}`,
		`{"weight_map":{"a":"/abs"}}`,
		`{"weight_map":{}}`,
		`{"weight_map":{"a":1}}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := parseWeightsIndex(data, "index.json")
		if err != nil {
			return
		}
		var raw struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatalf("parser accepted what encoding/json rejects: %v", err)
		}
		seen := map[string]bool{}
		for file, names := range files {
			if !validFileName(file) {
				t.Fatalf("accepted file name %q", file)
			}
			for _, n := range names {
				if seen[n] || raw.WeightMap[n] != file {
					t.Fatalf("tensor %q listed wrongly", n)
				}
				seen[n] = true
			}
		}
		if len(seen) != len(raw.WeightMap) {
			t.Fatalf("%d tensors listed, index has %d", len(seen), len(raw.WeightMap))
		}
	})
}
