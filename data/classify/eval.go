package classify

import (
	"fmt"
	"math"
	"slices"
)

// ClassMetrics are one label's figures on an evaluation set.
type ClassMetrics struct {
	Label     string
	Support   int     // examples with this true label
	Predicted int     // examples predicted as this label
	Precision float64 // NaN when nothing was predicted as this label
	Recall    float64 // NaN when Support is 0
	F1        float64
}

// Eval is the result of Evaluate.
type Eval struct {
	N        int
	Accuracy float64
	LogLoss  float64 // mean cross-entropy of the true label
	Classes  []ClassMetrics
	// AUC is the ROC AUC of the probability of the positive label
	// (binary evaluation only; NaN otherwise).
	AUC      float64
	Positive string
}

// Evaluate scores examples. positive names the positive label for ROC AUC
// ("" = no AUC). Examples whose label the model does not know are an error.
func (m *Model) Evaluate(examples []Example, positive string) (Eval, error) {
	ev := Eval{N: len(examples), AUC: math.NaN(), Positive: positive}
	pos := -1
	if positive != "" {
		var ok bool
		if pos, ok = m.index[positive]; !ok {
			return ev, fmt.Errorf("classify: Evaluate: positive label %q is not one of %q", positive, m.labels)
		}
	}
	k := len(m.labels)
	support := make([]int, k)
	predicted := make([]int, k)
	correctBy := make([]int, k)
	var scores []float64
	var isPos []bool
	correct := 0
	for i, e := range examples {
		y, ok := m.index[e.Label]
		if !ok {
			return ev, fmt.Errorf("classify: Evaluate: example %d has label %q, not one of %q", i, e.Label, m.labels)
		}
		p := m.Probs(e.Text)
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		support[y]++
		predicted[best]++
		if best == y {
			correct++
			correctBy[y]++
		}
		ev.LogLoss -= math.Log(max(p[y], 1e-300))
		if pos >= 0 {
			scores = append(scores, p[pos])
			isPos = append(isPos, y == pos)
		}
	}
	if ev.N > 0 {
		ev.Accuracy = float64(correct) / float64(ev.N)
		ev.LogLoss /= float64(ev.N)
	}
	for c, l := range m.labels {
		cm := ClassMetrics{Label: l, Support: support[c], Predicted: predicted[c],
			Precision: ratio(correctBy[c], predicted[c]), Recall: ratio(correctBy[c], support[c])}
		cm.F1 = 2 * cm.Precision * cm.Recall / (cm.Precision + cm.Recall)
		ev.Classes = append(ev.Classes, cm)
	}
	if pos >= 0 {
		ev.AUC = auc(scores, isPos)
	}
	return ev, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// auc is the exact area under the ROC curve of scores for the examples
// marked positive (NaN scores give NaN): the probability that a random positive scores above a
// random negative, ties counting one half (the Mann–Whitney statistic,
// from average ranks). NaN when either class is empty or lengths differ.
func auc(scores []float64, positives []bool) float64 {
	if len(scores) != len(positives) {
		return math.NaN()
	}
	for _, s := range scores {
		if math.IsNaN(s) {
			return math.NaN()
		}
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	var np, nn, rankSum float64
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j averaged
		for _, t := range idx[i:j] {
			if positives[t] {
				np++
				rankSum += avg
			} else {
				nn++
			}
		}
		i = j
	}
	if np == 0 || nn == 0 {
		return math.NaN()
	}
	return (rankSum - np*(np+1)/2) / (np * nn)
}
