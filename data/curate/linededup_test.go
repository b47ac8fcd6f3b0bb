package curate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLineDedupBucketsSpanUnits plants a banner line once in each of 8
// one-document input files. Counted within units it would never repeat;
// counted in buckets of input order across units (ccNet), it occurs 8 > 6
// times in a bucket of 10 documents and goes, while buckets of 4 documents
// (4 occurrences each) keep it. The bucket boundaries follow input
// positions, so a malformed record still occupies its place.
func TestLineDedupBucketsSpanUnits(t *testing.T) {
	const banner = "Subscribe to our newsletter for weekly updates and offers"
	in := t.TempDir()
	topics := []string{"rivers", "bridges", "owls", "tides", "ferns", "glaciers", "lanterns", "orchards"}
	for i := range 8 {
		body := fmt.Sprintf("This document talks about %s in its own words.\\n%s\\nA closing remark on %s.", topics[i], banner, topics[i])
		line := fmt.Sprintf(`{"id":"d%d","text":%q}`, i, strings.ReplaceAll(body, `\n`, "\n"))
		if i == 3 {
			line = "{not json}\n" + line // a malformed record takes input position 0 of unit 3
		}
		if err := os.WriteFile(filepath.Join(in, fmt.Sprintf("u%02d.jsonl", i)), []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		bucket  int
		removed bool
	}{{10, true}, {4, false}} {
		t.Run(fmt.Sprintf("bucket_docs=%d", c.bucket), func(t *testing.T) {
			cfg := Default()
			cfg.Input.Paths = []string{in}
			cfg.Output.Dir = t.TempDir()
			cfg.Stages = []string{StageNormalize, StageLineDedup}
			cfg.LineDedup.BucketDocs = c.bucket
			res, err := Run(context.Background(), cfg, Options{Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			kept, removed := readOutputs(t, cfg.Output.Dir)
			if len(kept) != 8 || len(removed) != 1 {
				t.Fatalf("kept %d, removed %d; want 8 and the malformed record", len(kept), len(removed))
			}
			for _, k := range kept {
				if has := strings.Contains(k.Text, banner); has == c.removed {
					t.Fatalf("doc %s: banner present = %v:\n%s", k.ID, has, k.Text)
				}
				if !strings.Contains(k.Text, "talks about") || !strings.Contains(k.Text, "closing remark") {
					t.Fatalf("doc %s lost its content: %q", k.ID, k.Text)
				}
			}
			ls := res.Stats.Stages[StageLineDedup]
			want := Edit{}
			if c.removed {
				want = Edit{Docs: 8, Lines: 8, Bytes: 8 * int64(len(banner)+1)} // each line with its line break
			}
			if ls.Edited != want {
				t.Fatalf("line dedup edits %+v, want %+v", ls.Edited, want)
			}
		})
	}
}
