package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herdml/herd/internal/testenv"
)

const corpora = "../../../shared/testdata/corpora"

// buildCurate compiles the command once per test binary.
func buildCurate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "curate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writeInput writes n JSONL files of real text (KJV chapters) with
// planted duplicates, URLs and dates.
func writeInput(t *testing.T, dir string, files int) {
	t.Helper()
	testenv.Testdata(t, filepath.Join(corpora, "kjv.txt"))
	b, err := os.ReadFile(filepath.Join(corpora, "kjv.txt"))
	if err != nil {
		t.Fatal(err)
	}
	chapters := strings.Split(string(b), "\n\n")
	k := 0
	for f := range files {
		var buf bytes.Buffer
		for i := range 120 {
			text := chapters[k%len(chapters)]
			k++
			if i%10 == 3 {
				text = chapters[(k+len(chapters)-5)%len(chapters)] // exact duplicate of an earlier one
			}
			line, _ := json.Marshal(map[string]string{"id": fmt.Sprintf("f%d-%d", f, i), "text": text,
				"url": fmt.Sprintf("https://example.test/%d", k%50), "date": fmt.Sprintf("2024-01-%02d", 1+k%28)})
			buf.Write(line)
			buf.WriteByte('\n')
		}
		buf.WriteString("{not json\n")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("in-%02d.jsonl", f)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var resultFiles = []string{"docs-*.parquet", "removed/removed-*.parquet", "stats.json", "recipe.yaml"}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, pat := range resultFiles {
		files, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, f)
			m[rel] = b
		}
	}
	return m
}

func sameFiles(t *testing.T, a, b map[string][]byte, what string) {
	t.Helper()
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%s: %d files vs %d", what, len(a), len(b))
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Fatalf("%s: %s differs", what, name)
		}
	}
}

// TestCrashResumeIdentical runs the binary three ways — uninterrupted,
// interrupted (SIGINT, as Ctrl-C) mid-run then rerun, and killed with
// SIGKILL mid-run then rerun — and requires byte-identical outputs.
func TestCrashResumeIdentical(t *testing.T) {
	bin := buildCurate(t)
	in := t.TempDir()
	writeInput(t, in, 6)
	args := func(out string, extra ...string) []string {
		flags := append([]string{"-recipe", "curate_web", "-out", out}, extra...)
		return append(flags, "input.paths=["+in+"]", "stages=[normalize, url_dedup, exact_dedup, line_dedup, gopher, minhash]")
	}
	root := t.TempDir()
	clean, crashed, killed := filepath.Join(root, "clean"), filepath.Join(root, "crashed"), filepath.Join(root, "killed")
	if out, err := exec.Command(bin, args(clean)...).CombinedOutput(); err != nil {
		t.Fatalf("clean run: %v\n%s", err, out)
	}
	want := snapshot(t, clean)
	if html, err := os.ReadFile(filepath.Join(clean, "report.html")); err != nil || !strings.Contains(string(html), "Curation funnel") {
		t.Fatalf("report.html of the curation: %v", err)
	}

	// Stop each run once the first unit of some pass is on disk.
	interrupted := func(out string, sig os.Signal) {
		t.Helper()
		cmd := exec.Command(bin, args(out)...)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if m, _ := filepath.Glob(filepath.Join(out, "work", "pass*", "stats-*.json")); len(m) > 0 {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		if sig == os.Interrupt && err == nil && !strings.Contains(log.String(), "kept ") {
			t.Fatalf("interrupted run exited 0 without finishing:\n%s", log.String())
		}
		if out, err := exec.Command(bin, args(out)...).CombinedOutput(); err != nil {
			t.Fatalf("rerun after %v: %v\n%s", sig, err, out)
		}
	}
	interrupted(crashed, os.Interrupt)
	sameFiles(t, want, snapshot(t, crashed), "rerun after SIGINT")
	interrupted(killed, syscall.SIGKILL)
	sameFiles(t, want, snapshot(t, killed), "rerun after SIGKILL")

	// A different recipe in the same directory is refused.
	out, err := exec.Command(bin, append(args(clean), "filters.gopher.min_words=20")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "different recipe") {
		t.Fatalf("recipe change not refused: %v\n%s", err, out)
	}
}

// TestCLIRecipeErrors: strict recipe errors and overrides reach the user.
func TestCLIRecipeErrors(t *testing.T) {
	bin := buildCurate(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("stages: [normalize]\nfilters:\n  gopher:\n    min_words: 20\n  lerning_rate: 3\n"), 0o644)
	out, _ := exec.Command(bin, "-recipe", bad, "-out", dir).CombinedOutput()
	if !strings.Contains(string(out), `[5:3] unknown field "lerning_rate"`) {
		t.Fatalf("unknown field not reported with position:\n%s", out)
	}
	out, err := exec.Command(bin, "-recipe", "curate_web", "-print-defaults", "filters.gopher.min_words=20").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "min_words: 20") {
		t.Fatalf("override not in resolved recipe: %v\n%s", err, out)
	}
	out, _ = exec.Command(bin, "-recipe", "curate_web", "-out", dir, "filters.gopher.min_words=many").CombinedOutput()
	if !strings.Contains(string(out), `"filters.gopher.min_words" wants an integer`) {
		t.Fatalf("bad override value:\n%s", out)
	}
}

// TestTrainClassifierHamSpam trains the quality classifier on part of the
// SpamAssassin mails through the CLI and requires held-out AUC ≥ 0.95.
func TestTrainClassifierHamSpam(t *testing.T) {
	testenv.Testdata(t, corpora)
	bin := buildCurate(t)
	model := filepath.Join(t.TempDir(), "q.model")
	out, err := exec.Command(bin, "train-classifier", "-class", "ham="+corpora+"/spamassassin/ham", "-class", "spam="+corpora+"/spamassassin/spam",
		"-holdout", "0.3", "-buckets", "65536", "-out", model).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var auc, acc float64
	for _, line := range strings.Split(string(out), "\n") {
		fmt.Sscanf(line, "held-out AUC (ham vs rest) %f", &auc)
		fmt.Sscanf(line, "held-out accuracy %f", &acc)
	}
	t.Logf("%s", out)
	if auc < 0.95 {
		t.Fatalf("held-out AUC %.4f < 0.95", auc)
	}
	if _, err := os.Stat(model); err != nil {
		t.Fatal(err)
	}
}

// TestCLIBadNumbers: rank, world and worker flags out of range are errors
// naming the flag and the allowed range, not silently replaced defaults.
func TestCLIBadNumbers(t *testing.T) {
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "a.txt"), []byte("some text"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-rank", "-3"}, "-rank -3: must be ≥ 0"},
		{[]string{"-world", "0"}, "-world 0: must be ≥ 1"},
		{[]string{"-world", "-2"}, "-world -2: must be ≥ 1"},
		{[]string{"-rank", "2", "-world", "2"}, "rank 2: must be ≥ 0 and < the world size 2"},
		{[]string{"-workers", "-5"}, "-workers -5: must be ≥ 0"},
		{[]string{"-wait-timeout", "0s"}, "-wait-timeout 0s: must be > 0"},
		{[]string{"workers=-5"}, "workers = -5: must be ≥ 0"},
		{[]string{"input.files_per_unit=0"}, "input.files_per_unit = 0: must be ≥ 1"},
		{[]string{"output.row_group_docs=0"}, "output.row_group_docs = 0: must be ≥ 1"},
		{[]string{"langid.min_score=.nan"}, "langid.min_score = NaN: must be a finite number"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"-out", out}, c.args...)
			args = append(args, "input.paths=["+in+"]", "stages=[normalize]")
			err := run(t.Context(), args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("output directory %s was created", out)
			}
		})
	}
}

// TestSecondProcessRefused runs rank 0 of a two-rank curation, which holds
// its lock while it waits for rank 1, then a second rank 0 on the same
// output: the second is refused with the first one's pid.
func TestSecondProcessRefused(t *testing.T) {
	bin := buildCurate(t)
	in, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(in, fmt.Sprintf("%d.txt", i)), []byte(fmt.Sprintf("document number %d", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-out", out, "-rank", "0", "-world", "2", "input.paths=[" + in + "]", "input.files_per_unit=1", "stages=[normalize]"}
	first := exec.Command(bin, args...)
	var firstOut syncBuffer
	first.Stderr = &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		first.Process.Kill()
		first.Wait()
	}()
	// Rank 0 has its lock once it waits for rank 1.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(firstOut.String(), "waiting for other ranks") {
		if time.Now().After(deadline) {
			t.Fatalf("the first rank 0 is not waiting:\n%s", firstOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	second, err := exec.Command(bin, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(second), fmt.Sprintf("pid %d", first.Process.Pid)) {
		t.Fatalf("second writer: %v\n%s", err, second)
	}
	t.Logf("%s", second)
}

// syncBuffer is a buffer a child process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCLIValidate: `validate` and -print-recipe (alias -print-defaults)
// check the resolved recipe; an invalid one exits 1 with the problem and
// prints nothing on stdout; another tool's recipe is named as such.
func TestCLIValidate(t *testing.T) {
	bin := buildCurate(t)
	dir := t.TempDir()
	cases := []struct {
		name    string
		args    []string
		code    int
		stdout  string // substring; "" = stdout must be empty
		message string // substring of stderr
	}{
		{"validate ok", []string{"validate", "-recipe", "curate_gosrc", "-out", filepath.Join(dir, "o")}, 0, "ok\n", ""},
		{"validate without out", []string{"validate", "-recipe", "curate_web"}, 0, "note: output.dir is not set: pass -out DIR when running\nok\n", ""},
		{"validate index", []string{"validate", "-recipe", "curate_web", "stages.0=normalize", "input.paths=[a, b]", "input.paths.1=c"}, 0, "ok\n", ""},
		{"validate bad stage", []string{"validate", "-recipe", "curate_web", "stages.0=nosuch"}, 1, "", `recipe: stages: unknown stage "nosuch"`},
		{"validate out of range", []string{"validate", "-recipe", "curate_web", "stages.99=normalize"}, 1, "", `"stages.99": index 99 is out of range: stages has`},
		{"validate other tool", []string{"validate", "-recipe", "pretrain_tiny"}, 1, "", "recipe \"pretrain_tiny\" is a pretrain recipe: run `pretrain -recipe pretrain_tiny`; curate's shipped recipes are curate_gosrc, curate_web"},
		{"validate no recipe", []string{"validate"}, 1, "", "validate: -recipe is required"},
		{"print", []string{"-recipe", "curate_web", "-print-recipe", "filters.gopher.min_words=21"}, 0, "min_words: 21", "output.dir is not set"},
		{"print alias", []string{"-recipe", "curate_web", "-print-defaults", "filters.gopher.min_words=22"}, 0, "min_words: 22", ""},
		{"print invalid", []string{"-recipe", "curate_web", "-print-recipe", "limits.huge=cut"}, 1, "", `recipe: limits.huge = "cut": want truncate or drop`},
		{"print alias invalid", []string{"-recipe", "curate_web", "-print-defaults", "stages.1=normalize"}, 1, "", `stages: "normalize" listed twice`},
		{"run other tool", []string{"-recipe", "dpo_tiny", "-out", filepath.Join(dir, "o")}, 1, "", "is a posttrain recipe"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != c.code {
				t.Fatalf("exit %d, want %d\nstdout %q\nstderr %q", code, c.code, stdout.String(), stderr.String())
			}
			if c.stdout == "" && stdout.Len() > 0 || !strings.Contains(stdout.String(), c.stdout) {
				t.Fatalf("stdout %q, want %q", stdout.String(), c.stdout)
			}
			if !strings.Contains(stderr.String(), c.message) {
				t.Fatalf("stderr %q, want %q", stderr.String(), c.message)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("validation wrote files: %v", entries)
	}
	help, _ := exec.Command(bin, "-h").CombinedOutput()
	if h := string(help); !strings.Contains(h, "(curate_gosrc, curate_web)") || strings.Contains(h, "pretrain_tiny") || !strings.Contains(h, "curate validate") {
		t.Fatalf("help:\n%s", h)
	}
}

// TestCLINothingKeptAndInspect: a wrong text field fails (exit 1) after
// printing the funnel, with the hint; the right one keeps the documents,
// and inspect shows a shard's schema, created_by and rows.
func TestCLINothingKeptAndInspect(t *testing.T) {
	bin := buildCurate(t)
	in := t.TempDir()
	data := `{"body":"The first document of the test.","id":1}` + "\n" + `{"body":"The second document of the test.","id":2}` + "\n"
	if err := os.WriteFile(filepath.Join(in, "a.jsonl"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		if err != nil && cmd.ProcessState == nil {
			t.Fatal(err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run("-recipe", "curate_web", "-out", filepath.Join(t.TempDir(), "o"), "input.paths=["+in+"]", "stages=[normalize]")
	if code != 1 || !strings.Contains(out, "input/missing_text") || !strings.Contains(out, `set input.text_field`) || !strings.Contains(out, `"body" string`) {
		t.Fatalf("wrong text field: exit %d\n%s", code, out)
	}
	dir := filepath.Join(t.TempDir(), "o")
	out, code = run("-recipe", "curate_web", "-out", dir, "input.paths=["+in+"]", "stages=[normalize]", "input.text_field=body")
	if code != 0 || !strings.Contains(out, "kept 2 documents") {
		t.Fatalf("right text field: exit %d\n%s", code, out)
	}
	out, code = run("inspect", "-rows", "1", filepath.Join(dir, "docs-00000.parquet"))
	for _, want := range []string{"rows:       2 in 1 row groups", "created_by: herd curate version", "message Row {", `text          "The first document of the test."`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("inspect: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	if out, code = run("inspect"); code != 1 || !strings.Contains(out, "name one or more Parquet files") {
		t.Fatalf("inspect without files: exit %d\n%s", code, out)
	}
	// Metrics: one schema with the other tools (kind, units in key names).
	b, err := os.ReadFile(filepath.Join(dir, "metrics-rank0.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		kinds = append(kinds, fmt.Sprint(rec["kind"]))
		if _, ok := rec["event"]; ok {
			t.Fatalf("metrics line %q uses event, not kind", line)
		}
		if rec["kind"] == "unit" {
			for _, k := range []string{"docs_in", "bytes_in", "seconds", "docs_per_s", "bytes_per_s"} {
				if _, ok := rec[k]; !ok {
					t.Fatalf("unit record %q lacks %s", line, k)
				}
			}
		}
	}
	if strings.Join(kinds, ",") != "unit,done" {
		t.Fatalf("metrics kinds %v, want unit,done", kinds)
	}
}
