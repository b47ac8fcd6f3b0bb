package tasks

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/zeebo/xxh3"
)

// Task is one task family.
type Task interface {
	// Name is the task's name, as Names lists it.
	Name() string
	// Sample draws one problem: the user prompt text and its one correct
	// answer text.
	Sample(rng *rand.Rand) (prompt, answer string)
	// Verify reports whether response answers prompt correctly (tolerant of
	// surrounding whitespace only). The error is non-nil when the prompt
	// is not one of this task's prompts.
	Verify(prompt, response string) (bool, error)
	// Wrong returns a plausible but incorrect answer to the prompt (for
	// rejected responses), never equal to a correct one. When prompt is
	// not one of this task's prompts, it returns a text different from
	// answer.
	Wrong(rng *rand.Rand, prompt, answer string) string
}

// builtin is a built-in task, which also recognises its prompts' form so
// that the package-level Verify can route a prompt to it.
type builtin interface {
	Task
	// claims reports whether prompt has this task's form (it may still be
	// malformed in its details).
	claims(prompt string) bool
}

// PCG streams of the writers: one draws the problems, the other the wrong
// answers, so WritePref's prompts equal WriteSFT's for a seed.
const (
	streamProblems = 0x7461736b73 // "tasks"
	streamWrong    = 0x77726f6e67 // "wrong"
	streamEval     = 0x6576616c00 // "eval", plus the task's index
)

// builtins returns the built-in tasks, sorted by name.
func builtins() []builtin {
	return []builtin{
		arith{name: "add", op: '+'},
		list{name: "first", prefix: "First:", alphabet: letters, op: opFirst, distinct: true},
		list{name: "last", prefix: "Last:", alphabet: letters, op: opLast, distinct: true},
		list{name: "max", prefix: "Max:", alphabet: digits, op: opMax},
		list{name: "reverse", prefix: "Reverse:", alphabet: letters, op: opReverse, distinct: true},
		list{name: "sort", prefix: "Sort:", alphabet: digits, op: opSort},
		arith{name: "sub", op: '-'},
	}
}

// Names returns the sorted names of the built-in tasks.
func Names() []string {
	var names []string
	for _, t := range builtins() {
		names = append(names, t.Name())
	}
	slices.Sort(names)
	return names
}

// Get returns the built-in task called name; the error lists the valid names.
func Get(name string) (Task, error) {
	for _, t := range builtins() {
		if t.Name() == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("tasks: unknown task %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// Verify finds the task by the prompt's form and reports whether response
// answers prompt correctly. task is the name of the task whose form the
// prompt has, or "" when it has none; err is non-nil when the prompt is not
// a valid prompt of any task.
func Verify(prompt, response string) (ok bool, task string, err error) {
	for _, t := range builtins() {
		if t.claims(prompt) {
			ok, err := t.Verify(prompt, response)
			return ok, t.Name(), err
		}
	}
	return false, "", fmt.Errorf("tasks: %w: %q has the form of no task (%s)", ErrPrompt, clip(prompt), strings.Join(Names(), ", "))
}

// heldOutEvery is the share of each task's prompts held out of training:
// one in heldOutEvery, by a hash of the prompt text.
const heldOutEvery = 8

// HeldOut reports whether prompt belongs to the held-out split: about one
// prompt in eight of every task, chosen by a hash of its text, so the
// split is the same whatever the seed, the writer or the order. The
// writers never emit held-out prompts; Problems serves either split.
func HeldOut(prompt string) bool {
	return xxh3.HashString(strings.TrimSpace(prompt))%heldOutEvery == 0
}

// draw samples t until the prompt is in the wanted split.
func draw(t Task, rng *rand.Rand, heldOut bool) (prompt, answer string) {
	for {
		prompt, answer = t.Sample(rng)
		if HeldOut(prompt) == heldOut {
			return prompt, answer
		}
	}
}

// Problem is one drawn problem.
type Problem struct {
	Task   string
	Prompt string
	Answer string
}

// Problems draws n problems of each named task (all when names is empty)
// from the held-out split (heldOut) or the training split, distinct
// within a task, deterministic for seed. A task with fewer distinct
// prompts in the split gives what it has after a bounded number of draws.
func Problems(names []string, n int, seed uint64, heldOut bool) ([]Problem, error) {
	if n < 0 {
		return nil, fmt.Errorf("tasks: negative problem count %d", n)
	}
	if len(names) == 0 {
		names = Names()
	}
	var out []Problem
	for ti, name := range names {
		t, err := Get(name)
		if err != nil {
			return nil, err
		}
		rng := rand.New(rand.NewPCG(seed, streamEval+uint64(ti)))
		seen := map[string]bool{}
		for tries := 0; len(seen) < n && tries < 64*n+1024; tries++ {
			prompt, answer := draw(t, rng, heldOut)
			if seen[prompt] {
				continue
			}
			seen[prompt] = true
			out = append(out, Problem{Task: name, Prompt: prompt, Answer: answer})
		}
	}
	return out, nil
}

// sftRow is a TRL prompt-completion row.
type sftRow struct {
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
}

// prefRow is a TRL standard-format preference row.
type prefRow struct {
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
}

// WriteSFT writes n JSONL rows {"prompt": ..., "completion": ...} of the
// training split (see HeldOut) drawn round-robin from the named tasks (all built-in tasks when names is empty;
// a name may repeat to weight its task), deterministic for seed.
func WriteSFT(w io.Writer, names []string, n int, seed uint64) error {
	return writeRows(w, names, n, seed, "sft", func(t Task, prompt, answer string, _ *rand.Rand) any {
		return sftRow{Prompt: prompt, Completion: answer}
	})
}

// WritePref writes n JSONL rows {"prompt": ..., "chosen": correct,
// "rejected": Wrong(...)} drawn like WriteSFT's: for the same names and
// seed, the prompts and chosen answers are WriteSFT's rows.
func WritePref(w io.Writer, names []string, n int, seed uint64) error {
	return writeRows(w, names, n, seed, "preference", func(t Task, prompt, answer string, wrong *rand.Rand) any {
		return prefRow{Prompt: prompt, Chosen: answer, Rejected: t.Wrong(wrong, prompt, answer)}
	})
}

// writeRows draws n problems round-robin from the named tasks and writes the
// row that row makes of each as a JSON line.
func writeRows(w io.Writer, names []string, n int, seed uint64, kind string, row func(t Task, prompt, answer string, wrong *rand.Rand) any) error {
	if n < 0 {
		return fmt.Errorf("tasks: write %s rows: negative row count %d", kind, n)
	}
	if len(names) == 0 {
		names = Names()
	}
	ts := make([]Task, len(names))
	for i, name := range names {
		t, err := Get(name)
		if err != nil {
			return fmt.Errorf("tasks: write %s rows: %w", kind, err)
		}
		ts[i] = t
	}
	problems := rand.New(rand.NewPCG(seed, streamProblems))
	wrong := rand.New(rand.NewPCG(seed, streamWrong))
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range n {
		t := ts[i%len(ts)]
		prompt, answer := draw(t, problems, false)
		if err := enc.Encode(row(t, prompt, answer, wrong)); err != nil {
			return fmt.Errorf("tasks: write %s row %d (%s): %w", kind, i, t.Name(), err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("tasks: write %s rows: %w", kind, err)
	}
	return nil
}

// ErrPrompt is wrapped by every error about a prompt that is not one of a
// task's prompts (Task.Verify and Verify).
var ErrPrompt = errors.New("not a task prompt")

// formError reports that prompt is not one of task's prompts, and why.
func formError(task, prompt, why string) error {
	return fmt.Errorf("tasks: %s: %w: %q: %s", task, ErrPrompt, clip(prompt), why)
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
