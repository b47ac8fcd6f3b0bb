package posttrain

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/internal/outdir"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/tasks"
)

// Verifier kinds of rejection sampling.
const (
	VerifierBuiltin = "builtin" // the built-in tasks' exact checks
	VerifierCommand = "command" // an external program (see RS.Command)
	VerifierNone    = "none"    // the reward model alone orders the samples
)

// Directories of a rejection-sampling run.
const (
	RSSFTDir  = "sft"  // best response per prompt: {prompt, completion} rows
	RSPrefDir = "pref" // best vs worst pairs: {prompt, chosen, rejected} rows
	rsChunks  = "chunks"
)

// RS configures rejection sampling (kind rs): K samples per prompt from
// recipe.model, scored by verifiers and/or a reward model; the best
// response of each prompt becomes an SFT row, best vs worst a preference
// pair.
type RS struct {
	// Round is recorded with every row (provenance).
	Round int `yaml:"round"`
	// Tasks are built-in task families whose training-split prompts are
	// sampled (default all when data.paths is empty). With data.paths the
	// prompts are the files' "prompt" strings instead (JSONL).
	Tasks []string `yaml:"tasks"`
	// Prompts is the number of built-in prompts per task (default 128).
	Prompts int `yaml:"prompts"`
	// K is the number of samples per prompt (default 8; Llama 3 used
	// 10–30).
	K           int     `yaml:"k"`
	Temperature float64 `yaml:"temperature"` // sampling temperature (default 0.8)
	TopP        float64 `yaml:"top_p"`       // nucleus sampling: the likeliest tokens with this total probability (default 0.95)
	// MaxNewTokens bounds a sample (default 32); <|eot_id|> ends it.
	MaxNewTokens int `yaml:"max_new_tokens"`
	// Batch is the number of prompts decoded together (default 16): each
	// prompt is prefilled once and its K samples share its KV cache.
	Batch int `yaml:"batch"`
	// Chunk is the number of prompts per output chunk, the unit of
	// resumption and of the split over ranks (default 64).
	Chunk int `yaml:"chunk"`
	// RewardModel is a reward-model directory that orders the samples
	// (empty: none).
	RewardModel string `yaml:"reward_model"`
	// Verifier is "builtin" (default with built-in tasks), "command" or
	// "none". A verifier's pass/fail gates: the SFT row is the best passing
	// sample, and prompts where every sample fails are dropped.
	Verifier string `yaml:"verifier"`
	// Command (verifier "command") is run by sh -c once per chunk; it reads
	// JSONL {"prompt","response","task"} on stdin and writes one
	// {"score": float} line per input line; a score > 0 passes.
	Command string `yaml:"command"`
	// MinGap drops preference pairs whose reward-model scores differ by
	// less (default 0: chosen must score strictly higher).
	MinGap float64 `yaml:"min_gap"`
	// Rank and World split the chunks over processes (chunk c goes to rank
	// c mod world); World 0 takes them from the MPI/Slurm/Kubernetes
	// environment (one process when none is set).
	Rank  int `yaml:"rank"`
	World int `yaml:"world"` // the number of processes sharing the chunks (see rank)
}

func (s *RS) defaults() {
	s.Prompts = cmp.Or(s.Prompts, 128)
	s.K = cmp.Or(s.K, 8)
	if s.Temperature == 0 {
		s.Temperature = 0.8
	}
	if s.TopP == 0 {
		s.TopP = 0.95
	}
	s.MaxNewTokens = cmp.Or(s.MaxNewTokens, 32)
	s.Batch = cmp.Or(s.Batch, 16)
	s.Chunk = cmp.Or(s.Chunk, 64)
}

func (s *RS) validate(hasPaths bool) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Prompts < 0 || s.K < 1 || s.K > 1024 || s.MaxNewTokens < 0 || s.Batch < 0 || s.Chunk < 0 {
		bad("rs: prompts >= 0, k in [1, 1024], max_new_tokens, batch and chunk >= 0, got %d, %d, %d, %d, %d", s.Prompts, s.K, s.MaxNewTokens, s.Batch, s.Chunk)
	}
	if !(s.Temperature >= 0) || math.IsInf(s.Temperature, 0) || !(s.TopP >= 0 && s.TopP <= 1) {
		bad("rs: temperature must be >= 0 and top_p in [0, 1], got %v and %v", s.Temperature, s.TopP)
	}
	for _, t := range s.Tasks {
		if _, err := tasks.Get(t); err != nil {
			bad("rs.tasks: %v", err)
		}
	}
	switch s.Verifier {
	case "", VerifierNone:
	case VerifierBuiltin:
		if hasPaths && len(s.Tasks) == 0 {
			bad("rs.verifier builtin checks built-in task prompts; with data.paths prompts use verifier command or none")
		}
	case VerifierCommand:
		if strings.TrimSpace(s.Command) == "" {
			bad("rs.verifier command needs rs.command")
		}
	default:
		bad("rs.verifier %q is not one of builtin, command, none", s.Verifier)
	}
	if s.Verifier == VerifierNone && s.RewardModel == "" {
		bad("rs: with verifier none a reward_model must order the samples")
	}
	if !(s.MinGap >= 0) || math.IsInf(s.MinGap, 0) {
		bad("rs.min_gap must be >= 0, got %v", s.MinGap)
	}
	if s.World < 0 || s.Rank < 0 || s.World > 0 && s.Rank >= s.World {
		bad("rs: want 0 <= rank < world (or world 0 for the environment), got rank %d world %d", s.Rank, s.World)
	}
	return errs
}

// rsSFTRow is a rejection-sampling SFT row (chatdata reads prompt and
// completion; the rest is provenance).
type rsSFTRow struct {
	Prompt      string  `parquet:"prompt"`
	Completion  string  `parquet:"completion"`
	Task        string  `parquet:"task"`
	Round       int32   `parquet:"round"`
	Model       string  `parquet:"model"`
	Temperature float64 `parquet:"temperature"`
	TopP        float64 `parquet:"top_p"`
	K           int32   `parquet:"k"`
	Score       float64 `parquet:"score"`
	Scores      string  `parquet:"scores"` // JSON: every sample's verifier result and reward
}

// rsPrefRow is a rejection-sampling preference pair.
type rsPrefRow struct {
	Prompt        string  `parquet:"prompt"`
	Chosen        string  `parquet:"chosen"`
	Rejected      string  `parquet:"rejected"`
	Task          string  `parquet:"task"`
	Round         int32   `parquet:"round"`
	Model         string  `parquet:"model"`
	Temperature   float64 `parquet:"temperature"`
	TopP          float64 `parquet:"top_p"`
	K             int32   `parquet:"k"`
	ChosenScore   float64 `parquet:"chosen_score"`
	RejectedScore float64 `parquet:"rejected_score"`
	Scores        string  `parquet:"scores"`
}

// RSStats count what rejection sampling did.
type RSStats struct {
	Chunks        int   `json:"chunks"`
	Prompts       int   `json:"prompts"`
	Samples       int   `json:"samples"`
	Passed        int   `json:"passed"`        // samples a verifier passed
	AllFailed     int   `json:"all_failed"`    // prompts dropped: every sample failed
	SFTRows       int   `json:"sft_rows"`      // best responses kept
	Pairs         int   `json:"pairs"`         // preference pairs kept
	CloseDropped  int   `json:"close_dropped"` // pairs dropped by min_gap (or equal scores)
	SampledTokens int64 `json:"sampled_tokens"`
	// Seconds is the sampling time of the chunks run in this session.
	Seconds float64 `json:"seconds,omitempty"`
}

func (s *RSStats) add(o RSStats) {
	s.Chunks += o.Chunks
	s.Prompts += o.Prompts
	s.Samples += o.Samples
	s.Passed += o.Passed
	s.AllFailed += o.AllFailed
	s.SFTRows += o.SFTRows
	s.Pairs += o.Pairs
	s.CloseDropped += o.CloseDropped
	s.SampledTokens += o.SampledTokens
	s.Seconds += o.Seconds
}

// rsPrompt is one prompt to sample.
type rsPrompt struct {
	Task, Text string
}

// sampleScore is one sample's verdict.
type sampleScore struct {
	Response string   `json:"response"`
	Pass     *bool    `json:"pass,omitempty"`
	Verifier *float64 `json:"verifier,omitempty"`
	Reward   *float64 `json:"reward,omitempty"`
}

// runRS runs rejection sampling: the prompts, in chunks, each chunk written
// atomically (its SFT rows, its pairs, then its stats, which mark it
// done); a rerun skips finished chunks. It returns the totals over every
// finished chunk.
func runRS(ctx context.Context, r Recipe, opt RunOptions) (*RSStats, error) {
	if r.Kind != KindRS {
		return nil, fmt.Errorf("recipe kind %q is not %s", r.Kind, KindRS)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	s := r.RS
	s.defaults()
	if s.Verifier == "" {
		s.Verifier = VerifierBuiltin
		if len(r.Data.Paths) > 0 && len(s.Tasks) == 0 {
			s.Verifier = VerifierNone
		}
	}
	log := opt.Logger
	if log == nil {
		log = nopLogger()
	}
	rank, world := s.Rank, s.World
	if world == 0 {
		var err error
		var ok bool
		var src string
		rank, world, src, ok, err = cluster.RankFromEnv(nil)
		if err != nil {
			return nil, err
		}
		if ok {
			log.Info("rank from the environment", "source", src, "rank", rank, "world", world)
		}
	}
	run := &runner{r: r, opt: opt, log: log}
	if overlap, err := outdir.Overlaps(r.Out, r.Model); err != nil {
		return nil, err
	} else if overlap {
		return nil, fmt.Errorf("out %s is (or holds, or lies inside) the model %s; choose another directory", r.Out, r.Model)
	}
	if err := run.loadTokenizer(); err != nil {
		return nil, err
	}
	if err := run.loadModel(); err != nil {
		return nil, err
	}
	if c, ok := run.be.(interface{ Close() }); ok && opt.Backend == nil {
		defer c.Close()
	}
	var rm *model.Model
	if s.RewardModel != "" {
		cfg, params, err := checkpoint.LoadModel(s.RewardModel)
		if err != nil {
			return nil, fmt.Errorf("rs.reward_model: %w", err)
		}
		if !cfg.HasScoreHead() || cfg.NumLabels != 1 {
			return nil, fmt.Errorf("rs.reward_model %s is not a reward model (%s with num_labels 1)", s.RewardModel, model.SequenceClassifier)
		}
		if rm, err = model.NewWithParams(cfg, params, run.be); err != nil {
			return nil, err
		}
	}
	prompts, err := rsPrompts(&r, &s)
	if err != nil {
		return nil, err
	}
	lock, err := claimDir(r, "rejection-sampling directory")
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	for _, d := range []string{RSSFTDir, RSPrefDir, rsChunks} {
		if err := os.MkdirAll(filepath.Join(r.Out, d), 0o755); err != nil {
			return nil, err
		}
		if _, err := atomicfile.RemoveTemps(filepath.Join(r.Out, d)); err != nil {
			return nil, err
		}
	}
	g := &rsGen{r: &r, s: &s, tok: run.tok, m: run.m, rm: rm, stop: stopTokens(run.tok), pad: int32(padToken(run.tok))}
	var total RSStats
	nChunks := (len(prompts) + s.Chunk - 1) / s.Chunk
	for c := range nChunks {
		if c%world != rank {
			continue
		}
		statsPath := filepath.Join(r.Out, rsChunks, fmt.Sprintf("chunk-%05d.json", c))
		if data, err := os.ReadFile(statsPath); err == nil {
			var st RSStats
			if err := json.Unmarshal(data, &st); err == nil {
				st.Seconds = 0
				total.add(st)
				continue
			}
		}
		if err := ctx.Err(); err != nil {
			return &total, err
		}
		start := time.Now()
		lo, hi := c*s.Chunk, min((c+1)*s.Chunk, len(prompts))
		sft, pref, st, err := g.chunk(ctx, prompts[lo:hi], lo)
		if err != nil {
			return &total, fmt.Errorf("chunk %d: %w", c, err)
		}
		st.Chunks, st.Seconds = 1, time.Since(start).Seconds()
		name := fmt.Sprintf("chunk-%05d.parquet", c)
		if err := writeRows(filepath.Join(r.Out, RSSFTDir, name), sft); err != nil {
			return &total, err
		}
		if err := writeRows(filepath.Join(r.Out, RSPrefDir, name), pref); err != nil {
			return &total, err
		}
		data, err := json.Marshal(st)
		if err != nil {
			return &total, err
		}
		if err := atomicfile.WriteFile(statsPath, data, 0o644); err != nil {
			return &total, err
		}
		total.add(st)
		log.Info("rejection sampling", "chunk", c+1, "of", nChunks, "prompts", st.Prompts, "passed", fmt.Sprintf("%d/%d", st.Passed, st.Samples),
			"sft_rows", st.SFTRows, "pairs", st.Pairs, "tokens_per_s", fmt.Sprintf("%.0f", float64(st.SampledTokens)/st.Seconds))
	}
	data, err := json.MarshalIndent(total, "", "  ")
	if err != nil {
		return &total, err
	}
	if err := atomicfile.WriteFile(filepath.Join(r.Out, "rs_stats.json"), append(data, '\n'), 0o644); err != nil {
		return &total, err
	}
	return &total, writeRSReport(&r, &total)
}

// writeRows writes a Parquet file of rows (possibly none) atomically.
func writeRows[T any](path string, rows []T) error {
	w, err := shard.Create[T](path, 4096)
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		if err := w.Write(rows...); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}

// rsPrompts are the prompts of the run: built-in training-split task
// prompts, or the "prompt" strings of the JSONL files in data.paths.
func rsPrompts(r *Recipe, s *RS) ([]rsPrompt, error) {
	if len(r.Data.Paths) == 0 {
		probs, err := tasks.Problems(s.Tasks, s.Prompts, r.Seed, false)
		if err != nil {
			return nil, err
		}
		out := make([]rsPrompt, len(probs))
		for i, p := range probs {
			out[i] = rsPrompt{Task: p.Task, Text: p.Prompt}
		}
		return out, nil
	}
	files, err := chatdata.ListFiles(r.Data.Paths)
	if err != nil {
		return nil, err
	}
	var out []rsPrompt
	maxLine := cmp.Or(r.Data.MaxLineBytes, chatdata.DefaultMaxLineBytes)
	for _, path := range files {
		if !strings.HasSuffix(path, ".jsonl") {
			return nil, fmt.Errorf("%s: rejection-sampling prompts are read from plain .jsonl files", path)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		br := bufio.NewReader(f)
		var line []byte
		for n := 1; ; n++ {
			var tooLong bool
			line, tooLong, err = readLine(br, line[:0], maxLine)
			if err != nil && err != io.EOF {
				f.Close()
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			if tooLong {
				f.Close()
				return nil, fmt.Errorf("%s:%d: line longer than data.max_line_bytes %d", path, n, maxLine)
			}
			if len(strings.TrimSpace(string(line))) > 0 {
				var row struct {
					Prompt *string `json:"prompt"`
				}
				if jerr := json.Unmarshal(line, &row); jerr != nil || row.Prompt == nil || *row.Prompt == "" {
					f.Close()
					return nil, fmt.Errorf("%s:%d: want a JSON object with a non-empty \"prompt\" string", path, n)
				}
				_, task, _ := tasks.Verify(*row.Prompt, "")
				out = append(out, rsPrompt{Task: task, Text: *row.Prompt})
			}
			if err == io.EOF {
				break
			}
		}
		f.Close()
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("data.paths %v hold no prompts", r.Data.Paths)
	}
	return out, nil
}

// rsGen samples and scores chunks.
type rsGen struct {
	r    *Recipe
	s    *RS
	tok  *tokenizer.Tokenizer
	m    *model.Model
	rm   *model.Model
	stop []int32
	pad  int32
}

// chunk samples K responses for each prompt (prompt i of the run is at
// index base+i; its samples draw from streams (base+i)·K + j so a chunk's
// samples do not depend on the batch), scores them and picks the rows.
func (g *rsGen) chunk(ctx context.Context, prompts []rsPrompt, base int) ([]rsSFTRow, []rsPrefRow, RSStats, error) {
	s := g.s
	var st RSStats
	ids := make([][]int32, len(prompts))
	for i, p := range prompts {
		var err error
		if ids[i], err = chatPrompt(g.tok, p.Text); err != nil {
			return nil, nil, st, err
		}
		if len(ids[i])+s.MaxNewTokens > g.m.Config.MaxPositionEmbeddings {
			return nil, nil, st, fmt.Errorf("prompt %q (%d tokens) plus rs.max_new_tokens %d exceed the model's context %d", clipText(p.Text), len(ids[i]), s.MaxNewTokens, g.m.Config.MaxPositionEmbeddings)
		}
	}
	responses := make([][]string, len(prompts))
	opt := model.SampleOptions{Temperature: s.Temperature, TopP: s.TopP, MaxTokens: s.MaxNewTokens, StopTokens: g.stop, Seed: g.r.Seed}
	for lo := 0; lo < len(prompts); lo += s.Batch {
		hi := min(lo+s.Batch, len(prompts))
		res, err := g.m.GenerateShared(ctx, ids[lo:hi], s.K, opt, func(i, j int) uint64 { return uint64((base+lo+i)*s.K + j) })
		if err != nil {
			return nil, nil, st, err
		}
		for i, samples := range res.Samples {
			for _, gen := range samples {
				responses[lo+i] = append(responses[lo+i], strings.TrimSpace(responseText(g.tok, gen.Tokens)))
				st.SampledTokens += int64(len(gen.Tokens))
			}
		}
	}
	scores, err := g.score(ctx, prompts, responses)
	if err != nil {
		return nil, nil, st, err
	}
	var sft []rsSFTRow
	var pref []rsPrefRow
	for i, p := range prompts {
		sc := scores[i]
		st.Prompts++
		st.Samples += len(sc)
		passed := 0
		for _, x := range sc {
			if x.Pass != nil && *x.Pass {
				passed++
			}
		}
		st.Passed += passed
		gated := g.s.Verifier != VerifierNone
		if gated && passed == 0 {
			st.AllFailed++
			continue
		}
		order := rankSamples(sc)
		best, worst := order[0], order[len(order)-1]
		all, err := json.Marshal(sc)
		if err != nil {
			return nil, nil, st, fmt.Errorf("prompt %d: record the scores: %w", base+i, err)
		}
		task, round, mdl, temp, topP, k := p.Task, int32(s.Round), g.r.Model, s.Temperature, s.TopP, int32(s.K)
		sft = append(sft, rsSFTRow{Prompt: p.Text, Completion: sc[best].Response, Task: task, Round: round, Model: mdl,
			Temperature: temp, TopP: topP, K: k, Score: sampleKey(sc[best]), Scores: string(all)})
		st.SFTRows++
		// A pair: correct vs incorrect when the verifier separates them,
		// else best vs worst by reward when the gap is large enough.
		bk, wk := sc[best], sc[worst]
		ok := false
		switch {
		case gated && passed < len(sc):
			ok = sc[best].Response != sc[worst].Response
		case bk.Reward != nil && wk.Reward != nil:
			ok = *bk.Reward-*wk.Reward > s.MinGap && *bk.Reward > *wk.Reward
		}
		if !ok || bk.Response == wk.Response {
			st.CloseDropped++
			continue
		}
		pref = append(pref, rsPrefRow{Prompt: p.Text, Chosen: bk.Response, Rejected: wk.Response, Task: task, Round: round, Model: mdl,
			Temperature: temp, TopP: topP, K: k, ChosenScore: sampleKey(bk), RejectedScore: sampleKey(wk), Scores: string(all)})
		st.Pairs++
	}
	return sft, pref, st, nil
}

// sampleKey is a sample's scalar score: the reward when a reward model
// scored it, else the verifier's score (1 pass, 0 fail).
func sampleKey(x sampleScore) float64 {
	if x.Reward != nil {
		return *x.Reward
	}
	if x.Verifier != nil {
		return *x.Verifier
	}
	return 0
}

// rankSamples orders sample indices best first: passing before failing,
// then by reward, then by verifier score, ties by index (stable).
func rankSamples(sc []sampleScore) []int {
	order := make([]int, len(sc))
	for i := range order {
		order[i] = i
	}
	pass := func(x sampleScore) int {
		if x.Pass != nil && *x.Pass {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := sc[a], sc[b]
		if d := pass(y) - pass(x); d != 0 {
			return d
		}
		if x.Reward != nil && y.Reward != nil && *x.Reward != *y.Reward {
			if *x.Reward > *y.Reward {
				return -1
			}
			return 1
		}
		if x.Verifier != nil && y.Verifier != nil && *x.Verifier != *y.Verifier {
			if *x.Verifier > *y.Verifier {
				return -1
			}
			return 1
		}
		return 0
	})
	return order
}

// score runs the verifier and the reward model over every sample.
func (g *rsGen) score(ctx context.Context, prompts []rsPrompt, responses [][]string) ([][]sampleScore, error) {
	out := make([][]sampleScore, len(prompts))
	for i := range prompts {
		out[i] = make([]sampleScore, len(responses[i]))
		for j, resp := range responses[i] {
			out[i][j].Response = resp
		}
	}
	switch g.s.Verifier {
	case VerifierBuiltin:
		for i, p := range prompts {
			t, err := tasks.Get(p.Task)
			if err != nil {
				return nil, fmt.Errorf("prompt %q: %w", clipText(p.Text), err)
			}
			for j := range out[i] {
				ok, err := t.Verify(p.Text, out[i][j].Response)
				if err != nil {
					return nil, err
				}
				v := 0.0
				if ok {
					v = 1
				}
				out[i][j].Pass, out[i][j].Verifier = &ok, &v
			}
		}
	case VerifierCommand:
		if err := g.commandVerify(ctx, prompts, out); err != nil {
			return nil, err
		}
	}
	if g.rm != nil {
		for i, p := range prompts {
			seqs := make([][]int32, len(out[i]))
			for j, x := range out[i] {
				c, err := g.tok.RenderChat([]tokenizer.Message{{Role: "user", Content: p.Text}, {Role: "assistant", Content: x.Response}}, tokenizer.ChatOptions{})
				if err != nil {
					return nil, err
				}
				seqs[j] = c.IDs
				if len(seqs[j]) > g.rm.Config.MaxPositionEmbeddings {
					seqs[j] = seqs[j][:g.rm.Config.MaxPositionEmbeddings]
				}
			}
			r, err := Rewards(g.rm, seqs, g.pad)
			if err != nil {
				return nil, err
			}
			for j := range out[i] {
				v := r[j]
				out[i][j].Reward = &v
			}
		}
	}
	return out, nil
}

// commandVerify pipes every sample through the external verifier: JSONL
// {"prompt","response","task"} in, {"score": float} per line out.
func (g *rsGen) commandVerify(ctx context.Context, prompts []rsPrompt, out [][]sampleScore) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", g.s.Command)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("rs.command: %w", err)
	}
	werr := make(chan error, 1)
	go func() {
		bw := bufio.NewWriter(in)
		enc := json.NewEncoder(bw)
		var err error
		for i, p := range prompts {
			for _, x := range out[i] {
				if err == nil {
					err = enc.Encode(map[string]string{"prompt": p.Text, "response": x.Response, "task": p.Task})
				}
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		in.Close()
		werr <- err
	}()
	br := bufio.NewReader(stdout)
	var line []byte
	n := 0
	fail := func(err error) error {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	for i := range prompts {
		for j := range out[i] {
			n++
			var tooLong bool
			line, tooLong, err = readLine(br, line[:0], 1<<20)
			if tooLong || err != nil && (err != io.EOF || len(line) == 0) {
				return fail(fmt.Errorf("rs.command %q: output line %d: want {\"score\": number} for every input line (%v); stderr: %s", g.s.Command, n, err, clipText(stderr.String())))
			}
			var res struct {
				Score *float64 `json:"score"`
			}
			if jerr := json.Unmarshal(line, &res); jerr != nil || res.Score == nil || math.IsNaN(*res.Score) || math.IsInf(*res.Score, 0) {
				return fail(fmt.Errorf("rs.command %q: output line %d is %q; want {\"score\": finite number}", g.s.Command, n, clipText(string(line))))
			}
			v := *res.Score
			ok := v > 0
			out[i][j].Verifier, out[i][j].Pass = &v, &ok
		}
	}
	if err := <-werr; err != nil && !errors.Is(err, os.ErrClosed) {
		return fail(fmt.Errorf("rs.command %q: writing its input: %w", g.s.Command, err))
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("rs.command %q: %w; stderr: %s", g.s.Command, err, clipText(stderr.String()))
	}
	return nil
}

func clipText(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
