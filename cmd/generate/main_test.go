package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

// TestLogitsMatchLlamaCpp runs the command on the reference models and
// compares the written logits with llama.cpp's.
func TestLogitsMatchLlamaCpp(t *testing.T) {
	for _, name := range []string{"tiny-a", "tiny-b"} {
		dir := filepath.Join("../../../shared/testdata/llama-ref", name)
		testenv.Testdata(t, dir)
		var ids []int
		readJSON(t, filepath.Join(dir, "input_ids.json"), &ids)
		var want logitsFile
		readJSON(t, filepath.Join(dir, "logits.json"), &want)
		strs := make([]string, len(ids))
		for i, id := range ids {
			strs[i] = strconv.Itoa(id)
		}
		out := filepath.Join(t.TempDir(), "logits.json")
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"-model", dir, "-ids", strings.Join(strs, ","), "-logits", out, "-max-tokens", "4"}, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
		var got logitsFile
		readJSON(t, out, &got)
		if got.Shape != want.Shape {
			t.Fatalf("%s: shape %v, want %v", name, got.Shape, want.Shape)
		}
		worst := 0.0
		for i := range want.Logits {
			for j, w := range want.Logits[i] {
				worst = math.Max(worst, math.Abs(float64(got.Logits[i][j]-w)))
			}
		}
		if worst > 1e-4 {
			t.Fatalf("%s: max |Δlogit| %g > 1e-4", name, worst)
		}
		var gen struct{ IDs []int32 }
		if err := json.Unmarshal(stdout.Bytes(), &gen); err != nil || len(gen.IDs) != 4 {
			t.Fatalf("%s: generation output %q: %v", name, stdout.String(), err)
		}
		t.Logf("%s: max |Δlogit| %.3g; greedy continuation %v", name, worst, gen.IDs)
	}
}

// TestBadArguments: each mistake fails with an error that says what is
// wrong.
func TestBadArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "-model and -ids are required"},
		{[]string{"-model", "x"}, "-model and -ids are required"},
		{[]string{"-model", "x", "-ids", "1,2"}, "nothing to do: give -logits OUT.json and/or -max-tokens N"},
		{[]string{"-model", "x", "-ids", "1,a", "-logits", "o.json"}, `-ids: item 2 ("a") is not a non-negative token id`},
		{[]string{"-model", "/nonexistent", "-ids", "1", "-logits", "o.json"}, "/nonexistent/config.json: no such file or directory"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), c.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
