package posttrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/herdml/herd/cluster"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model/kernels"
	"github.com/herdml/herd/recipes"
)

// KindRounds is a recipe of iterative post-training rounds.
const KindRounds = "rounds"

// Rounds configures Llama 3's iterative post-training (kind rounds): every
// round trains SFT on the accumulated SFT data (the initial rows plus the
// best samples of every earlier round), a reward model on every
// preference pair so far, samples the SFT model K times per prompt
// (rejection sampling, scored by the verifiers and the reward model), and
// trains DPO on the round's fresh pairs. The next round starts from its
// final model. Each stage runs in its own directory (ROUND/STAGE) with its
// resolved recipe.yaml, so one stage can be rerun alone with a change.
type Rounds struct {
	// Rounds is the number of rounds (default 3).
	Rounds int `yaml:"rounds"`
	// SFTData and PrefData are the initial SFT rows and preference pairs
	// (paths as in data.paths), used from the first round on.
	SFTData  []string `yaml:"sft_data"`
	PrefData []string `yaml:"pref_data"` // the initial preference pairs (see sft_data)
	// SFT, RM, RS and DPO are key=value overrides of each stage's recipe
	// (the stage's kind, model, data.paths and out are set by the round).
	SFT []string `yaml:"sft"`
	RM  []string `yaml:"rm"`  // key=value overrides of each round's reward-model recipe
	RS  []string `yaml:"rs"`  // key=value overrides of each round's rejection-sampling recipe
	DPO []string `yaml:"dpo"` // key=value overrides of each round's DPO recipe
	// Tasks are the built-in task families rejection sampling draws
	// prompts from and every stage is evaluated on (default all).
	Tasks []string `yaml:"tasks"`
	// Average, when set, adds an average stage at the end of every round:
	// the uniform average of the final models of the listed stages of the
	// round (e.g. [sft, dpo]) in roundN/average/final, which becomes the
	// round's final model — Llama 3 averaged the models of each stage.
	Average []string `yaml:"average"`
	// LRDecay multiplies the learning rates of the SFT and DPO stages by
	// LRDecay^(round-1), so later rounds, which start from an already
	// post-trained model, move it less (default 1: every round the same).
	LRDecay float64 `yaml:"lr_decay"`
	// FromBase starts every round's SFT from recipe.model (as Llama 3 did)
	// instead of the previous round's final model.
	FromBase bool `yaml:"from_base"`
	// Curation is the curation output directory (its stats.json) whose
	// funnel report.html shows (empty: none).
	Curation string `yaml:"curation"`
	// EvalN is the number of held-out prompts per task scored after each
	// stage (default 64; 0 keeps the default, -1 skips evaluation).
	EvalN int `yaml:"eval_n"`
}

// StageEval is the evaluation after one stage.
type StageEval struct {
	Round  int         `json:"round"`
	Stage  string      `json:"stage"`
	Model  string      `json:"model"`
	Tasks  []TaskScore `json:"tasks"`
	Mean   float64     `json:"mean_pass@1"`
	RMMean float64     `json:"mean_rm_accuracy,omitempty"`
}

// RoundsResult is what RunRounds did.
type RoundsResult struct {
	Final string      // the last round's final model
	Evals []StageEval // base, then every stage in order
	Table string      // the pass@1 table
	Plot  string      // pass@1 per stage
}

// Files of a rounds directory.
const (
	roundsEvalFile = "task_eval.json" // in each stage directory
	stageDoneFile  = "stage.json"     // marks a finished stage
	roundsEvalLog  = "eval.jsonl"     // every stage's evaluation, in order
)

// RunRounds runs the rounds recipe, skipping finished stages and resuming
// an interrupted one where it stopped.
func RunRounds(ctx context.Context, r Recipe, opt RunOptions) (*RoundsResult, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	if _, world, src, ok, _ := cluster.RankFromEnv(nil); ok && world > 1 {
		return nil, fmt.Errorf("rounds run in one process (%s says %d ranks): run each stage (posttrain -recipe with kind sft, rm or dpo) under mpirun instead", src, world)
	}
	log := opt.Logger
	if log == nil {
		log = nopLogger()
	}
	lock, err := claimDir(r, "post-training rounds directory")
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	ro := r.Rounds
	res := &RoundsResult{}
	evalN := ro.EvalN
	be := opt.Backend
	if be == nil {
		cpu := kernels.NewCPU(r.Workers)
		defer cpu.Close()
		be = cpu
	}
	evaluate := func(round int, name, modelDir, dir string, isRM bool) error {
		if evalN < 0 {
			return nil
		}
		ev, err := stageEval(ctx, r, be, round, name, modelDir, dir, evalN, isRM)
		if err != nil {
			return fmt.Errorf("evaluate %s: %w", dir, err)
		}
		res.Evals = append(res.Evals, *ev)
		if isRM {
			log.Info("reward model on held-out task pairs", "round", round, "mean_accuracy", fmt.Sprintf("%.3f", ev.RMMean))
		} else {
			log.Info("held-out tasks", "round", round, "stage", name, "mean_pass@1", fmt.Sprintf("%.3f", ev.Mean))
		}
		return nil
	}
	if err := evaluate(0, "base", r.Model, filepath.Join(r.Out, "base"), false); err != nil {
		return res, err
	}
	prev := r.Model
	var sftData, prefData []string
	sftData = append(sftData, ro.SFTData...)
	prefData = append(prefData, ro.PrefData...)
	for round := 1; round <= ro.Rounds; round++ {
		rdir := filepath.Join(r.Out, fmt.Sprintf("round%d", round))
		from := prev
		if ro.FromBase {
			from = r.Model
		}
		// SFT on the accumulated data.
		sftDir := filepath.Join(rdir, KindSFT)
		if err := runStage(ctx, r, opt, KindSFT, round, from, sftData, sftDir, ro.SFT); err != nil {
			return res, err
		}
		sftFinal := filepath.Join(sftDir, FinalDir)
		if err := evaluate(round, KindSFT, sftFinal, sftDir, false); err != nil {
			return res, err
		}
		// A reward model on every pair so far.
		rmDir := filepath.Join(rdir, KindRM)
		if err := runStage(ctx, r, opt, KindRM, round, sftFinal, prefData, rmDir, ro.RM); err != nil {
			return res, err
		}
		rmFinal := filepath.Join(rmDir, FinalDir)
		if err := evaluate(round, KindRM, rmFinal, rmDir, true); err != nil {
			return res, err
		}
		// Rejection sampling from the SFT model.
		rsDir := filepath.Join(rdir, KindRS)
		rsOver := []string{fmt.Sprintf("rs.round=%d", round), "rs.reward_model=" + rmFinal}
		if len(ro.Tasks) > 0 {
			rsOver = append(rsOver, "rs.tasks=["+strings.Join(ro.Tasks, ", ")+"]")
		}
		rsOver = append(rsOver, ro.RS...)
		if err := runStage(ctx, r, opt, KindRS, round, sftFinal, nil, rsDir, rsOver); err != nil {
			return res, err
		}
		var st RSStats
		if err := readJSON(filepath.Join(rsDir, "rs_stats.json"), &st); err != nil {
			return res, err
		}
		sftData = append(sftData, filepath.Join(rsDir, RSSFTDir))
		prefData = append(prefData, filepath.Join(rsDir, RSPrefDir))
		// DPO on the round's fresh pairs.
		final := sftFinal
		if st.Pairs > 0 {
			dpoDir := filepath.Join(rdir, KindDPO)
			if err := runStage(ctx, r, opt, KindDPO, round, sftFinal, []string{filepath.Join(rsDir, RSPrefDir)}, dpoDir, ro.DPO); err != nil {
				return res, err
			}
			final = filepath.Join(dpoDir, FinalDir)
			if err := evaluate(round, KindDPO, final, dpoDir, false); err != nil {
				return res, err
			}
		} else {
			log.Warn("rejection sampling found no preference pairs; the round's DPO is skipped", "round", round)
		}
		if len(ro.Average) > 0 {
			avgDir := filepath.Join(rdir, "average")
			var inputs []string
			for _, st := range ro.Average {
				in := filepath.Join(rdir, st, FinalDir)
				if _, err := os.Stat(in); err == nil {
					inputs = append(inputs, in)
				}
			}
			if err := averageStage(avgDir, inputs); err != nil {
				return res, fmt.Errorf("round %d average: %w", round, err)
			}
			final = filepath.Join(avgDir, FinalDir)
			if err := evaluate(round, "average", final, avgDir, false); err != nil {
				return res, err
			}
		}
		prev = final
	}
	res.Final = prev
	res.Table = evalTable(res.Evals)
	if err := writeRoundsReport(r.Out, res, reportInputs{curation: ro.Curation, pretrainModel: r.Model}); err != nil {
		return res, err
	}
	return res, nil
}

// runStage runs one stage of a round unless it finished before.
func runStage(ctx context.Context, base Recipe, opt RunOptions, kind string, round int, from string, data []string, dir string, overrides []string) error {
	if _, err := os.Stat(filepath.Join(dir, stageDoneFile)); err == nil {
		return nil
	}
	sr := Default()
	sr.Kind, sr.Out, sr.Model, sr.Tokenizer = kind, dir, from, base.Tokenizer
	sr.Seed, sr.Workers = base.Seed+uint64(round), base.Workers
	sr.Data.Paths = data
	for _, kv := range overrides {
		if err := recipes.Override(&sr, kv); err != nil {
			return fmt.Errorf("round %d %s: %w", round, kind, err)
		}
	}
	sr.Kind, sr.Out, sr.Model = kind, dir, from
	if kind != KindRS {
		sr.Data.Paths = data
	}
	if d := base.Rounds.LRDecay; d > 0 && (kind == KindSFT || kind == KindDPO) {
		f := math.Pow(d, float64(round-1))
		sr.Optim.LR *= f
		sr.Optim.MinLR *= f
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if opt.Logger != nil {
		opt.Logger.Info("stage", "round", round, "kind", kind, "from", from, "out", dir)
	}
	o := opt
	o.Resume = true // a stage killed earlier continues from its checkpoint
	res, err := Run(ctx, sr, o)
	if err != nil {
		return fmt.Errorf("round %d %s: %w", round, kind, err)
	}
	if res.Interrupted {
		return context.Canceled
	}
	done, _ := json.Marshal(map[string]any{"round": round, "kind": kind, "model": from})
	return atomicfile.WriteFile(filepath.Join(dir, stageDoneFile), done, 0o644)
}

// stageEval evaluates a stage's model on the held-out tasks (or, for a
// reward model, its pair accuracy), cached in the stage directory.
func stageEval(ctx context.Context, r Recipe, be kernels.Backend, round int, name, modelDir, dir string, n int, isRM bool) (*StageEval, error) {
	path := filepath.Join(dir, roundsEvalFile)
	var ev StageEval
	if err := readJSON(path, &ev); err == nil {
		return &ev, nil
	}
	o := TaskEvalOptions{N: n, Seed: r.Seed, Tasks: r.Rounds.Tasks}
	ev = StageEval{Round: round, Stage: name, Model: modelDir}
	var err error
	if ev.Tasks, err = evalDir(ctx, modelDir, be, o, isRM); err != nil {
		return nil, err
	}
	if isRM {
		for _, t := range ev.Tasks {
			ev.RMMean += t.RMAccuracy / float64(len(ev.Tasks))
		}
	} else {
		ev.Mean = MeanPass1(ev.Tasks)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data, _ := json.MarshalIndent(ev, "", "  ")
	return &ev, atomicfile.WriteFile(path, append(data, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// averageStage averages the models inputs into dir/final unless that stage
// finished before.
func averageStage(dir string, inputs []string) error {
	if _, err := os.Stat(filepath.Join(dir, stageDoneFile)); err == nil {
		return nil
	}
	if len(inputs) == 0 {
		return errors.New("none of the stages listed in rounds.average produced a model")
	}
	if err := outdir.Claim(dir, outdir.PostRun); err != nil {
		return err
	}
	if err := checkpoint.AverageModels(filepath.Join(dir, FinalDir), inputs, nil); err != nil {
		return err
	}
	done, _ := json.Marshal(map[string]any{"kind": "average", "models": inputs})
	return atomicfile.WriteFile(filepath.Join(dir, stageDoneFile), done, 0o644)
}
