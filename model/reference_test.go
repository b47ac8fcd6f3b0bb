package model_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/internal/testenv"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

const refDir = "../../shared/testdata/llama-ref"

type refLogits struct {
	Shape  []int       `json:"shape"`
	Logits [][]float32 `json:"logits"`
}

// loadRef loads a reference HF directory into a model on the given backend.
func loadRef(t testing.TB, name string, be kernels.Backend) (*model.Model, []int32, refLogits) {
	t.Helper()
	dir := filepath.Join(refDir, name)
	testenv.Testdata(t, dir)
	cfg, params, err := checkpoint.LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.NewWithParams(cfg, params, be)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	readJSON(t, filepath.Join(dir, "input_ids.json"), &ids)
	var want refLogits
	readJSON(t, filepath.Join(dir, "logits.json"), &want)
	return m, ids, want
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// compareLogits checks every logit within tol and the argmax of every row.
func compareLogits(t *testing.T, what string, got []float32, want refLogits, tol float64) {
	t.Helper()
	T, V := want.Shape[0], want.Shape[1]
	if len(got) != T*V {
		t.Fatalf("%s: %d logits, want %d×%d", what, len(got), T, V)
	}
	worst := 0.0
	for i := 0; i < T; i++ {
		row := got[i*V : (i+1)*V]
		bi, bw := 0, 0
		for j := range row {
			d := math.Abs(float64(row[j] - want.Logits[i][j]))
			worst = math.Max(worst, d)
			if d > tol {
				t.Fatalf("%s: position %d logit %d = %g, llama.cpp %g (|Δ| %.3g > %g)", what, i, j, row[j], want.Logits[i][j], d, tol)
			}
			if row[j] > row[bi] {
				bi = j
			}
			if want.Logits[i][j] > want.Logits[i][bw] {
				bw = j
			}
		}
		if bi != bw {
			t.Fatalf("%s: position %d argmax %d, llama.cpp %d", what, i, bi, bw)
		}
	}
	t.Logf("%s: max |Δlogit| = %.3g over %d×%d", what, worst, T, V)
}

// TestReferenceLogits compares the full forward pass and the KV-cache
// decoder with llama.cpp's logits for tiny-a (untied, plain RoPE) and
// tiny-b (tied, llama3 RoPE scaling).
func TestReferenceLogits(t *testing.T) {
	for _, name := range []string{"tiny-a", "tiny-b"} {
		cpu := kernels.NewCPU(2)
		defer cpu.Close()
		for _, be := range []kernels.Backend{kernels.NewSerial(), cpu} {
			t.Run(name+"/"+be.Name(), func(t *testing.T) {
				m, ids, want := loadRef(t, name, be)
				T, V := len(ids), m.Config.VocabSize
				if _, err := m.Forward(&model.Batch{B: 1, T: T, Tokens: ids}); err != nil {
					t.Fatal(err)
				}
				compareLogits(t, "full forward", m.Logits(), want, 1e-4)

				// One token at a time through the KV cache, beside two other
				// sequences of different lengths in the same batch.
				dec, err := m.NewDecoder(3, T)
				if err != nil {
					t.Fatal(err)
				}
				other := [][]int32{ids[T/2:], ids[:T/3]}
				got := make([]float32, 0, T*V)
				for pos := 0; pos < T; pos++ {
					slots := []int{0}
					toks := [][]int32{ids[pos : pos+1]}
					for s, o := range other {
						if pos < len(o) {
							slots = append(slots, s+1)
							toks = append(toks, o[pos:pos+1])
						}
					}
					logits, err := dec.Step(slots, toks, false)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, logits[:V]...)
				}
				compareLogits(t, "KV-cache decode", got, want, 1e-4)
			})
		}
	}
}
