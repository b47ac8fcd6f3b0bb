package model

import (
	"math/rand/v2"
	"testing"
)

func TestSelectTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(50)
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = float32(rng.IntN(8)) // many ties
		}
		k := 1 + rng.IntN(n)
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i)
		}
		selectTopK(idx, logits, k)
		// Every kept index must rank at least as high as every dropped one.
		for _, a := range idx[:k] {
			for _, b := range idx[k:] {
				if logits[a] < logits[b] || (logits[a] == logits[b] && a > b) {
					t.Fatalf("n=%d k=%d: kept %d (%g) ranks below dropped %d (%g)", n, k, a, logits[a], b, logits[b])
				}
			}
		}
	}
}
