package curate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/herdml/herd/data/reader"
)

// checkFunnel checks that the funnel accounts for every document and
// byte: per stage, in = out + removed (+ edits and truncation for bytes),
// each stage starts where the last ended, and the last stage's output is
// what the docs shards hold.
func checkFunnel(t *testing.T, st *Stats, out string) {
	t.Helper()
	var prev *StageStats
	for _, name := range st.Order {
		s := st.Stages[name]
		var rm Count
		for _, c := range s.Removed {
			rm.Docs += c.Docs
			rm.Bytes += c.Bytes
		}
		if s.In.Docs != s.Out.Docs+rm.Docs {
			t.Errorf("%s: %d docs in, %d out, %d removed", name, s.In.Docs, s.Out.Docs, rm.Docs)
		}
		if d := s.In.Bytes - s.Out.Bytes - rm.Bytes - s.Edited.Bytes - s.Truncated.Bytes - s.NotTextBytes; d != 0 {
			t.Errorf("%s: %d bytes unaccounted for (%+v)", name, d, s)
		}
		if s.Edited.Docs > s.Out.Docs || s.Truncated.Docs > s.Out.Docs {
			t.Errorf("%s: more edited documents than kept: %+v", name, s)
		}
		if prev != nil && (prev.Out != s.In) {
			t.Errorf("%s starts with %+v, the stage before ended with %+v", name, s.In, prev.Out)
		}
		prev = s
	}
	kept, _ := readOutputs(t, out)
	var bytes int64
	for _, k := range kept {
		bytes += int64(len(k.Text))
	}
	if prev == nil || prev.Out.Docs != int64(len(kept)) || prev.Out.Bytes != bytes {
		t.Errorf("the last stage kept %+v; the shards hold %d documents, %d bytes", prev.Out, len(kept), bytes)
	}
	var sj struct {
		Edited Edit `json:"edited"`
	}
	b, err := os.ReadFile(filepath.Join(out, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sj); err != nil || sj.Edited != st.Edits() {
		t.Errorf("stats.json edited %+v, want %+v (%v)", sj.Edited, st.Edits(), err)
	}
}

// TestFunnelCountsEdits: a document C4's line filter shortens is counted
// as edited with the lines and bytes it lost (measured on the output
// shard), as is a document truncated at limits.max_doc_bytes; JSON syntax
// is input bytes that are not text.
func TestFunnelCountsEdits(t *testing.T) {
	in := t.TempDir()
	good := []string{
		"The river rose slowly through the night and the town slept.",
		"By morning the water had reached the steps of the old church.",
		"Nobody had seen anything like it since the great flood of the year.",
		"The mayor called the farmers together in the hall to plan.",
		"They agreed to build a wall of sandbags along the bank.",
	}
	bad := []string{"Click here to subscribe", "Share this page"} // no end punctuation
	text := good[0] + "\n" + bad[0] + "\n" + strings.Join(good[1:], "\n") + "\n" + bad[1]
	long := strings.Repeat("A plain line of text that goes on.\n", 40) // 1400 bytes, 40 lines
	var jsonl strings.Builder
	for i, s := range []string{text, long} {
		line, _ := json.Marshal(map[string]string{"id": strconv.Itoa(i), "text": s})
		jsonl.Write(line)
		jsonl.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(in, "a.jsonl"), []byte(jsonl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageC4}
	cfg.Limits.MaxDocBytes = 1000
	cfg.Filters.C4.MinSentences = 1
	res, err := Run(context.Background(), cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	checkFunnel(t, res.Stats, cfg.Output.Dir)
	kept, _ := readOutputs(t, cfg.Output.Dir)
	if len(kept) != 2 {
		t.Fatalf("kept %d documents, want 2", len(kept))
	}
	input := res.Stats.Stages["input"]
	wantCut := Edit{Docs: 1, Lines: 40 - 29, Bytes: int64(len(long) - 1000)} // 1000 bytes = 28 lines and 20 bytes of the 29th, which stays in part
	if input.Truncated != wantCut {
		t.Errorf("truncation %+v, want %+v", input.Truncated, wantCut)
	}
	if want := int64(jsonl.Len()) - int64(len(text)) - int64(len(long)); input.In.Bytes != int64(jsonl.Len()) || input.NotTextBytes != want {
		t.Errorf("not-text bytes %d, want %d (the JSON syntax)", input.NotTextBytes, want)
	}
	c4 := res.Stats.Stages[StageC4]
	if c4.Edited.Docs != 2 || c4.Edited.Lines != int64(len(bad))+1 { // the truncated document's cut last line goes too
		t.Errorf("c4 edits %+v: want 2 documents, %d lines", c4.Edited, len(bad)+1)
	}
	if want := int64(len(text)-len(kept[0].Text)) + int64(1000-len(kept[1].Text)); c4.Edited.Bytes != want {
		t.Errorf("c4 removed %d bytes, the shard says %d", c4.Edited.Bytes, want)
	}
	if kept[0].Text != strings.Join(good, "\n") {
		t.Errorf("c4 kept %q", kept[0].Text)
	}
}

// TestTextSplitAndAccounting runs the web recipe over the King James
// Bible and the Jargon File as whole files and split at blank lines.
// Whole, each is one document that truncation cuts to 1 MiB (counted) and
// C4's line filter edits; split, each chapter is a document and nothing is
// truncated. Either way every byte is accounted for, and every removal
// has a detail naming its threshold.
func TestTextSplitAndAccounting(t *testing.T) {
	var paths []string
	var sizes []int
	for _, name := range []string{"kjv.txt", "jargon.txt"} {
		p := filepath.Join(corpora, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Skipf("reference corpora not present: %v", err)
		}
		paths, sizes = append(paths, p), append(sizes, int(st.Size()))
	}
	for _, split := range []string{reader.SplitFile, reader.SplitBlankLines} {
		t.Run(split, func(t *testing.T) {
			cfg := Default()
			cfg.Input.Paths = paths
			cfg.Input.Format = "text"
			cfg.Input.TextSplit = split
			cfg.Output.Dir = t.TempDir()
			cfg.Stages = []string{StageNormalize, StageLangID, StageExactDedup, StageGopher, StageC4, StageFineWeb}
			res, err := Run(context.Background(), cfg, Options{Logger: quietLogger()})
			if err != nil && !errors.Is(err, ErrNothingKept) {
				t.Fatal(err)
			}
			checkFunnel(t, res.Stats, cfg.Output.Dir)
			input := res.Stats.Stages["input"]
			removed, kept := res.Stats.Total()
			t.Logf("%d documents in, %d kept, %d removed, edits %+v, truncated %+v", input.In.Docs, kept.Docs, removed.Docs, res.Stats.Edits(), input.Truncated)
			if split == reader.SplitFile {
				// Both files end with a line break and are cut mid-line: the
				// lines whose break is cut off, less the one that stays in part.
				var want Edit
				for i, p := range paths {
					data, _ := os.ReadFile(p)
					want.Docs++
					want.Bytes += int64(sizes[i] - cfg.Limits.MaxDocBytes)
					want.Lines += int64(strings.Count(string(data[cfg.Limits.MaxDocBytes:]), "\n")) - 1
				}
				if input.Truncated != want {
					t.Errorf("truncated %+v, want %+v", input.Truncated, want)
				}
				if input.In.Docs != 2 || kept.Docs != 0 {
					t.Errorf("%d documents, %d kept; want one per file, both too long for gopher.max_words once cut to 1 MiB", input.In.Docs, kept.Docs)
				}
			} else {
				if input.Truncated != (Edit{}) {
					t.Errorf("split documents were truncated: %+v", input.Truncated)
				}
				if input.In.Docs < 1189 || kept.Docs < 500 {
					t.Errorf("%d documents, %d kept: want a document per chapter and most chapters kept", input.In.Docs, kept.Docs)
				}
				if c4 := res.Stats.Stages[StageC4]; c4.Edited.Lines == 0 {
					t.Errorf("C4's line filter removed no line: %+v", c4)
				}
			}
			checkDetails(t, cfg.Output.Dir, &cfg)
		})
	}
}

// checkDetails checks the detail of every removal: a threshold rule
// states the measured value on the right side of the recipe's threshold.
func checkDetails(t *testing.T, out string, cfg *Config) {
	t.Helper()
	cmp := regexp.MustCompile(`^(-?[0-9.e+]+) ([<>]) ([a-z0-9_.]+(?:\[\d\])?) (-?[0-9.e+]+)$`)
	limits := map[string]float64{
		"filters.gopher.min_words":           float64(cfg.Filters.Gopher.MinWords),
		"filters.gopher.max_avg_word_length": cfg.Filters.Gopher.MaxAvgWordLength,
		"filters.gopher.min_alpha_words":     cfg.Filters.Gopher.MinAlphaWords,
		"filters.gopher.min_stop_words":      float64(cfg.Filters.Gopher.MinStopWords),
		"filters.c4.min_sentences":           float64(cfg.Filters.C4.MinSentences),
		"filters.fineweb.min_line_punct":     cfg.Filters.FineWeb.MinLinePunct,
		"filters.fineweb.max_short_lines":    cfg.Filters.FineWeb.MaxShortLines,
		"filters.fineweb.max_dup_line_chars": cfg.Filters.FineWeb.MaxDupLineChars,
	}
	_, removed := readOutputs(t, out)
	for _, r := range removed {
		if r.Detail == "" {
			t.Errorf("%s removed by %s without a detail", r.ID, r.Reason)
			continue
		}
		stage, _, _ := strings.Cut(r.Reason, "/")
		if stage != StageGopher && stage != StageFineWeb && r.Reason != "c4/min_sentences" {
			continue
		}
		m := cmp.FindStringSubmatch(r.Detail)
		if m == nil {
			t.Errorf("%s: %s detail %q is not a comparison", r.ID, r.Reason, r.Detail)
			continue
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		lim, _ := strconv.ParseFloat(m[4], 64)
		if want, ok := limits[m[3]]; ok && fmt.Sprint(want) != fmt.Sprint(lim) {
			t.Errorf("%s: detail %q: the recipe's %s is %g", r.ID, r.Detail, m[3], want)
		}
		if (m[2] == "<") != (v < lim) || v == lim {
			t.Errorf("%s: detail %q does not hold", r.ID, r.Detail)
		}
	}
}

// TestNothingKeptFails: a wrong text field removes every record; the run
// fails with ErrNothingKept and says to set input.text_field, naming the
// fields the records have. A run whose stages remove everything fails too,
// naming the main rule. Either way the funnel comes back.
func TestNothingKeptFails(t *testing.T) {
	in := t.TempDir()
	data := `{"body":"The first document has enough words to pass.","id":1}` + "\n" + `{"body":"The second one too.","id":2}` + "\n"
	if err := os.WriteFile(filepath.Join(in, "a.jsonl"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Input.Paths = []string{in}
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize}
	res, err := Run(context.Background(), cfg, Options{Logger: quietLogger()})
	if !errors.Is(err, ErrNothingKept) || res == nil {
		t.Fatalf("got %v, want ErrNothingKept with the result", err)
	}
	for _, want := range []string{`none of the 2 records has the text field "text"; set input.text_field`, `"body" string, "id" number`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	cfg.Input.TextField = "body"
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize, StageGopher}
	_, err = Run(context.Background(), cfg, Options{Logger: quietLogger()})
	if !errors.Is(err, ErrNothingKept) || !strings.Contains(err.Error(), "all 2 input documents were removed, most by gopher/min_words (2)") {
		t.Fatalf("got %v", err)
	}
	cfg.Output.Dir = t.TempDir()
	cfg.Stages = []string{StageNormalize}
	if _, err := Run(context.Background(), cfg, Options{Logger: quietLogger()}); err != nil {
		t.Fatalf("with the right field: %v", err)
	}
}
