package model_test

import (
	"testing"

	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/modeltest"
)

// scaleRounder multiplies the input of projection only by factor (into
// its own buffer, leaving x alone) and counts the calls per projection.
type scaleRounder struct {
	only   model.Projection
	factor float32
	buf    []float32
	calls  map[[2]int]int
}

func (s *scaleRounder) RoundInput(layer int, p model.Projection, x []float32, rows, cols int) []float32 {
	if len(x) != rows*cols {
		panic("RoundInput: x is not rows×cols")
	}
	s.calls[[2]int{layer, int(p)}]++
	s.buf = append(s.buf[:0], x...)
	if p == s.only {
		for i := range s.buf {
			s.buf[i] *= s.factor
		}
	}
	return s.buf
}

// TestInputRounder: the rounder sees the input of every projection of
// every layer and of the head, once per forward pass, and what it returns
// is what is multiplied: a copy changes no logit, and doubling the head's
// input doubles every logit exactly, in the forward pass and in decoding.
func TestInputRounder(t *testing.T) {
	c := modeltest.TinyConfig(true, true)
	m := newTestModel(t, c, 3)
	ids := []int32{1, 5, 2, 7, 3}
	if _, err := m.Forward(&model.Batch{B: 1, T: len(ids), Tokens: ids}); err != nil {
		t.Fatal(err)
	}
	plain := append([]float32(nil), m.Logits()...)
	decode := func() []float32 {
		t.Helper()
		dec, err := m.NewDecoder(1, 8)
		if err != nil {
			t.Fatal(err)
		}
		lg, err := dec.Step([]int{0}, [][]int32{ids}, true)
		if err != nil {
			t.Fatal(err)
		}
		return lg
	}
	plainDec := decode()
	for _, tc := range []struct {
		name   string
		only   model.Projection
		factor float32
	}{{"copy", model.ProjQ, 1}, {"head×2", model.ProjHead, 2}, {"down×1", model.ProjDown, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &scaleRounder{only: tc.only, factor: tc.factor, calls: map[[2]int]int{}}
			m.InputRounder = r
			defer func() { m.InputRounder = nil }()
			if _, err := m.Forward(&model.Batch{B: 1, T: len(ids), Tokens: ids}); err != nil {
				t.Fatal(err)
			}
			want := 7*c.NumHiddenLayers + 1
			if len(r.calls) != want {
				t.Errorf("rounder saw %d projections, want %d: %v", len(r.calls), want, r.calls)
			}
			for k, n := range r.calls {
				if n != 1 {
					t.Errorf("projection %v rounded %d times in one forward pass", k, n)
				}
			}
			check := func(what string, got, plain []float32) {
				t.Helper()
				f := float32(1)
				if tc.only == model.ProjHead {
					f = tc.factor
				}
				for i, g := range got {
					if g != f*plain[i] {
						t.Fatalf("%s: logit %d is %g, want %g×%g", what, i, g, f, plain[i])
					}
				}
			}
			check("forward", m.Logits(), plain)
			check("decoder", decode(), plainDec)
		})
	}
}
