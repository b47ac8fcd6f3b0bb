package tasks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/herdml/herd/data/chatdata"
)

// samples is how many problems the property tests draw per task.
const samples = 2000

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }

func mustGet(t *testing.T, name string) Task {
	t.Helper()
	task, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func TestNamesAndGet(t *testing.T) {
	want := []string{"add", "first", "last", "max", "reverse", "sort", "sub"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range want {
		if got := mustGet(t, name).Name(); got != name {
			t.Errorf("Get(%q).Name() = %q", name, got)
		}
	}
	for _, name := range []string{"", "mul", "Add"} {
		_, err := Get(name)
		if err == nil {
			t.Fatalf("Get(%q): no error", name)
		}
		for _, valid := range want {
			if !strings.Contains(err.Error(), valid) {
				t.Errorf("Get(%q) error %q does not list %q", name, err, valid)
			}
		}
	}
}

// TestSample checks that every sampled answer verifies, through the task and
// through the package's routing, and that prompts and answers stay short.
func TestSample(t *testing.T) {
	tests := []struct {
		name      string
		maxPrompt int // longest prompt in bytes
		maxAnswer int // longest answer in bytes
	}{
		{"add", len("What is 99 + 99?"), 3},
		{"sub", len("What is 99 - 99?"), 2},
		{"reverse", len("Reverse: a b c d e"), 9},
		{"sort", len("Sort: 1 2 3 4 5"), 9},
		{"first", len("First: a b c d e"), 1},
		{"last", len("Last: a b c d e"), 1},
		{"max", len("Max: 1 2 3 4 5"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := mustGet(t, tt.name)
			rng := newRNG(1)
			seen := map[string]bool{}
			for range samples {
				prompt, answer := task.Sample(rng)
				seen[prompt] = true
				if len(prompt) > tt.maxPrompt || len(answer) > tt.maxAnswer || answer == "" {
					t.Fatalf("sample %q → %q: longer than %d/%d bytes or empty", prompt, answer, tt.maxPrompt, tt.maxAnswer)
				}
				ok, err := task.Verify(prompt, answer)
				if err != nil || !ok {
					t.Fatalf("Verify(%q, %q) = %v, %v; want true", prompt, answer, ok, err)
				}
				ok, name, err := Verify(prompt, answer)
				if err != nil || !ok || name != tt.name {
					t.Fatalf("package Verify(%q, %q) = %v, %q, %v; want true, %q", prompt, answer, ok, name, err, tt.name)
				}
			}
			if len(seen) < 50 {
				t.Errorf("only %d distinct prompts in %d samples", len(seen), samples)
			}
		})
	}
}

// TestWrong checks that wrong answers never verify, never equal the answer,
// and have the answer's shape, for sampled prompts and for edge cases
// (repeated items, single items, zero and negative results).
func TestWrong(t *testing.T) {
	tests := []struct {
		name  string
		extra []string // prompts beyond the sampled ones
	}{
		{"add", []string{"What is 0 + 0?", "What is 5 + 5?", "What is 99 + 99?", "What is 999999999 + 999999999?"}},
		{"sub", []string{"What is 0 - 0?", "What is 3 - 7?", "What is 10 - 0?", "What is 0 - 999999999?"}},
		{"reverse", []string{"Reverse: a", "Reverse: a a a", "Reverse: a b a", "Reverse: z z z z z z"}},
		{"sort", []string{"Sort: 5", "Sort: 3 3 3", "Sort: 1 2 3", "Sort: 0 0", "Sort: 9 9", "Sort: 2 1 2"}},
		{"first", []string{"First: a", "First: a a a", "First: z y"}},
		{"last", []string{"Last: a", "Last: b b", "Last: z y"}},
		{"max", []string{"Max: 5", "Max: 3 3 3", "Max: 9 9 1", "Max: 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := mustGet(t, tt.name)
			rng := newRNG(2)
			wrongRNG := newRNG(3)
			prompts := slices.Clone(tt.extra)
			for range samples {
				p, _ := task.Sample(rng)
				prompts = append(prompts, p)
			}
			for _, prompt := range prompts {
				answer := correct(t, task, prompt)
				for range 20 {
					w := task.Wrong(wrongRNG, prompt, answer)
					ok, err := task.Verify(prompt, w)
					if err != nil || ok || w == answer {
						t.Fatalf("Wrong(%q) = %q (answer %q): Verify = %v, %v", prompt, w, answer, ok, err)
					}
					if strings.Count(w, " ") != strings.Count(answer, " ") {
						t.Fatalf("Wrong(%q) = %q has another shape than %q", prompt, w, answer)
					}
				}
			}
		})
	}
}

// correct returns the answer of prompt, computed by the task's own parser
// and solver (the sampled answers are checked against Verify in TestSample).
func correct(t *testing.T, task Task, prompt string) string {
	t.Helper()
	var answer string
	switch tk := task.(type) {
	case arith:
		n, err := tk.solve(prompt)
		if err != nil {
			t.Fatal(err)
		}
		answer = strconv.Itoa(n)
	case list:
		items, err := tk.parse(prompt)
		if err != nil {
			t.Fatal(err)
		}
		answer = join(tk.solve(items))
	default:
		t.Fatalf("unknown task type %T", task)
	}
	if ok, err := task.Verify(prompt, answer); err != nil || !ok {
		t.Fatalf("Verify(%q, %q) = %v, %v", prompt, answer, ok, err)
	}
	return answer
}

func TestWrongForeignPrompt(t *testing.T) {
	for _, name := range Names() {
		task := mustGet(t, name)
		for _, answer := range []string{"0", " 0 ", "x", ""} {
			if w := task.Wrong(newRNG(4), "not a prompt", answer); w == strings.TrimSpace(answer) {
				t.Errorf("%s: Wrong(foreign prompt, %q) = %q", name, answer, w)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		prompt, response string
		ok               bool
		task             string // "" with wantErr: no task has the form
		wantErr          bool
	}{
		// Correct answers, with surrounding white space.
		{"What is 37 + 58?", "95", true, "add", false},
		{"What is 37 + 58?", " 95\n", true, "add", false},
		{"  What is 37 + 58?\n", "\t95 ", true, "add", false},
		{"What is 82 - 17?", "65", true, "sub", false},
		{"What is 3 - 7?", "-4", true, "sub", false},
		{"Reverse: k q a m", "m a q k", true, "reverse", false},
		{"Reverse: k q a m", "\nm a q k\n", true, "reverse", false},
		{"Sort: 7 2 9 4", "2 4 7 9", true, "sort", false},
		{"Sort: 7 2 7", " 2 7 7 ", true, "sort", false},
		{"First: k q a m", "k", true, "first", false},
		{"Last: k q a m", " m\n", true, "last", false},
		{"Max: 7 2 9 4", "9", true, "max", false},
		{"First: k q a m", "m", false, "first", false},
		{"Last: k q a m", "k", false, "last", false},
		{"Max: 7 2 9 4", "7", false, "max", false},
		{"Max: 7 x", "7", false, "max", true},
		// Wrong answers and inner white space.
		{"What is 37 + 58?", "96", false, "add", false},
		{"What is 37 + 58?", "59", false, "add", false},
		{"What is 37 + 58?", "095", false, "add", false},
		{"What is 37 + 58?", "+95", false, "add", false},
		{"What is 37 + 58?", "9 5", false, "add", false},
		{"What is 37 + 58?", "95.", false, "add", false},
		{"What is 37 + 58?", "", false, "add", false},
		{"What is 82 - 17?", "-65", false, "sub", false},
		{"Reverse: k q a m", "k q a m", false, "reverse", false},
		{"Reverse: k q a m", "m  a q k", false, "reverse", false},
		{"Reverse: k q a m", "maqk", false, "reverse", false},
		{"Sort: 7 2 9 4", "2 4 9 7", false, "sort", false},
		{"Sort: 7 2 9 4", "2 4 7", false, "sort", false},
		{"Sort: 7 2 9 4", "2,4,7,9", false, "sort", false},
		// Malformed prompts of a task's form.
		{"What is 37 + ?", "37", false, "add", true},
		{"What is 037 + 5?", "42", false, "add", true},
		{"What is 37 + 58", "95", false, "add", true},
		{"What is -3 + 5?", "2", false, "add", true},
		{"What is 1234567890 + 1?", "1234567891", false, "add", true},
		{"What is 3 - -4?", "7", false, "sub", true},
		{"Reverse: k  q", "q k", false, "reverse", true},
		{"Reverse: K q", "q K", false, "reverse", true},
		{"Reverse: kq", "qk", false, "reverse", true},
		{"Reverse:", "", false, "reverse", true},
		{"Reverse: " + strings.Repeat("a ", maxItems) + "a", "", false, "reverse", true},
		{"Sort: 1 a", "1 a", false, "sort", true},
		{"Sort: 10 2", "2 10", false, "sort", true},
		{"Sort:1 2", "1 2", false, "sort", true},
		// No task's form.
		{"", "", false, "", true},
		{"Hello", "hi", false, "", true},
		{"What is 3 * 4?", "12", false, "", true},
		{"reverse: a b", "b a", false, "", true},
		{"What is 3+4?", "7", false, "", true},
	}
	for _, tt := range tests {
		ok, task, err := Verify(tt.prompt, tt.response)
		if ok != tt.ok || task != tt.task || (err != nil) != tt.wantErr {
			t.Errorf("Verify(%q, %q) = %v, %q, %v; want %v, %q, error %v", tt.prompt, tt.response, ok, task, err, tt.ok, tt.task, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrPrompt) {
			t.Errorf("Verify(%q) error %v does not wrap ErrPrompt", tt.prompt, err)
		}
		if tt.task == "" {
			continue
		}
		// The task itself agrees, and every other task refuses the prompt.
		for _, name := range Names() {
			ok, err := mustGet(t, name).Verify(tt.prompt, tt.response)
			if name == tt.task {
				if ok != tt.ok || (err != nil) != tt.wantErr {
					t.Errorf("%s.Verify(%q, %q) = %v, %v", name, tt.prompt, tt.response, ok, err)
				}
			} else if err == nil || ok {
				t.Errorf("%s.Verify(%q, %q) = %v, %v; want an error", name, tt.prompt, tt.response, ok, err)
			}
		}
	}
}

// writer is WriteSFT or WritePref.
type writer func(w *bytes.Buffer, names []string, n int, seed uint64) error

// writers returns the two writers by name.
func writers() []struct {
	name  string
	write writer
} {
	return []struct {
		name  string
		write writer
	}{
		{"sft", func(w *bytes.Buffer, names []string, n int, seed uint64) error { return WriteSFT(w, names, n, seed) }},
		{"pref", func(w *bytes.Buffer, names []string, n int, seed uint64) error { return WritePref(w, names, n, seed) }},
	}
}

func TestWriteDeterministic(t *testing.T) {
	for _, wr := range writers() {
		t.Run(wr.name, func(t *testing.T) {
			out := func(seed uint64) []byte {
				var b bytes.Buffer
				if err := wr.write(&b, nil, 200, seed); err != nil {
					t.Fatal(err)
				}
				return b.Bytes()
			}
			a, b, c := out(7), out(7), out(8)
			if !bytes.Equal(a, b) {
				t.Error("same seed, different bytes")
			}
			if bytes.Equal(a, c) {
				t.Error("different seeds, same bytes")
			}
			if got := bytes.Count(a, []byte("\n")); got != 200 {
				t.Errorf("%d lines, want 200", got)
			}
		})
	}
}

// TestWriteRows parses the rows with chatdata, the consumer, and checks their
// contents: the tasks in round-robin order, chosen answers that verify and
// rejected ones that do not, and preference prompts equal to the SFT ones.
func TestWriteRows(t *testing.T) {
	names := []string{"sort", "add", "reverse", "add", "sub"}
	const n = 100
	var sft, pref bytes.Buffer
	if err := WriteSFT(&sft, names, n, 42); err != nil {
		t.Fatal(err)
	}
	if err := WritePref(&pref, names, n, 42); err != nil {
		t.Fatal(err)
	}
	sftLines := lines(t, sft.Bytes())
	prefLines := lines(t, pref.Bytes())
	if len(sftLines) != n || len(prefLines) != n {
		t.Fatalf("%d SFT and %d preference lines, want %d", len(sftLines), len(prefLines), n)
	}
	for i := range n {
		want := names[i%len(names)]
		row, err := chatdata.ParseSFT(sftLines[i])
		if err != nil {
			t.Fatalf("ParseSFT(%s): %v", sftLines[i], err)
		}
		if len(row.Messages) != 2 || row.Messages[0].Role != "user" || row.Messages[1].Role != "assistant" {
			t.Fatalf("SFT row %s: messages %+v", sftLines[i], row.Messages)
		}
		prompt, completion := row.Messages[0].Content, row.Messages[1].Content
		if ok, task, err := Verify(prompt, completion); err != nil || !ok || task != want {
			t.Errorf("SFT row %d %s: Verify = %v, %q, %v; want true, %q", i, sftLines[i], ok, task, err, want)
		}

		pr, err := chatdata.ParsePref(prefLines[i])
		if err != nil {
			t.Fatalf("ParsePref(%s): %v", prefLines[i], err)
		}
		if len(pr.Prompt) != 1 || len(pr.Chosen) != 1 || len(pr.Rejected) != 1 || pr.Edited != nil {
			t.Fatalf("preference row %s: %+v", prefLines[i], pr)
		}
		if pr.Prompt[0].Content != prompt || pr.Chosen[0].Content != completion {
			t.Errorf("preference row %d %s differs from SFT row %s", i, prefLines[i], sftLines[i])
		}
		if ok, _, err := Verify(pr.Prompt[0].Content, pr.Rejected[0].Content); err != nil || ok {
			t.Errorf("preference row %d %s: rejected verifies (%v, %v)", i, prefLines[i], ok, err)
		}
	}
}

func lines(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, slices.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		n     int
		want  string // in the error
	}{
		{"unknown task", []string{"add", "mul"}, 3, `unknown task "mul"`},
		{"negative n", nil, -1, "negative"},
	}
	for _, tt := range tests {
		for _, wr := range writers() {
			var b bytes.Buffer
			err := wr.write(&b, tt.names, tt.n, 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s %s: error %v, want one with %q", wr.name, tt.name, err, tt.want)
			}
			if b.Len() != 0 {
				t.Errorf("%s %s: wrote %d bytes", wr.name, tt.name, b.Len())
			}
		}
	}
	if err := WriteSFT(failWriter{}, nil, 10, 1); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteSFT to a failing writer: %v", err)
	}
	if err := WritePref(failWriter{}, nil, 10, 1); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WritePref to a failing writer: %v", err)
	}
	var b bytes.Buffer
	if err := WriteSFT(&b, nil, 0, 1); err != nil || b.Len() != 0 {
		t.Errorf("WriteSFT n=0: %v, %d bytes", err, b.Len())
	}
}

// FuzzVerify checks that Verify never panics, that its answers are
// consistent with the task it names, and that surrounding white space never
// changes a verdict.
func FuzzVerify(f *testing.F) {
	f.Add("What is 37 + 58?", "95")
	f.Add("What is 82 - 17?", "65")
	f.Add("What is 3 - 7?", "-4")
	f.Add("Reverse: k q a m", "m a q k")
	f.Add("Sort: 7 2 9 4", " 2 4 7 9\n")
	f.Add("Sort: 3 3", "3 3")
	f.Add("What is 0999 + 1?", "1000")
	f.Add("Reverse:  a", "a")
	f.Add("", "")
	f.Add("What is \xff + 1?", "\x00")
	f.Fuzz(func(t *testing.T, prompt, response string) {
		ok, name, err := Verify(prompt, response)
		if err != nil {
			if ok {
				t.Fatalf("Verify(%q, %q): ok with error %v", prompt, response, err)
			}
			if !errors.Is(err, ErrPrompt) {
				t.Fatalf("Verify(%q): error %v does not wrap ErrPrompt", prompt, err)
			}
			return
		}
		task, gerr := Get(name)
		if gerr != nil {
			t.Fatalf("Verify(%q) named task %q: %v", prompt, name, gerr)
		}
		if ok2, err2 := task.Verify(prompt, response); ok2 != ok || err2 != nil {
			t.Fatalf("%s.Verify(%q, %q) = %v, %v; package Verify said %v", name, prompt, response, ok2, err2, ok)
		}
		if ok2, _, _ := Verify("\n"+prompt+" ", " \t"+response+"\n"); ok2 != ok {
			t.Fatalf("Verify(%q, %q) = %v, changed by surrounding white space", prompt, response, ok)
		}
		w := task.Wrong(newRNG(uint64(len(response))), prompt, response)
		if wok, werr := task.Verify(prompt, w); wok || werr != nil {
			t.Fatalf("Wrong(%q) = %q: Verify = %v, %v; want false", prompt, w, wok, werr)
		}
	})
}

// TestSplitsNeverOverlap checks the writers emit only training prompts,
// Problems serves each split without repeats, and the two splits share no
// prompt.
func TestSplitsNeverOverlap(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSFT(&buf, nil, 4000, 3); err != nil {
		t.Fatal(err)
	}
	train := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var row struct{ Prompt string }
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatal(err)
		}
		if HeldOut(row.Prompt) {
			t.Fatalf("WriteSFT wrote the held-out prompt %q", row.Prompt)
		}
		train[row.Prompt] = true
	}
	held, err := Problems(nil, 50, 7, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 50*len(Names()) {
		t.Fatalf("%d held-out problems, want %d", len(held), 50*len(Names()))
	}
	seen := map[string]bool{}
	for _, p := range held {
		if !HeldOut(p.Prompt) || train[p.Prompt] || seen[p.Prompt] {
			t.Fatalf("held-out problem %q: held out %v, in training %v, repeated %v", p.Prompt, HeldOut(p.Prompt), train[p.Prompt], seen[p.Prompt])
		}
		seen[p.Prompt] = true
		if ok, task, err := Verify(p.Prompt, p.Answer); !ok || err != nil || task != p.Task {
			t.Fatalf("%+v: verify %v %q %v", p, ok, task, err)
		}
	}
	tr, err := Problems([]string{"add"}, 20, 7, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tr {
		if HeldOut(p.Prompt) {
			t.Fatalf("training problem %q is held out", p.Prompt)
		}
	}
	if _, err := Problems([]string{"nope"}, 1, 1, true); err == nil {
		t.Fatal("unknown task accepted")
	}
}
