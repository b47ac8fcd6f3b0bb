package pretrain

import (
	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/train"
)

// MetricsFile is the name of the metrics log in the run directory.
const MetricsFile = train.MetricsFile

// Record is a pretraining line of metrics.jsonl: a training step (Loss
// set) or an evaluation (EvalLoss set). It is written as a train.Record.
type Record struct {
	Step       int     `json:"step"`
	Stage      string  `json:"stage"`
	Tokens     int64   `json:"tokens"` // training tokens seen after this step
	Loss       float64 `json:"loss,omitempty"`
	LR         float64 `json:"lr,omitempty"`
	GradNorm   float64 `json:"grad_norm,omitempty"`
	TokensPerS float64 `json:"tokens_per_s,omitempty"`
	GFLOPPerS  float64 `json:"gflop_per_s,omitempty"`
	MFU        float64 `json:"mfu,omitempty"` // against train.peak_gflop_per_s
	Skipped    bool    `json:"skipped,omitempty"`
	ElapsedS   float64 `json:"elapsed_s,omitempty"`
	EvalLoss   float64 `json:"eval_loss,omitempty"`
	EvalPPL    float64 `json:"eval_ppl,omitempty"`
	Unigram    float64 `json:"unigram,omitempty"`
	Kind       string  `json:"kind"` // "train", "eval" or "final_eval"
}

// generic is the record as the engine writes it; zero-valued optional
// numbers are left out.
func (r Record) generic() train.Record {
	m := checkpoint.Metrics{}
	put := func(name string, v float64, always bool) {
		if v != 0 || always {
			m[name] = v
		}
	}
	isTrain := r.Kind == "train"
	put("loss", r.Loss, isTrain)
	put("lr", r.LR, isTrain)
	put("grad_norm", r.GradNorm, isTrain)
	put("tokens_per_s", r.TokensPerS, false)
	put("gflop_per_s", r.GFLOPPerS, false)
	put("mfu", r.MFU, false)
	put("elapsed_s", r.ElapsedS, false)
	put("eval_loss", r.EvalLoss, !isTrain)
	put("eval_ppl", r.EvalPPL, !isTrain)
	put("unigram", r.Unigram, false)
	return train.Record{Kind: r.Kind, Step: r.Step, Stage: r.Stage, Tokens: r.Tokens, Skipped: r.Skipped, Values: m}
}

// recordOf reads a pretraining record from the engine's form.
func recordOf(g train.Record) Record {
	m := g.Values
	return Record{Kind: g.Kind, Stage: g.Stage, Step: g.Step, Tokens: g.Tokens, Skipped: g.Skipped,
		Loss: m["loss"], LR: m["lr"], GradNorm: m["grad_norm"], TokensPerS: m["tokens_per_s"], GFLOPPerS: m["gflop_per_s"], MFU: m["mfu"],
		ElapsedS: m["elapsed_s"], EvalLoss: m["eval_loss"], EvalPPL: m["eval_ppl"], Unigram: m["unigram"]}
}

// MarshalJSON writes the record on one line, as train.Record does.
func (r Record) MarshalJSON() ([]byte, error) { return r.generic().MarshalJSON() }

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Record) UnmarshalJSON(data []byte) error {
	var g train.Record
	if err := g.UnmarshalJSON(data); err != nil {
		return err
	}
	*r = recordOf(g)
	return nil
}

// ReadMetrics reads a metrics.jsonl file; errors name the line.
func ReadMetrics(path string) ([]Record, error) {
	gs, err := train.ReadMetrics(path)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(gs))
	for i, g := range gs {
		out[i] = recordOf(g)
	}
	return out, nil
}
