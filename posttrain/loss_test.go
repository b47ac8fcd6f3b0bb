package posttrain

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model/modeltest"
)

// sig is the logistic function, for the hand-computed expectations.
func sig(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func TestBradleyTerry(t *testing.T) {
	s1, s2 := sig(-1), sig(-2) // −dloss/dx of a pair at margin 1 and 2
	cases := []struct {
		name          string
		r             []float32
		last          []int32
		per, examples int
		want          pairStats
		grad          []float64
	}{
		{
			name: "one pair", r: []float32{1, 0}, last: []int32{5, 3}, per: 2, examples: 1,
			want: pairStats{Loss: math.Log(1 + math.Exp(-1)), Accuracy: 1, Margin: 1, Chosen: 1, Rejected: 0, Pairs: 1},
			grad: []float64{-s1, s1},
		},
		{
			// margins −2 and 0 (a tie is not a correct ranking)
			name: "two examples", r: []float32{0, 2, 3, 3}, last: []int32{4, 4, 6, 2}, per: 2, examples: 2,
			want: pairStats{Loss: (math.Log(1+math.Exp(2)) + math.Ln2) / 2, Accuracy: 0, Margin: -1, Chosen: 1.5, Rejected: 2.5, Pairs: 2},
			grad: []float64{-sig(2) / 2, sig(2) / 2, -0.25, 0.25},
		},
		{
			// edited 2 > chosen 1 > rejected 0: pairs (c,r) x=1, (e,c) x=1,
			// (e,r) x=2; the chosen row wins one pair and loses one.
			name: "edited", r: []float32{1, 0, 2}, last: []int32{3, 3, 4}, per: 3, examples: 1,
			want: pairStats{Loss: (2*math.Log(1+math.Exp(-1)) + math.Log(1+math.Exp(-2))) / 3, Accuracy: 1, Margin: 4.0 / 3, Chosen: 1, Rejected: 0, Pairs: 3},
			grad: []float64{0, (s1 + s2) / 3, -(s1 + s2) / 3},
		},
		{
			// the edited row is absent: only chosen > rejected; its reward
			// (whatever the model wrote there) is ignored.
			name: "absent edited", r: []float32{0.5, 1.5, 9}, last: []int32{3, 3, -1}, per: 3, examples: 1,
			want: pairStats{Loss: math.Log(1 + math.Exp(1)), Accuracy: 0, Margin: -1, Chosen: 0.5, Rejected: 1.5, Pairs: 1},
			grad: []float64{-sig(1), sig(1), 0},
		},
		{
			// one example with an edited row, one without: 4 pairs.
			name: "mixed ranked", r: []float32{1, 0, 2, 3, 1, 0}, last: []int32{1, 1, 1, 2, 2, -1}, per: 3, examples: 2,
			want: pairStats{
				Loss:     (2*math.Log(1+math.Exp(-1)) + 2*math.Log(1+math.Exp(-2))) / 4,
				Accuracy: 1, Margin: 6.0 / 4, Chosen: 2, Rejected: 0.5, Pairs: 4,
			},
			grad: []float64{0, (s1 + s2) / 4, -(s1 + s2) / 4, -s2 / 4, s2 / 4, 0},
		},
		{
			// far apart rewards: no overflow, the loss is the margin.
			name: "large margin", r: []float32{-100, 100}, last: []int32{1, 1}, per: 2, examples: 1,
			want: pairStats{Loss: 200, Accuracy: 0, Margin: -200, Chosen: -100, Rejected: 100, Pairs: 1},
			grad: []float64{-1, 1},
		},
		{
			// rows after the examples (the last batch of a run) are ignored.
			name: "trailing empty rows", r: []float32{2, 1, 0, 0}, last: []int32{1, 1, -1, -1}, per: 2, examples: 1,
			want: pairStats{Loss: math.Log(1 + math.Exp(-1)), Accuracy: 1, Margin: 1, Chosen: 2, Rejected: 1, Pairs: 1},
			grad: []float64{-s1, s1, 0, 0},
		},
		{name: "empty batch", r: []float32{}, last: []int32{}, per: 2, examples: 0, grad: []float64{}},
		{name: "empty ranked batch", r: []float32{3, 4, 5}, last: []int32{-1, -1, -1}, per: 3, examples: 0, grad: []float64{0, 0, 0}},
	}
	near := func(a, b float64) bool { return modeltest.Close(a, b, 1e-6, 1e-7) }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			grad := make([]float32, len(tc.r))
			for i := range grad {
				grad[i] = 42 // stale values must be overwritten
			}
			got := bradleyTerry(tc.r, tc.last, tc.per, tc.examples, grad)
			if got.Pairs != tc.want.Pairs || !near(got.Loss, tc.want.Loss) || !near(got.Accuracy, tc.want.Accuracy) ||
				!near(got.Margin, tc.want.Margin) || !near(got.Chosen, tc.want.Chosen) || !near(got.Rejected, tc.want.Rejected) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			for i, g := range grad {
				if !near(float64(g), tc.grad[i]) {
					t.Errorf("grad[%d] = %.7g, want %.7g", i, g, tc.grad[i])
				}
			}
			// Without a gradient buffer the statistics are the same.
			if nog := bradleyTerry(tc.r, tc.last, tc.per, tc.examples, nil); nog != got {
				t.Errorf("without grad: %+v, with: %+v", nog, got)
			}
		})
	}
}

func TestDPOLoss(t *testing.T) {
	// One pair: logπ −3 (chosen, 2 tokens) and −5 (rejected), reference
	// −4 and −4: log-ratios +1 and −1, u = 2; chosen NLL 1.5 a token.
	lp, ref, cnt := []float64{-3, -5}, []float64{-4, -4}, []float64{2, 3}
	one := dpoStats{NLL: 1.5, LogpChosen: -3, LogpRejected: -5} // + the β-dependent fields
	with := func(beta, loss float64) dpoStats {
		s := one
		s.Loss, s.Chosen, s.Rejected, s.Margin, s.Accuracy = loss, beta, -beta, 2*beta, 1
		return s
	}
	cases := []struct {
		name          string
		kind          string
		beta, nllCoef float64
		logp, ref, n  []float64
		examples      int
		want          dpoStats
		dlogp         []float64
	}{
		{
			name: "sigmoid", kind: LossSigmoid, beta: 0.5, nllCoef: 0.2, logp: lp, ref: ref, n: cnt, examples: 1,
			// −log σ(1) + 0.2·1.5
			want:  with(0.5, math.Log(1+math.Exp(-1))+0.3),
			dlogp: []float64{-0.5*sig(-1) - 0.2/2, 0.5 * sig(-1)},
		},
		{
			name: "sigmoid at the reference", kind: LossSigmoid, beta: 0.1, nllCoef: 0.2, logp: lp, ref: lp, n: cnt, examples: 1,
			want:  dpoStats{Loss: math.Ln2 + 0.2*1.5, NLL: 1.5, LogpChosen: -3, LogpRejected: -5},
			dlogp: []float64{-0.05 - 0.1, 0.05},
		},
		{
			name: "ipo", kind: LossIPO, beta: 0.5, nllCoef: 0.2, logp: lp, ref: ref, n: cnt, examples: 1,
			// (2 − 1/(2·0.5))² = 1; dL/du = 2·(2 − 1) = 2
			want:  with(0.5, 1+0.3),
			dlogp: []float64{2 - 0.1, -2},
		},
		{
			name: "hinge", kind: LossHinge, beta: 0.1, nllCoef: 0.2, logp: lp, ref: ref, n: cnt, examples: 1,
			// max(0, 1 − 0.2) = 0.8; dL/du = −0.1
			want:  with(0.1, 0.8+0.3),
			dlogp: []float64{-0.1 - 0.1, 0.1},
		},
		{
			name: "hinge zero region", kind: LossHinge, beta: 2, nllCoef: 0.2, logp: lp, ref: ref, n: cnt, examples: 1,
			// 1 − 2·2 < 0: only the NLL term is left
			want:  with(2, 0.3),
			dlogp: []float64{-0.1, 0},
		},
		{
			name: "hinge at the kink", kind: LossHinge, beta: 0.5, nllCoef: 0, logp: lp, ref: ref, n: cnt, examples: 1,
			want:  with(0.5, 0),
			dlogp: []float64{0, 0},
		},
		{
			// Two pairs: the first as above (u = 2), the second u = −4 with
			// a chosen response of no scored tokens (no NLL term).
			name: "two examples", kind: LossSigmoid, beta: 0.5, nllCoef: 0.2,
			logp: []float64{-3, -5, -6, -2}, ref: []float64{-4, -4, -4, -4}, n: []float64{2, 3, 0, 1}, examples: 2,
			want: dpoStats{
				Loss: (math.Log(1+math.Exp(-1))+math.Log(1+math.Exp(2)))/2 + 0.2*(1.5+0)/2,
				NLL:  0.75, Accuracy: 0.5, Margin: (1.0 - 2) / 2, Chosen: (0.5 - 1) / 2, Rejected: (-0.5 + 1) / 2,
				LogpChosen: -4.5, LogpRejected: -3.5,
			},
			dlogp: []float64{(-0.5*sig(-1) - 0.1) / 2, 0.5 * sig(-1) / 2, -0.5 * sig(2) / 2, 0.5 * sig(2) / 2},
		},
		{
			name: "empty batch", kind: LossSigmoid, beta: 0.1, nllCoef: 0.2,
			logp: []float64{-1, -2}, ref: []float64{0, 0}, n: []float64{1, 1}, examples: 0,
			dlogp: []float64{0, 0},
		},
	}
	near := func(a, b float64) bool { return modeltest.Close(a, b, 1e-12, 1e-12) }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dlogp := make([]float64, len(tc.logp))
			for i := range dlogp {
				dlogp[i] = 42 // stale values must be overwritten
			}
			got, err := dpoLoss(tc.kind, tc.beta, tc.nllCoef, tc.logp, tc.ref, tc.n, tc.examples, dlogp)
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if !near(got.Loss, w.Loss) || !near(got.NLL, w.NLL) || !near(got.Accuracy, w.Accuracy) || !near(got.Margin, w.Margin) ||
				!near(got.Chosen, w.Chosen) || !near(got.Rejected, w.Rejected) || !near(got.LogpChosen, w.LogpChosen) || !near(got.LogpRejected, w.LogpRejected) {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			for i, d := range dlogp {
				if !near(d, tc.dlogp[i]) {
					t.Errorf("dlogp[%d] = %.15g, want %.15g", i, d, tc.dlogp[i])
				}
			}
		})
	}
	if _, err := dpoLoss("kto", 0.1, 0, lp, ref, cnt, 1, nil); err == nil {
		t.Error("an unknown loss kind is accepted")
	}
}

// TestDPOStepOneLoss runs DPO for two steps on task preference rows. At
// step 1 the policy is the reference (its log-probabilities were stored
// by the same model), so the logged rewards are 0 and the loss is exactly
// ln 2 + 0.2 × nll; nll, the chosen responses' token-mean NLL averaged
// over the examples, is recomputed here in float64 from the starting
// model with the same batch.
func TestDPOStepOneLoss(t *testing.T) {
	start := time.Now()
	tok := testTokenizer(t)
	c := tinyLM()
	dir := traintest.SaveModel(t, c, initParams(c, 21), tok)
	data := writeLines(t, taskRows(t, true, 16, 5))
	r := testRecipe(t, KindDPO, dir, 2, 4, data)
	res, err := Run(context.Background(), r, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 2 || res.Final == "" {
		t.Fatalf("result %+v", res)
	}
	recs := trainRecords(t, r.Out)
	if len(recs) != 2 || recs[0].Step != 1 {
		t.Fatalf("%d training records (first step %d), want steps 1 and 2", len(recs), recs[0].Step)
	}
	first := recs[0]
	loss, nll := value(t, first, "loss"), value(t, first, "nll")
	if want := math.Ln2 + 0.2*nll; math.Abs(loss-want) > 1e-6 {
		t.Errorf("step 1: loss %.9g, want ln 2 + 0.2 × nll %.9g = %.9g", loss, nll, want)
	}
	for _, k := range []string{"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} {
		if v := value(t, first, k); math.Abs(v) > 1e-9 {
			t.Errorf("step 1: %s = %g, want 0 (the policy is the reference)", k, v)
		}
	}

	// The first batch again, scored in float64 by the starting model.
	cfg, params, err := checkpoint.LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := chatdata.NewPrefLoader(chatdata.PrefOptions{Options: chatdata.Options{
		Paths: r.Data.Paths, Tokenizer: tok, Encode: chatdata.EncodeOptions{SeqLen: r.Train.SeqLen},
		Shuffle: r.Data.Shuffle, Seed: r.Seed,
	}, Examples: r.Train.Batch, PadID: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pb, err := l.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	py := traintest.SpecialID(t, tok, tokenizer.PythonTag)
	logits, _ := modeltest.Forward(cfg, modeltest.Weights(params), &pb.Batch)
	var want float64
	for k := range pb.Examples {
		row := 2 * k * pb.T // the chosen row
		var sum, n float64
		for i := row; i < row+pb.T; i++ {
			if wt := float64(pb.Weights[i]); wt != 0 && pb.Targets[i] >= 0 && pb.Targets[i] != py {
				sum += wt * -modeltest.LogSoftmax(logits[i])[pb.Targets[i]]
				n += wt
			}
		}
		if n == 0 {
			t.Fatalf("example %d: no scored chosen token", k)
		}
		want += sum / n / float64(pb.Examples)
	}
	if !modeltest.Close(nll, want, 1e-5, 0) {
		t.Errorf("step 1: nll %.9g, float64 recomputation %.9g", nll, want)
	}
	t.Logf("step 1: loss %.9g = ln 2 + 0.2 × %.9g (float64 nll %.9g); step 2 loss %.6g; %v", loss, nll, want, value(t, recs[1], "loss"), time.Since(start))
}

// TestDPOSeparable trains DPO on a separable toy preference set — whatever
// the prompt, the chosen response is "yes" and the rejected one "no" —
// and expects rewards/accuracies above 0.9 within a few steps.
func TestDPOSeparable(t *testing.T) {
	start := time.Now()
	tok := testTokenizer(t)
	var lines []string
	for _, row := range taskRows(t, true, 64, 9) {
		var pr struct{ Prompt string }
		if err := json.Unmarshal([]byte(row), &pr); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]string{"prompt": pr.Prompt, "chosen": "yes", "rejected": "no"})
		lines = append(lines, string(b))
	}
	c := tinyLM()
	c.InitializerRange = 0.02
	dir := traintest.SaveModel(t, c, initParams(c, 4), tok)
	const steps = 8
	r := testRecipe(t, KindDPO, dir, steps, 8, writeLines(t, lines))
	r.Optim.LR, r.Optim.Schedule = 1e-2, "constant"
	if _, err := Run(context.Background(), r, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	recs := trainRecords(t, r.Out)
	if len(recs) != steps {
		t.Fatalf("%d training records, want %d", len(recs), steps)
	}
	var acc []float64
	for _, rec := range recs {
		acc = append(acc, value(t, rec, "rewards/accuracies"))
	}
	if acc[0] != 0 {
		t.Errorf("step 1: rewards/accuracies %g, want 0 (the policy is the reference)", acc[0])
	}
	if last := acc[len(acc)-1]; !(last > 0.9) {
		t.Errorf("rewards/accuracies by step %v: the last is %g, want > 0.9", acc, last)
	}
	first, lastLoss := value(t, recs[0], "loss"), value(t, recs[len(recs)-1], "loss")
	t.Logf("rewards/accuracies by step %v; loss %.4g → %.4g; margins %.4g; %v", acc, first, lastLoss, value(t, recs[len(recs)-1], "rewards/margins"), time.Since(start))
}
