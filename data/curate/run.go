package curate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sourcegraph/conc"

	"github.com/herdml/herd/data/dedup"
	"github.com/herdml/herd/data/document"
	"github.com/herdml/herd/data/reader"
	"github.com/herdml/herd/data/shard"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/recipes"
)

// Options are the run settings that are not part of the recipe.
type Options struct {
	Rank, World int                  // this worker and the number of workers (default 0 of 1)
	HTML        reader.HTMLExtractor // HTML main-text extractor (nil: HTML inputs are reported malformed)
	Logger      *slog.Logger         // default slog.Default()
	Progress    Progress             // optional progress display
	Poll        time.Duration        // how often to look for other ranks' files (default 1s)
	// WaitTimeout bounds how long a rank waits for other ranks' files
	// while none of them appears (default 1h): a rank started alone
	// fails with a message naming the missing ranks instead of waiting
	// forever.
	WaitTimeout time.Duration
	// WaitLogEvery is how often a waiting rank logs what it waits for
	// (default 30s).
	WaitLogEvery time.Duration
}

// Progress receives progress events (the CLI shows them as bars).
type Progress interface {
	StartPass(name string, units int)
	UnitDone(bytes int64)
	EndPass()
}

// Result summarizes a finished run.
type Result struct {
	Stats      *Stats
	OutputDir  string
	RecipeHash string
}

// pass is the work between two global decisions.
type pass struct {
	index   int
	apply   globalStage // global stage whose decision is applied first (nil in the first pass)
	locals  []string    // local stages run in order
	collect globalStage // global stage whose keys are collected at the end (nil in the last pass)
}

// planPasses cuts the recipe's stages into passes at each global stage.
func planPasses(stages []string, globals map[string]globalStage) []pass {
	var ps []pass
	cur := pass{}
	for _, s := range stages {
		if g := globals[s]; g != nil {
			cur.collect = g
			ps = append(ps, cur)
			cur = pass{index: len(ps), apply: g}
			continue
		}
		cur.locals = append(cur.locals, s)
	}
	return append(ps, cur)
}

// stageName is the name of a global stage, or "" for none.
func stageName(g globalStage) string {
	if g == nil {
		return ""
	}
	return g.name()
}

type runner struct {
	cfg    *Config
	opt    Options
	env    *env
	units  []reader.Unit
	passes []pass
	out    string
	work   string
	hash   string // of the resolved recipe (recorded in the outputs)
	// unitKeys and planKey identify what finished work was computed
	// from (see resume.go).
	unitKeys []string
	planKey  string
	log      *slog.Logger
	metrics  *metricsLog
}

// Run executes the recipe. Rerunning with the same recipe and output
// directory resumes: a finished unit is reused when its input files (names,
// sizes, modification times) and the files the recipe names are unchanged,
// and redone otherwise; shards of units the inputs no longer have are
// removed. A different recipe is refused.
func Run(ctx context.Context, cfg Config, opt Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.World < 0 {
		return nil, fmt.Errorf("world size %d: must be ≥ 1 (the number of processes sharing the output)", opt.World)
	}
	if opt.World == 0 {
		opt.World = 1
	}
	if opt.Rank < 0 || opt.Rank >= opt.World {
		return nil, fmt.Errorf("rank %d: must be ≥ 0 and < the world size %d", opt.Rank, opt.World)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.WaitTimeout <= 0 {
		opt.WaitTimeout = time.Hour
	}
	if opt.WaitLogEvery <= 0 {
		opt.WaitLogEvery = 30 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	// The saved recipe and its hash leave out where the output goes and
	// how many goroutines work: they do not change the data.
	content := cfg
	content.Output.Dir, content.Workers = "", 0
	resolved, err := recipes.Marshal(content)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(resolved)
	r := &runner{cfg: &cfg, opt: opt, out: cfg.Output.Dir, hash: hex.EncodeToString(sum[:8]), log: opt.Logger}
	r.work = filepath.Join(r.out, "work")
	if r.env, err = newEnv(r.cfg); err != nil {
		return nil, err
	}
	if r.units, err = reader.Plan(cfg.Input); err != nil {
		return nil, err
	}
	locks, err := r.lock()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, l := range locks {
			l.Release()
		}
	}()
	if err := os.MkdirAll(filepath.Join(r.out, "removed"), 0o755); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	if err := os.MkdirAll(r.work, 0o755); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	recipePath := filepath.Join(r.out, "recipe.yaml")
	if old, err := os.ReadFile(recipePath); err == nil {
		if string(old) != string(resolved) {
			return nil, fmt.Errorf("%s holds a run of a different recipe (see %s); use another output directory or delete it", r.out, recipePath)
		}
		// An earlier run of this recipe: rank 0 removes what of it
		// this run will not replace.
		if opt.Rank == 0 {
			if err := r.removeStale(); err != nil {
				return nil, err
			}
		}
	} else if opt.Rank == 0 {
		if err := atomicfile.WriteFile(recipePath, resolved, 0o644); err != nil {
			return nil, err
		}
	}
	r.passes = planPasses(cfg.Stages, r.env.globals)
	r.computeKeys(resolved)
	if err := r.removeTemps(); err != nil {
		return nil, err
	}
	if r.metrics, err = openMetrics(filepath.Join(r.out, fmt.Sprintf("metrics-rank%d.jsonl", opt.Rank))); err != nil {
		return nil, err
	}
	defer r.metrics.close() // its error is returned below when the run succeeds
	started := time.Now()
	r.log.Info("curate", "units", len(r.units), "passes", len(r.passes), "stages", strings.Join(cfg.Stages, ","), "rank", opt.Rank, "world", opt.World, "recipe", r.hash)
	if r.allFinished() {
		r.log.Info("every unit is finished for these inputs and this recipe; merging the funnels")
	} else {
		for i := range r.passes {
			if err := r.runPass(ctx, &r.passes[i]); err != nil {
				return nil, err
			}
		}
	}
	if err := r.waitAll(ctx, "the final outputs", len(r.passes)-1); err != nil {
		return nil, err
	}
	st, err := r.mergeStats()
	if err != nil {
		return nil, err
	}
	if opt.Rank == 0 {
		if err := st.writeJSON(filepath.Join(r.out, "stats.json"), r.hash); err != nil {
			return nil, err
		}
		r.cleanWork(cfg.Output.KeepWork)
	}
	removed, kept := st.Total()
	res := &Result{Stats: st, OutputDir: r.out, RecipeHash: r.hash}
	if err := r.metrics.write("done", map[string]any{"rank": opt.Rank, "units": len(r.units),
		"docs_kept": kept.Docs, "bytes_kept": kept.Bytes, "docs_removed": removed.Docs, "bytes_removed": removed.Bytes,
		"seconds": time.Since(started).Seconds()}); err != nil {
		return nil, err
	}
	if err := r.metrics.close(); err != nil {
		return nil, err
	}
	if kept.Docs == 0 {
		return res, nothingKept(st, &cfg)
	}
	return res, nil
}

// ErrNothingKept is wrapped by the error of a run that removed every
// document (Run returns its Result too: the funnel says why).
var ErrNothingKept = errors.New("kept no document")

// nothingKept explains an empty result: when every record missed the text
// field, the fix is input.text_field; otherwise the funnel has the reasons.
func nothingKept(st *Stats, cfg *Config) error {
	in := st.Stages["input"]
	if in == nil || in.In.Docs == 0 {
		return fmt.Errorf("%w: the inputs hold no record (%v)", ErrNothingKept, cfg.Input.Paths)
	}
	if missing := in.Removed["missing_text"]; missing.Docs == in.In.Docs {
		return fmt.Errorf("%w: none of the %d records has the text field %q; set input.text_field (or input.html_field) to the field holding the text — first record: %s",
			ErrNothingKept, in.In.Docs, cfg.Input.TextField, in.Examples["missing_text"])
	}
	top, topRule := int64(-1), ""
	for _, name := range st.Order {
		for rule, c := range st.Stages[name].Removed {
			if c.Docs > top || c.Docs == top && name+"/"+rule < topRule {
				top, topRule = c.Docs, name+"/"+rule
			}
		}
	}
	return fmt.Errorf("%w: all %d input documents were removed, most by %s (%d); see the funnel, stats.json and removed/", ErrNothingKept, in.In.Docs, topRule, top)
}

// Work files: work/pass0/ holds the first pass's files of each unit, valid
// for that unit's inputs; work/plan-KEY/passN/ holds what depends on all
// inputs (decisions and later passes); work/final/ the final marker of
// each unit; work/rank-R/ each rank's lock and scratch space.

// planDir holds the work that depends on every input.
func (r *runner) planDir() string { return filepath.Join(r.work, "plan-"+r.planKey) }

// passDir holds pass p's decision files.
func (r *runner) passDir(p int) string { return filepath.Join(r.planDir(), fmt.Sprintf("pass%d", p)) }

// unitDir holds pass p's files of each unit.
func (r *runner) unitDir(p int) string {
	if p == 0 {
		return filepath.Join(r.work, "pass0")
	}
	return r.passDir(p)
}

func (r *runner) unitFile(p, u int, kind string) string {
	return filepath.Join(r.unitDir(p), fmt.Sprintf("%s-%05d", kind, u))
}

func (r *runner) finalDir() string { return filepath.Join(r.work, "final") }

func (r *runner) finalStats(u int) string {
	return filepath.Join(r.finalDir(), fmt.Sprintf("unit-%05d.json", u))
}

func (r *runner) docsPath(u int) string {
	return filepath.Join(r.out, fmt.Sprintf("docs-%05d.parquet", u))
}
func (r *runner) removedPath(u int) string {
	return filepath.Join(r.out, "removed", fmt.Sprintf("removed-%05d.parquet", u))
}

// passDone is the marker of a finished unit in pass p.
func (r *runner) passDone(p, u int) string {
	if p == len(r.passes)-1 {
		return r.finalStats(u)
	}
	return r.unitFile(p, u, "stats") + ".json"
}

func (r *runner) runPass(ctx context.Context, p *pass) error {
	for _, d := range []string{r.unitDir(p.index), r.passDir(p.index), r.finalDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	// Load the decision of the global stage applied first (dedup
	// decisions are streamed per unit in readPrevious).
	if p.apply != nil {
		if err := p.apply.load(r, p.index-1); err != nil {
			return err
		}
	}
	var mine []reader.Unit
	for _, u := range r.units {
		if u.Index%r.opt.World == r.opt.Rank {
			mine = append(mine, u)
		}
	}
	name := fmt.Sprintf("pass %d/%d", p.index+1, len(r.passes))
	if r.opt.Progress != nil {
		r.opt.Progress.StartPass(name+" "+strings.Join(append(p.locals, stageName(p.collect)), " "), len(mine))
	}
	redo := 0
	for _, u := range mine {
		if r.unitDone(p.index, u.Index) {
			if r.opt.Progress != nil {
				r.opt.Progress.UnitDone(u.Bytes)
			}
			continue
		}
		if _, err := os.Stat(r.passDone(p.index, u.Index)); err == nil {
			redo++
			if redo == 1 {
				r.log.Info("a unit finished by an earlier run does not match the current inputs or recipe; redoing it", "pass", p.index+1, "unit", u.Index, "files", u.Files[0])
			}
		}
		start := time.Now()
		us, err := r.runUnit(ctx, p, u)
		if err != nil {
			return err
		}
		docsIn, bytesIn := int64(0), int64(0)
		if len(us.Order) > 0 {
			first := us.Stages[us.Order[0]]
			docsIn, bytesIn = first.In.Docs, first.In.Bytes
		}
		took := time.Since(start)
		if err := r.metrics.write("unit", map[string]any{"pass": p.index, "unit": u.Index,
			"docs_in": docsIn, "bytes_in": bytesIn, "seconds": took.Seconds(),
			"docs_per_s": rate(docsIn, took), "bytes_per_s": rate(bytesIn, took)}); err != nil {
			return err
		}
		if r.opt.Progress != nil {
			r.opt.Progress.UnitDone(u.Bytes)
		}
	}
	if r.opt.Progress != nil {
		r.opt.Progress.EndPass()
	}
	if redo > 0 {
		r.log.Info("redid units of an earlier run whose inputs or recipe changed", "pass", p.index+1, "units", redo)
	}
	if p.collect == nil {
		return nil
	}
	// Barrier: every unit of this pass, from every rank.
	if err := r.waitAll(ctx, fmt.Sprintf("the %s keys of pass %d", p.collect.name(), p.index+1), p.index); err != nil {
		return err
	}
	return r.decide(ctx, p)
}

// waitAll polls until every unit has finished pass p.
func (r *runner) waitAll(ctx context.Context, what string, p int) error {
	return r.waitFor(ctx, what, len(r.units), func(i int) bool { return r.unitDone(p, r.units[i].Index) }, func(i int) (string, int) {
		u := r.units[i].Index
		return "unit " + strconv.Itoa(u), u % r.opt.World
	})
}

// waitFor polls until done(i) holds for each of n items; item names item
// i and the rank that makes it. It logs what it waits for when it starts
// waiting and every Options.WaitLogEvery, honours ctx, and gives up once
// no item has been done for Options.WaitTimeout.
func (r *runner) waitFor(ctx context.Context, what string, n int, done func(i int) bool, item func(i int) (name string, rank int)) error {
	start := time.Now()
	lastProgress, lastLog := start, time.Time{}
	prev := n + 1
	finished := make([]bool, n)
	for {
		var missing []int
		for i := range n {
			if !finished[i] {
				finished[i] = done(i)
			}
			if !finished[i] {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if r.opt.World == 1 {
			name, _ := item(missing[0])
			return fmt.Errorf("internal: %s: %s (and %d more) unfinished after this rank's work", what, name, len(missing)-1)
		}
		now := time.Now()
		if len(missing) < prev {
			prev, lastProgress = len(missing), now
		}
		names, ranks := describeMissing(missing, item)
		if now.Sub(lastProgress) >= r.opt.WaitTimeout {
			return fmt.Errorf("rank %d of %d gave up waiting for %s after %s without progress: %s of rank %s never appeared; start the missing ranks (same -world %d, same output directory) or raise -wait-timeout",
				r.opt.Rank, r.opt.World, what, now.Sub(lastProgress).Round(time.Millisecond), names, ranks, r.opt.World)
		}
		if now.Sub(lastLog) >= r.opt.WaitLogEvery {
			r.log.Info("waiting for other ranks", "for", what, "missing", names, "ranks", ranks,
				"waited", now.Sub(start).Round(time.Second), "timeout", r.opt.WaitTimeout)
			lastLog = now
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeAfter(r.opt.Poll):
		}
	}
}

// describeMissing names the first missing items ("unit 1, unit 3 … (12
// in all)") and the ranks that owe them ("1,3").
func describeMissing(missing []int, item func(i int) (string, int)) (names, ranks string) {
	const show = 10
	var ns []string
	var rs []int
	for i, m := range missing {
		name, rank := item(m)
		if i < show {
			ns = append(ns, name)
		}
		if !slices.Contains(rs, rank) {
			rs = append(rs, rank)
		}
	}
	names = strings.Join(ns, ", ")
	if len(missing) > show {
		names += fmt.Sprintf(" … (%d in all)", len(missing))
	}
	slices.Sort(rs)
	rank := make([]string, len(rs))
	for i, x := range rs {
		rank[i] = strconv.Itoa(x)
	}
	return names, strings.Join(rank, ",")
}

// item is one document in flight within a chunk.
type item struct {
	rec          docRec
	stage        string // stage that removed it ("" = kept)
	bytesAt      []int64
	sig          []uint64
	key          dedup.Key
	hasKey       bool
	lines        []uint64 // line hashes (line dedup collection)
	linesRemoved []int    // lines removed by each stage run (with bytesAt: the edits)
}

// Chunks of documents are processed in parallel: at most chunkDocs
// documents or chunkBytes bytes of text, whichever comes first, so memory
// does not depend on document sizes.
const (
	chunkDocs  = 1024
	chunkBytes = 32 << 20
)

func (r *runner) runUnit(ctx context.Context, p *pass, u reader.Unit) (*Stats, error) {
	st := newStats()
	var kept *docWriter
	var final *shard.Writer[shard.Row]
	var err error
	last := p.index == len(r.passes)-1
	if last {
		final, err = shard.Create[shard.Row](r.docsPath(u.Index), r.cfg.Output.RowGroupDocs, "herd.recipe", r.hash)
	} else {
		kept, err = createDocfile(r.unitFile(p.index, u.Index, "docs"))
	}
	if err != nil {
		return nil, err
	}
	removed, err := createDocfile(r.unitFile(p.index, u.Index, "removed"))
	if err != nil {
		return nil, err
	}
	var coll collector = noCollector{}
	if p.collect != nil {
		if coll, err = p.collect.collector(r, p.index, u.Index); err != nil {
			return nil, err
		}
	}
	ok := false
	defer func() {
		if !ok {
			if kept != nil {
				kept.abort()
			}
			if final != nil {
				final.Abort()
			}
			removed.abort()
			coll.abort()
		}
	}()
	scratches := make([]*scratch, r.cfg.Workers)
	for i := range scratches {
		if scratches[i], err = r.env.newScratch(); err != nil {
			return nil, err
		}
	}
	buf := make([]*item, 0, chunkDocs)
	bufBytes := 0
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if step, ok := p.apply.(docStep); ok {
			if err := step.prepare(buf); err != nil {
				return err
			}
		}
		r.processChunk(p, buf, scratches, st)
		for _, it := range buf {
			if it.stage != "" {
				if err := removed.put(&it.rec); err != nil {
					return err
				}
				continue
			}
			if err := coll.add(it); err != nil {
				return err
			}
			if last {
				if err := final.Write(shard.FromDoc(&it.rec.doc)); err != nil {
					return err
				}
			} else if err := kept.put(&it.rec); err != nil {
				return err
			}
		}
		clear(buf)
		buf, bufBytes = buf[:0], 0
		return ctx.Err()
	}
	push := func(it *item) error {
		buf = append(buf, it)
		bufBytes += len(it.rec.doc.Text)
		if len(buf) >= chunkDocs || bufBytes >= chunkBytes {
			return flush()
		}
		return nil
	}
	if p.index == 0 {
		err = reader.Read(ctx, u, r.cfg.Input, r.opt.HTML, func(rec *reader.Record) error {
			it := &item{rec: docRec{doc: rec.Doc}}
			st.add("input", "", rec.Bytes)
			reason, detail, cut := r.admit(rec, &it.rec.doc, st)
			if reason != "" {
				if r.cfg.Limits.FailFast && rec.Problem != "" {
					return fmt.Errorf("%s: %s: %s (limits.fail_fast is set)", rec.Doc.Origin, rec.Problem, rec.Detail)
				}
				it.rec.reason, it.rec.detail = "input/"+reason, detail
				it.stage = "input"
				st.remove("input", reason, detail, int64(len(it.rec.doc.Text)))
				st.stage("input").NotTextBytes += rec.Bytes - int64(len(it.rec.doc.Text))
				return removed.put(&it.rec)
			}
			in := st.stage("input")
			in.Truncated.add(cut)
			in.NotTextBytes += rec.Bytes - int64(len(it.rec.doc.Text)) - cut.Bytes
			st.keep("input", int64(len(it.rec.doc.Text)))
			return push(it)
		})
	} else {
		err = r.readPrevious(ctx, p, u.Index, st, removed, push)
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, fmt.Errorf("unit %d (%s): %w", u.Index, u.Files[0], err)
	}
	if err := coll.commit(ctx); err != nil {
		return nil, err
	}
	if err := removed.commit(); err != nil {
		return nil, err
	}
	if last {
		if err := r.writeRemovedParquet(u.Index); err != nil {
			return nil, err
		}
		if err := final.Commit(); err != nil {
			return nil, err
		}
		// The unit's funnel over all passes.
		total := newStats()
		for i := 0; i < p.index; i++ {
			prev, err := readStats(r.unitFile(i, u.Index, "stats") + ".json")
			if err != nil {
				return nil, err
			}
			total.merge(prev)
		}
		total.merge(st)
		if err := total.writeMarker(r.finalStats(u.Index), r.passKey(p.index, u.Index)); err != nil {
			return nil, err
		}
	} else {
		if err := kept.commit(); err != nil {
			return nil, err
		}
		if err := st.writeMarker(r.passDone(p.index, u.Index), r.passKey(p.index, u.Index)); err != nil {
			return nil, err
		}
	}
	ok = true
	return st, nil
}

// admit applies the input limits to a record; it returns a removal
// reason, or what truncation cut.
func (r *runner) admit(rec *reader.Record, d *document.Doc, st *Stats) (reason, detail string, cut Edit) {
	if rec.Problem != "" {
		detail := rec.Doc.Origin + ": " + rec.Detail
		if rec.Problem == "missing_text" {
			detail += "; set input.text_field"
		}
		return rec.Problem, detail, Edit{}
	}
	// Invalid UTF-8: the reader counted it in JSON strings (already
	// replaced by U+FFFD when decoded); other inputs carry the raw bytes.
	bad := rec.InvalidUTF8
	if bad == 0 && !utf8.ValidString(d.Text) {
		for i := 0; i < len(d.Text); {
			r, size := utf8.DecodeRuneInString(d.Text[i:])
			if r == utf8.RuneError && size == 1 {
				bad++
			}
			i += size
		}
	}
	if bad > 0 {
		d.Text = strings.ToValidUTF8(d.Text, "\uFFFD")
		detail := fmt.Sprintf("%s: %d invalid UTF-8 sequences", rec.Doc.Origin, bad)
		if r.cfg.Limits.InvalidUTF8 == "drop" {
			return "invalid_utf8", detail + " (limits.invalid_utf8 = drop)", Edit{}
		}
		st.repaired("input", int64(len(d.Text)))
	}
	if max := r.cfg.Limits.MaxDocBytes; len(d.Text) > max {
		if r.cfg.Limits.Huge == "drop" {
			return "too_large", fmt.Sprintf("%d bytes > limits.max_doc_bytes %d", len(d.Text), max), Edit{}
		}
		end := max
		for end > 0 && !utf8.RuneStart(d.Text[end]) {
			end--
		}
		cut = Edit{Docs: 1, Lines: int64(countLines(d.Text) - countLines(d.Text[:end])), Bytes: int64(len(d.Text) - end)}
		d.Text = d.Text[:end]
		r.log.Debug("truncated a document to limits.max_doc_bytes", "origin", rec.Doc.Origin, "bytes", int64(end)+cut.Bytes, "max", max)
	}
	return "", "", cut
}

// readPrevious streams the previous pass's kept documents, applying the
// decision of the global stage at the start of this pass: a dedup stage's
// removals of this unit are read alongside the documents (both are in
// ordinal order), so memory does not grow with the number of removals.
func (r *runner) readPrevious(ctx context.Context, p *pass, unit int, st *Stats, removed *docWriter, push func(*item) error) error {
	in, err := openDocfile(r.unitFile(p.index-1, unit, "docs"))
	if err != nil {
		return err
	}
	defer in.close()
	// A docStep (token_kl, line_dedup) is applied per document in
	// processChunk; a remover (the dedup stages) drops what its decision
	// lists.
	var drops *dedup.RemovalReader
	next := dedup.Removal{ID: ^uint64(0)}
	advance := func() error {
		rm, err := drops.Next()
		switch {
		case errors.Is(err, io.EOF):
			next = dedup.Removal{ID: ^uint64(0)}
		case err != nil:
			return err
		default:
			next = rm
		}
		return nil
	}
	rm, isRemover := p.apply.(remover)
	if isRemover {
		if drops, err = dedup.OpenRemovals(r.unitDecisionFile(p.index-1, unit)); err != nil {
			return err
		}
		defer drops.Close()
		if err := advance(); err != nil {
			return err
		}
	}
	for {
		it := &item{}
		err := in.next(&it.rec)
		if errors.Is(err, io.EOF) {
			if next.ID != ^uint64(0) {
				return fmt.Errorf("%s: removal of ordinal %d matches no document (delete the work directory to start over)", r.unitDecisionFile(p.index-1, unit), next.ID)
			}
			return nil
		}
		if err != nil {
			return err
		}
		d := &it.rec.doc
		n := int64(len(d.Text))
		if drops != nil {
			st.add(rm.name(), "", n)
			if next.ID < d.Ordinal {
				return fmt.Errorf("%s: removal of ordinal %d matches no document (delete the work directory to start over)", r.unitDecisionFile(p.index-1, unit), next.ID)
			}
			if next.ID == d.Ordinal {
				keep := next.Keep
				it.rec.reason = rm.name() + "/" + rm.rule()
				it.rec.detail = fmt.Sprintf("duplicate of ordinal %d (unit %d, #%d)", keep, keep>>32, uint32(keep))
				st.remove(rm.name(), rm.rule(), it.rec.detail, n)
				if err := removed.put(&it.rec); err != nil {
					return err
				}
				if err := advance(); err != nil {
					return err
				}
				continue
			}
			st.keep(rm.name(), n)
		}
		if err := push(it); err != nil {
			return err
		}
	}
}

// processChunk runs the local stages of p over a chunk of documents in
// parallel (a token_kl or line_dedup decision is applied first, as a
// per-document stage), then computes what the pass's global stage collects.
// Results do not depend on the number of workers.
func (r *runner) processChunk(p *pass, items []*item, scratches []*scratch, st *Stats) {
	seg := p.locals
	var fns []localFunc
	if step, ok := p.apply.(docStep); ok {
		seg = append([]string{step.name()}, seg...)
		fns = append(fns, step.step())
	}
	for _, s := range p.locals {
		fns = append(fns, r.env.local(s))
	}
	collect := p.collect
	r.parallel(items, scratches, func(it *item, s *scratch) {
		if it.stage != "" {
			return
		}
		it.bytesAt, it.linesRemoved = it.bytesAt[:0], it.linesRemoved[:0]
		s.an.Reset() // a new document: drop the shared analysis of the last one
		for i, fn := range fns {
			it.bytesAt = append(it.bytesAt, int64(len(it.rec.doc.Text)))
			v := fn(&it.rec.doc, s)
			it.linesRemoved = append(it.linesRemoved, v.linesRemoved)
			if v.rule != "" {
				it.stage = seg[i]
				it.rec.reason = seg[i] + "/" + v.rule
				it.rec.detail = v.detail
				return
			}
		}
		it.bytesAt = append(it.bytesAt, int64(len(it.rec.doc.Text)))
		if collect != nil {
			collect.key(it, s)
		}
	})
	// Funnel accounting, in order.
	for _, it := range items {
		if it.stage == "input" || (it.stage != "" && indexOf(seg, it.stage) < 0) {
			continue
		}
		for i, s := range seg {
			if i >= len(it.bytesAt) {
				break
			}
			st.add(s, "", it.bytesAt[i])
			if it.stage == s {
				st.remove(s, strings.TrimPrefix(it.rec.reason, s+"/"), it.rec.detail, it.bytesAt[i])
				break
			}
			st.keep(s, it.bytesAt[i+1])
			if cut := it.bytesAt[i] - it.bytesAt[i+1]; cut != 0 || it.linesRemoved[i] != 0 {
				st.edited(s, int64(it.linesRemoved[i]), cut)
			}
		}
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// parallel runs fn over items on len(scratches) goroutines, each taking a
// contiguous block (deterministic: fn only touches its own item).
func (r *runner) parallel(items []*item, scratches []*scratch, fn func(*item, *scratch)) {
	w := len(scratches)
	if w <= 1 || len(items) < 2 {
		for _, it := range items {
			fn(it, scratches[0])
		}
		return
	}
	var wg conc.WaitGroup
	next := make(chan int, (len(items)+63)/64)
	for i := 0; i < len(items); i += 64 {
		next <- i
	}
	close(next)
	for k := range w {
		s := scratches[k]
		wg.Go(func() {
			for i := range next {
				for _, it := range items[i:min(i+64, len(items))] {
					fn(it, s)
				}
			}
		})
	}
	wg.Wait()
}

// cleanWork removes, once every unit is finished, the work of other
// inputs (plan directories of other keys, and the layout of older
// versions: work/passN, work/stats) and, unless keep, the pass files of
// this run. The final markers stay, so a rerun finds the run finished.
func (r *runner) cleanWork(keep bool) {
	entries, err := os.ReadDir(r.work)
	if err != nil {
		r.log.Warn("could not list the work files to remove them", "dir", r.work, "err", err)
	}
	for _, e := range entries {
		name := e.Name()
		stale := false
		switch {
		case strings.HasPrefix(name, "plan-"):
			stale = !keep || name != filepath.Base(r.planDir())
		case name == "pass0":
			stale = !keep
		case strings.HasPrefix(name, "pass") && strings.Trim(name[len("pass"):], "0123456789") == "", name == "stats":
			stale = true
		}
		if stale && e.IsDir() {
			if err := os.RemoveAll(filepath.Join(r.work, name)); err != nil {
				r.log.Warn("could not remove work files", "dir", filepath.Join(r.work, name), "err", err)
			}
		}
	}
}
