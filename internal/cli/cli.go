// Package cli is what herd's recipe commands (pretrain, posttrain,
// curate) share besides their own verbs: one flag vocabulary (-recipe,
// -out, -workers with -threads as its deprecated alias, -print-recipe,
// -explain, -v), recipe loading with key=value overrides, the `cp` verb,
// the logger and progress bar, and the exit codes (0; 1 for a failed run;
// 2 for a bad command line; 130/143 after Ctrl-C or SIGTERM).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/herdml/herd/internal/interrupt"
	"github.com/herdml/herd/recipes"
	"github.com/herdml/herd/train"
)

// UsageError is a mistake in the command line (exit status 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// usagef returns a UsageError.
func usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// RunFunc is a command's body.
type RunFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Main runs a command under a context that Ctrl-C and SIGTERM cancel,
// prints its error prefixed with name and exits with ExitCode.
func Main(name string, run RunFunc) {
	ctx, stop := interrupt.Context(context.Background())
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	code := ExitCode(ctx, err)
	stop()
	if err != nil && !(interrupt.ExitCode(ctx) != 0 && errors.Is(err, context.Canceled)) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	os.Exit(code)
}

// ExitCode is the exit status of a command that returned err under ctx:
// the signal's (130, 143) when one stopped it — a shell's && chain must
// not carry on as if it had finished — else 2 for a UsageError, 1 for
// another error, 0.
func ExitCode(ctx context.Context, err error) int {
	if code := interrupt.ExitCode(ctx); code != 0 {
		return code
	}
	var ue UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// Parse parses args with fs; -h gives help (true, nil), a bad flag a
// UsageError.
func Parse(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, UsageError{err}
	}
	return false, nil
}

// RecipeFlags are the flags every recipe command shares.
type RecipeFlags struct {
	Tool        recipes.Tool
	Recipe      string
	Out         string
	Workers     int // -1: not given
	PrintRecipe bool
	Explain     string
	Verbose     bool
	stderr      io.Writer
}

// Register adds the shared flags to fs: -recipe, -out, -workers (and
// -threads, its deprecated alias), -print-recipe, -explain and -v.
func (f *RecipeFlags) Register(fs *flag.FlagSet, tool recipes.Tool) {
	f.RegisterRecipe(fs, tool)
	fs.Func("workers", "compute goroutines, 0 = all cores (overrides the recipe's workers)", f.setWorkers)
	fs.Func("threads", "deprecated alias of -workers", func(s string) error {
		fmt.Fprintln(f.stderr, "note: -threads is deprecated; use -workers")
		return f.setWorkers(s)
	})
	fs.BoolVar(&f.PrintRecipe, "print-recipe", false, "validate the resolved recipe, print it with every key's doc as a comment, and exit")
	fs.StringVar(&f.Explain, "explain", "", "print the doc and value of a recipe key (optim.lr), of every key of a section (optim), or of all keys (all), and exit")
	fs.BoolVar(&f.Verbose, "v", false, "debug logging")
}

// RegisterRecipe adds only -recipe and -out (for verbs such as validate
// that load a recipe but run nothing).
func (f *RecipeFlags) RegisterRecipe(fs *flag.FlagSet, tool recipes.Tool) {
	f.Tool = tool
	f.stderr = fs.Output()
	f.Workers = -1
	fs.StringVar(&f.Recipe, "recipe", "", "recipe file or shipped recipe name ("+strings.Join(tool.Shipped(), ", ")+"; '"+tool.Name+" cp NAME FILE' copies one with its comments)")
	fs.StringVar(&f.Out, "out", "", "output directory (overrides the recipe's)")
}

func (f *RecipeFlags) setWorkers(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a number of goroutines >= 0 (0 = all cores), got %q", s)
	}
	f.Workers = n
	return nil
}

// Load resolves the recipe: defaults, the recipe file or shipped recipe
// (another tool's is refused), the key=value overrides, then -out and
// -workers into the fields that fields points to.
func Load[T any](f *RecipeFlags, defaults T, overrides []string, fields func(cfg *T) (out *string, workers *int)) (T, error) {
	cfg, err := recipes.LoadFor(f.Tool, f.Recipe, defaults, overrides)
	if err != nil {
		return cfg, err
	}
	out, workers := fields(&cfg)
	if f.Out != "" {
		*out = f.Out
	}
	if f.Workers >= 0 {
		*workers = f.Workers
	}
	return cfg, nil
}

// Inspect handles -explain and -print-recipe for the resolved recipe cfg:
// it reports whether one was given (the command is then done). check
// validates the recipe (an invalid one is not printed) and may return a
// note, printed to stderr.
func (f *RecipeFlags) Inspect(stdout, stderr io.Writer, cfg any, check func() (note string, err error)) (bool, error) {
	if f.Explain != "" {
		text, err := recipes.Explain(f.Tool.Name, cfg, f.Explain)
		if err != nil {
			return true, UsageError{err}
		}
		_, err = io.WriteString(stdout, text)
		return true, err
	}
	if !f.PrintRecipe {
		return false, nil
	}
	note, err := check()
	if err != nil {
		return true, fmt.Errorf("recipe: %w", err)
	}
	if note != "" {
		fmt.Fprintln(stderr, "note:", note)
	}
	text, err := recipes.MarshalDocumented(f.Tool.Name, cfg)
	if err != nil {
		return true, err
	}
	_, err = stdout.Write(text)
	return true, err
}

// NeedRecipe is the error of a run without -recipe.
func (f *RecipeFlags) NeedRecipe() error {
	return usagef("-recipe is required (a file or one of: %s)", strings.Join(f.Tool.Shipped(), ", "))
}

// Output returns the run's logger and, when stderr is a terminal with a
// known width, a progress bar (named name) that the log lines print above.
// Elsewhere — a file, a pipe, a terminal without a size (a pty of 0
// columns) — there is no bar and the trainer logs a line every few steps.
func Output(stderr io.Writer, verbose bool, name string) (*slog.Logger, *train.Progress) {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	var bar *train.Progress
	logOut := stderr
	if SizedTerminal(stderr) {
		bar = train.NewProgress(stderr, name)
		logOut = bar
	}
	return slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})), bar
}

// SizedTerminal reports whether w is a terminal whose width is known and
// not zero (a progress bar needs one).
func SizedTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0
}

// Copy is the `cp NAME FILE` verb: it writes the shipped recipe NAME, as
// shipped (comments and all), to FILE, which must not exist yet.
func Copy(tool recipes.Tool, args []string, stdout io.Writer) error {
	if len(args) != 2 || strings.HasPrefix(args[0], "-") {
		return usagef("usage: %s cp NAME FILE (NAME: %s)", tool.Name, strings.Join(tool.Shipped(), ", "))
	}
	name, file := strings.TrimSuffix(args[0], ".yaml"), args[1]
	if err := tool.CheckShipped(name); err != nil {
		return UsageError{err}
	}
	data, err := recipes.ReadShipped(name)
	if err != nil {
		return UsageError{err}
	}
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		file = filepath.Join(file, name+".yaml")
	}
	out, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return usagef("%s exists; herd does not overwrite it: remove it or choose another name", file)
	}
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		out.Close()
		os.Remove(file)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(file)
		return err
	}
	fmt.Fprintf(stdout, "copied the shipped recipe %s to %s; run it with `%s -recipe %s`\n", name, file, tool.Name, file)
	return nil
}

// Validate is a recipe tool's `validate` verb: it parses -recipe, -out and
// the key=value overrides in args, resolves the recipe with load, checks
// it with check (which may return a note, printed before "ok") and prints
// "ok" — writing nothing else.
func Validate[T any](tool recipes.Tool, args []string, stdout, stderr io.Writer, load func(*RecipeFlags, []string) (T, error), check func(T) (note string, err error)) error {
	fs := flag.NewFlagSet(tool.Name+" validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rf RecipeFlags
	rf.RegisterRecipe(fs, tool)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s validate -recipe NAME|FILE [-out DIR] [key=value ...]\n  prints ok, or what is wrong with the resolved recipe (exit 1); writes nothing\n\nflags:\n", tool.Name)
		fs.PrintDefaults()
	}
	if help, err := Parse(fs, args); help || err != nil {
		return err
	}
	if rf.Recipe == "" {
		return usagef("validate: %w", rf.NeedRecipe())
	}
	r, err := load(&rf, fs.Args())
	if err != nil {
		return err
	}
	note, err := check(r)
	if err != nil {
		return fmt.Errorf("recipe: %w", err)
	}
	if note != "" {
		fmt.Fprintln(stdout, "note:", note)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
