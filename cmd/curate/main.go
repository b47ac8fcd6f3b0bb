// Command curate turns raw documents into clean, deduplicated,
// quality-scored Parquet shards.
//
//	curate -recipe curate_web -out curated/ input.paths=[crawl/] filters.gopher.min_words=20
//	curate -recipe curate_gosrc -out gosrc/
//	curate train-classifier -class hq=good/ -class lq=bad/ -out quality.model
//	curate gen-synthetic -out synth/ -bytes 1G
//	curate -recipe curate_web -print-recipe             → the resolved recipe (validated; -print-defaults is an alias)
//	curate validate -recipe curate_web [key=value ...]  → "ok" or the problem (exit 1)
//	curate inspect [-rows 3] curated/docs-00000.parquet → schema, created_by, metadata and first rows
//	curate -recipe curate_web -explain filters.gopher   → the docs and values of recipe keys
//	curate cp curate_web my.yaml                        → a shipped recipe, comments and all, to edit
//
// A run prints the funnel: per stage, documents and bytes in, out,
// removed and edited (lines cut from kept documents, truncation at
// limits.max_doc_bytes), then each removal rule; stats.json holds the same,
// removed/ every removed document with its reason and detail, and
// metrics-rankR.jsonl one line per finished unit. A run that keeps no
// document fails (exit 1) after writing them.
//
// Arguments after the flags are key=value overrides of recipe fields; list
// elements are addressed by index (`stages.0=normalize`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/herdml/herd/cluster"
	"github.com/herdml/herd/data/curate"
	"github.com/herdml/herd/data/htmltext"
	"github.com/herdml/herd/internal/cli"
	"github.com/herdml/herd/internal/report"
	"github.com/herdml/herd/recipes"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal cancels the run, which stops within moments; a
	// second one ends the process at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "train-classifier":
		err = trainClassifier(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "gen-synthetic":
		err = genSynthetic(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "validate":
		err = validate(os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "inspect":
		err = inspect(os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "cp":
		err = cli.Copy(tool, os.Args[2:], os.Stdout)
	default:
		err = run(ctx, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "curate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("curate", flag.ContinueOnError)
	recipe := fs.String("recipe", "", recipeHelp)
	out := fs.String("out", "", "output directory (overrides output.dir)")
	rank := fs.Int("rank", 0, "this worker's rank (default: from MPI/Slurm/Kubernetes env, else 0)")
	world := fs.Int("world", 0, "number of workers (default: from env, else 1)")
	workers := fs.Int("workers", 0, "goroutines for per-document work (overrides workers; 0 = all cores)")
	printRecipe := fs.Bool("print-recipe", false, "validate the resolved recipe, print it and exit")
	printDefaults := fs.Bool("print-defaults", false, "the same as -print-recipe (an older name)")
	explain := fs.String("explain", "", "print the doc and value of a recipe key (filters.gopher.min_words), of every key of a section (filters), or of all keys (all), and exit")
	fs.Func("threads", "deprecated alias of -workers", func(v string) error {
		fmt.Fprintln(os.Stderr, "note: -threads is deprecated; use -workers")
		return fs.Set("workers", v)
	})
	verbose := fs.Bool("v", false, "debug logging")
	waitTimeout := fs.Duration("wait-timeout", time.Hour, "multi-rank: give up when no other rank's file has appeared for this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: curate [flags] [key=value ...]\n       curate validate -recipe NAME|FILE [-out DIR] [key=value ...]\n       curate cp NAME FILE\n       curate inspect [-rows N] FILE.parquet ...\n       curate train-classifier -class LABEL=PATH ... -out FILE\n       curate gen-synthetic -out DIR [-bytes SIZE]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["rank"] && *rank < 0:
		return fmt.Errorf("-rank %d: must be ≥ 0 and < -world", *rank)
	case set["world"] && *world < 1:
		return fmt.Errorf("-world %d: must be ≥ 1 (the number of processes sharing the output)", *world)
	case *workers < 0:
		return fmt.Errorf("-workers %d: must be ≥ 0 (0 = all cores)", *workers)
	case *waitTimeout <= 0:
		return fmt.Errorf("-wait-timeout %s: must be > 0", *waitTimeout)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if os.Getenv("GOROOT") == "" {
		os.Setenv("GOROOT", goroot())
	}
	cfg, err := load(*recipe, *out, *workers, fs.Args())
	if err != nil {
		return err
	}
	if *explain != "" {
		text, err := recipes.Explain(tool.Name, cfg, *explain)
		if err != nil {
			return err
		}
		_, err = os.Stdout.WriteString(text)
		return err
	}
	if *printRecipe || *printDefaults {
		note, err := check(cfg)
		if err != nil {
			return fmt.Errorf("recipe: %w", err)
		}
		if note != "" {
			fmt.Fprintln(os.Stderr, "note:", note)
		}
		b, err := recipes.MarshalDocumented(tool.Name, cfg)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	}
	opt := curate.Options{Logger: log, HTML: htmltext.Extractor{}, WaitTimeout: *waitTimeout}
	r, w, src, ok, err := cluster.RankFromEnv(nil)
	if err != nil {
		return err
	}
	if ok {
		opt.Rank, opt.World = r, w
		log.Info("rank from environment", "variable", src, "rank", r, "world", w)
	}
	if set["rank"] {
		opt.Rank = *rank
	}
	if set["world"] {
		opt.World = *world
	}
	// A bar needs a terminal with a width; elsewhere progress is logged.
	interactive := cli.SizedTerminal(os.Stderr)
	if interactive {
		p := newBars()
		defer p.wait()
		opt.Progress = p
	}
	res, err := curate.Run(ctx, cfg, opt)
	if res == nil {
		return err
	}
	res.Stats.PrintFunnel(os.Stdout)
	removed, kept := res.Stats.Total()
	edited := res.Stats.Edits()
	fmt.Printf("\nkept %d documents (%.2f MB), removed %d; edits cut %d lines (%.2f MB) from documents their stage kept; outputs in %s (recipe %s)\n",
		kept.Docs, float64(kept.Bytes)/1e6, removed.Docs, edited.Lines, float64(edited.Bytes)/1e6, res.OutputDir, res.RecipeHash)
	// The rank that wrote stats.json also writes report.html from it.
	if rerr := report.WriteCuration(res.OutputDir); rerr == nil {
		fmt.Printf("report: %s\n", filepath.Join(res.OutputDir, report.File))
	} else if !errors.Is(rerr, os.ErrNotExist) && err == nil {
		return fmt.Errorf("report: %w", rerr)
	}
	return err
}

// tool is this command among the recipe tools: its shipped recipes are
// the curate_* ones.
var tool = recipes.ToolNamed("curate")

var recipeHelp = "recipe file or shipped recipe name (" + strings.Join(tool.Shipped(), ", ") + ")"

// load resolves a recipe: the file or shipped recipe, the key=value
// overrides, then the -out and -workers flags (workers 0: unset).
func load(recipe, out string, workers int, overrides []string) (curate.Config, error) {
	cfg, err := recipes.LoadFor(tool, recipe, curate.Default(), overrides)
	if err != nil {
		return cfg, err
	}
	if out != "" {
		cfg.Output.Dir = out
	}
	if workers > 0 {
		cfg.Workers = workers
	}
	return cfg, nil
}

// check validates a resolved recipe as a run would, except that an unset
// output.dir (usually given at run time with -out) is only noted.
func check(cfg curate.Config) (note string, err error) {
	if cfg.Output.Dir == "" {
		cfg.Output.Dir = "unset"
		note = "output.dir is not set: pass -out DIR when running"
	}
	return note, cfg.Validate()
}

// validate loads and checks a recipe without writing anything.
func validate(args []string, stdout, stderr io.Writer) error {
	return cli.Validate(tool, args, stdout, stderr, func(rf *cli.RecipeFlags, overrides []string) (curate.Config, error) {
		return load(rf.Recipe, rf.Out, 0, overrides)
	}, check)
}

// goroot returns the Go root for recipes that read $GOROOT/src.
func goroot() string {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		if s := strings.TrimSpace(string(out)); s != "" {
			return s
		}
	}
	return runtime.GOROOT()
}
