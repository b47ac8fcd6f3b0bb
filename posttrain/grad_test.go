package posttrain

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/model/modeltest"
)

// TestSFTLossGradient checks the SFT trainer's loss (model.ForwardBackward
// of a chatdata batch: 0/1 weights on the assistant's tokens, or on every
// token, and packed documents) and its gradient against the weighted mean
// next-token NLL computed in float64 from modeltest.Forward: the loss
// value, and directional central differences of every tensor.
func TestSFTLossGradient(t *testing.T) {
	tok := testTokenizer(t)
	data := writeLines(t, taskRows(t, false, 8, 3))
	cases := []struct {
		name       string
		pack, all  bool
		seqLen     int
		wantPacked bool // some row holds two or more examples
	}{
		{"packed-assistant", true, false, 140, true},
		{"padded-all-tokens", false, true, 80, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := chatdata.NewSFTLoader(chatdata.SFTOptions{Options: chatdata.Options{
				Paths: []string{data}, Tokenizer: tok, Shuffle: 1, Epochs: 1, Strict: true,
				Encode: chatdata.EncodeOptions{SeqLen: tc.seqLen, AllTokens: tc.all},
			}, Rows: 2, Pack: tc.pack, PadID: -1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			next, err := l.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			b := cloneBatch(next)
			// The batch has what the check is about: 0/1 weights with both
			// values present, and (packed) several documents in a row.
			var zeros, ones int
			for _, w := range b.Weights {
				switch w {
				case 0:
					zeros++
				case 1:
					ones++
				default:
					t.Fatalf("weight %v, want 0 or 1", w)
				}
			}
			if zeros == 0 || ones == 0 {
				t.Fatalf("%d zero and %d unit weights: the mask is trivial", zeros, ones)
			}
			packed := false
			for r := 0; b.DocIDs != nil && r < b.B; r++ {
				docs := map[int32]bool{}
				for i := r * b.T; i < (r+1)*b.T; i++ {
					if b.Weights[i] != 0 {
						docs[b.DocIDs[i]] = true
					}
				}
				packed = packed || len(docs) >= 2
			}
			if packed != tc.wantPacked {
				t.Fatalf("a row holds several examples: %v, want %v", packed, tc.wantPacked)
			}

			c := tinyLM()
			m, err := model.NewWithParams(c, initParams(c, 7), kernels.NewSerial())
			if err != nil {
				t.Fatal(err)
			}
			m.EnsureGrads()
			m.Grads.Zero()
			got, err := m.ForwardBackward(b)
			if err != nil {
				t.Fatal(err)
			}
			w := modeltest.Weights(m.Params)
			loss := func() float64 {
				logits, _ := modeltest.Forward(c, w, b)
				var num, den float64
				for k, lg := range logits {
					if wt := float64(b.Weights[k]); wt != 0 && b.Targets[k] >= 0 {
						num += wt * -modeltest.LogSoftmax(lg)[b.Targets[k]]
						den += wt
					}
				}
				return num / den
			}
			want := loss()
			if !modeltest.Close(got, want, 1e-5, 0) {
				t.Fatalf("loss %.9g, float64 %.9g", got, want)
			}
			worst := gradCheck(t, m, w, rand.New(rand.NewPCG(1, 2)), loss)
			t.Logf("loss %.6g (float64 %.6g); worst relative gradient error %.3g", got, want, worst)
		})
	}
}

// TestBradleyTerryGradient checks the reward model's loss path
// (ForwardHidden, Scores at the last non-padding token, bradleyTerry,
// ScoresBackward) against a float64 recomputation: each reward the final
// hidden state at the row's last index times score.weight, the loss the
// mean −log σ(r_w − r_l) over the ordered pairs (chosen > rejected, and
// with an edited response edited > chosen and edited > rejected). Rows are
// right-padded to different lengths; an absent edited row is all padding
// with last −1.
func TestBradleyTerryGradient(t *testing.T) {
	const pad = 1
	cases := []struct {
		name string
		per  int
		lens [][]int // per example, per row: tokens (0: absent)
	}{
		{"chosen-rejected", 2, [][]int{{7, 5}, {9, 4}}},
		{"edited-and-absent-edited", 3, [][]int{{6, 8, 5}, {7, 4, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(tc.per)))
			lm := modeltest.TinyConfig(false, true)
			c, p := withRewardHead(lm, initParams(lm, 11), pad, 3)
			m, err := model.NewWithParams(c, p, kernels.NewSerial())
			if err != nil {
				t.Fatal(err)
			}
			K := len(tc.lens)
			T := 0
			for _, ex := range tc.lens {
				for _, n := range ex {
					T = max(T, n)
				}
			}
			b := &model.Batch{B: K * tc.per, T: T, Tokens: make([]int32, K*tc.per*T)}
			last := make([]int32, b.B)
			for k, ex := range tc.lens {
				for j, n := range ex {
					r := k*tc.per + j
					for i := range T {
						b.Tokens[r*T+i] = pad
						if i < n {
							b.Tokens[r*T+i] = int32(2 + rng.IntN(c.VocabSize-2))
						}
					}
					last[r] = int32(n - 1)
				}
			}

			m.EnsureGrads()
			m.Grads.Zero()
			if err := m.ForwardHidden(b); err != nil {
				t.Fatal(err)
			}
			sc, err := m.Scores(last)
			if err != nil {
				t.Fatal(err)
			}
			r := append([]float32(nil), sc...)
			grad := make([]float32, len(r))
			st := bradleyTerry(r, last, tc.per, K, grad)
			if err := m.ScoresBackward(last, grad); err != nil {
				t.Fatal(err)
			}

			w := modeltest.Weights(m.Params)
			rewards := func() []float64 {
				_, hidden := modeltest.Forward(c, w, b)
				sw := w[model.ScoreWeight]
				out := make([]float64, b.B)
				for row := range out {
					if last[row] < 0 {
						continue
					}
					for j, h := range hidden[row*T+int(last[row])] {
						out[row] += h * sw[j]
					}
				}
				return out
			}
			pairs := 0
			loss := func() float64 {
				rw := rewards()
				var sum float64
				pairs = 0
				add := func(win, lose int) {
					sum += logSigmoidNeg(rw[win] - rw[lose])
					pairs++
				}
				for k, ex := range tc.lens {
					ch, rj, ed := k*tc.per, k*tc.per+1, k*tc.per+2
					add(ch, rj)
					if tc.per == 3 && ex[2] > 0 {
						add(ed, ch)
						add(ed, rj)
					}
				}
				return sum / float64(pairs)
			}
			for row, want := range rewards() {
				if !modeltest.Close(float64(r[row]), want, 1e-4, 1e-5) {
					t.Errorf("row %d: reward %.7g, float64 %.7g", row, r[row], want)
				}
			}
			want := loss()
			if st.Pairs != pairs {
				t.Fatalf("%d pairs, want %d", st.Pairs, pairs)
			}
			if !modeltest.Close(st.Loss, want, 1e-5, 1e-7) {
				t.Fatalf("loss %.9g, float64 %.9g", st.Loss, want)
			}
			worst := gradCheck(t, m, w, rand.New(rand.NewPCG(3, 4)), loss, model.ScoreWeight)
			t.Logf("loss %.6g over %d pairs; worst relative gradient error %.3g", st.Loss, pairs, worst)
		})
	}
}

// dpoGradBatch is a hand-made preference batch of two examples (rows
// chosen, rejected, chosen, rejected) for c: prompts of 4–5 tokens,
// responses right-padded to different lengths, weight 1 on the response
// tokens but the end token (a formatting token: target set, weight 0), a
// formatting token inside one response (weight 0), and a py target at a
// weighted position of rows 0 and 3, which maskFormatting must mask.
func dpoGradBatch(c model.Config, py int32, rng *rand.Rand) *chatdata.PrefBatch {
	const T = 12
	lens, prompts := []int{10, 12, 9, 11}, []int{4, 4, 5, 5}
	B := len(lens)
	pb := &chatdata.PrefBatch{PerExample: 2, Examples: B / 2, Last: make([]int32, B), PromptLen: make([]int32, B), Scored: make([]int32, B)}
	pb.Batch = model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T), Weights: make([]float32, B*T)}
	for r, n := range lens {
		row := pb.Tokens[r*T : (r+1)*T]
		for i := range n {
			row[i] = int32(1 + rng.IntN(int(py)-1)) // never py (nor the pad, 0)
		}
		P := prompts[r]
		if r == 0 || r == 3 {
			row[P+1] = py
		}
		for i := range T {
			k := r*T + i
			pb.Targets[k] = -1
			if i >= P-1 && i <= n-2 {
				pb.Targets[k] = row[i+1]
				if i < n-2 && !(r == 1 && i == P) {
					pb.Weights[k] = 1
					pb.Scored[r]++
				}
			}
		}
		pb.Last[r], pb.PromptLen[r] = int32(n-1), int32(P)
	}
	return pb
}

// TestDPOLossGradient checks the DPO trainer's loss path — seqLogps (with
// maskFormatting), dpoLoss, the per-token coefficients of dpoTrainer.coef
// and Backward — against the tests' own float64 loss: summed response
// log-probabilities from modeltest.Forward over the positions with
// nonzero weight whose target is not the python tag, fixed reference
// log-probabilities, the sigmoid, IPO or hinge loss of the log-ratio
// difference and 0.2 times the chosen response's token-mean NLL. Loss
// values and directional gradients of every tensor are compared.
func TestDPOLossGradient(t *testing.T) {
	c := modeltest.TinyConfig(false, true)
	const py = 36 // plays <|python_tag|>
	const nllCoef = 0.2
	rng := rand.New(rand.NewPCG(8, 9))
	pb := dpoGradBatch(c, py, rng)
	orig := cloneBatch(&pb.Batch)
	masked := 0
	for k, w := range orig.Weights {
		if w != 0 && orig.Targets[k] == py {
			masked++
		}
	}
	if masked != 2 {
		t.Fatalf("%d weighted python-tag targets, want 2", masked)
	}
	m, err := model.NewWithParams(c, initParams(c, 13), kernels.NewSerial())
	if err != nil {
		t.Fatal(err)
	}
	w := modeltest.Weights(m.Params)
	B := pb.B
	// logps are the float64 summed log-probabilities and scored-token
	// counts, masking the python tag by the tests' own rule.
	logps := func() (lp, n []float64) {
		lp, n = make([]float64, B), make([]float64, B)
		logits, _ := modeltest.Forward(c, w, orig)
		for k, lg := range logits {
			if wt := float64(orig.Weights[k]); wt != 0 && orig.Targets[k] >= 0 && orig.Targets[k] != py {
				lp[k/orig.T] += wt * modeltest.LogSoftmax(lg)[orig.Targets[k]]
				n[k/orig.T] += wt
			}
		}
		return lp, n
	}
	lp0, n0 := logps()
	cases := []struct {
		kind string
		beta float64
		bu   [2]float64 // β·u per example at the starting weights
	}{
		{LossSigmoid, 0.1, [2]float64{0.6, -1.5}},
		{LossSigmoid, 0.5, [2]float64{0.6, 2.5}},
		{LossIPO, 0.5, [2]float64{0.6, 2.5}},
		{LossHinge, 0.5, [2]float64{0.6, 2.5}}, // one pair in the linear part, one in the zero region
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/beta=%g", tc.kind, tc.beta), func(t *testing.T) {
			// The reference log-probabilities: fixed numbers that put the
			// pairs where the case wants them.
			ref := make([]float64, B)
			for k := range 2 {
				ref[2*k] = math.Round((lp0[2*k]-tc.bu[k]/tc.beta)*1000) / 1000
				ref[2*k+1] = math.Round(lp0[2*k+1]*1000) / 1000
			}
			loss := func() float64 {
				lp, n := logps()
				var sum float64
				for k := range 2 {
					u := (lp[2*k] - ref[2*k]) - (lp[2*k+1] - ref[2*k+1])
					switch tc.kind {
					case LossSigmoid:
						sum += logSigmoidNeg(tc.beta * u)
					case LossIPO:
						sum += (u - 1/(2*tc.beta)) * (u - 1/(2*tc.beta))
					case LossHinge:
						sum += math.Max(0, 1-tc.beta*u)
					}
					sum += nllCoef * -lp[2*k] / n[2*k]
				}
				return sum / 2
			}

			b := &chatdata.PrefBatch{Batch: *cloneBatch(orig), PerExample: 2, Examples: 2, Last: pb.Last, PromptLen: pb.PromptLen, Scored: pb.Scored}
			m.EnsureGrads()
			m.Grads.Zero()
			logp, count, dlogp := make([]float64, B), make([]float64, B), make([]float64, B)
			if _, err := seqLogps(m, b, py, logp, count); err != nil {
				t.Fatal(err)
			}
			for k, wt := range b.Weights {
				if want := orig.Weights[k]; orig.Targets[k] == py && wt != 0 || orig.Targets[k] != py && wt != want {
					t.Fatalf("position %d (target %d): weight %v after maskFormatting, was %v", k, orig.Targets[k], wt, want)
				}
			}
			for r := range B {
				if count[r] != n0[r] || !modeltest.Close(logp[r], lp0[r], 1e-5, 1e-6) {
					t.Fatalf("row %d: logp %.7g over %v tokens, float64 %.7g over %v", r, logp[r], count[r], lp0[r], n0[r])
				}
			}
			st, err := dpoLoss(tc.kind, tc.beta, nllCoef, logp, ref, count, 2, dlogp)
			if err != nil {
				t.Fatal(err)
			}
			want := loss()
			if !modeltest.Close(st.Loss, want, 1e-5, 1e-7) {
				t.Fatalf("loss %.9g, float64 %.9g", st.Loss, want)
			}
			tr := &dpoTrainer{}
			m.Backward(tr.coef(b, dlogp))
			worst := gradCheck(t, m, w, rand.New(rand.NewPCG(6, 7)), loss)
			t.Logf("loss %.6g (float64 %.6g); worst relative gradient error %.3g", st.Loss, want, worst)
		})
	}
}
