package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/model"
)

func TestRun(t *testing.T) {
	cfg := model.Config{VocabSize: 50, HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 3,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 16}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 1)
	root := t.TempDir()
	in := filepath.Join(root, "in")
	if err := checkpoint.SaveModel(in, cfg, p, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	report := filepath.Join(root, "report.json")
	if err := run(context.Background(), []string{"-model", in, "-scheme", "fp8", "-out", filepath.Join(root, "fp8"), "-act-scale-ub", "600", "-report", report}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var rep struct {
		Scheme    string
		Quantized []string
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Scheme != "fp8" || len(rep.Quantized) != 3 {
		t.Fatalf("report %s (%v)", out.String(), err)
	}
	if b, _ := os.ReadFile(report); !bytes.Equal(b, out.Bytes()) {
		t.Fatal("-report differs from the printed report")
	}
	c, _, err := checkpoint.LoadModel(filepath.Join(root, "fp8"))
	if err != nil || string(c.Extra["activation_scale_ub"]) != "600" {
		t.Fatalf("activation_scale_ub %s, %v", c.Extra["activation_scale_ub"], err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-model", in, "-scheme", "int8", "-out", filepath.Join(root, "x")}, "int8"},
		{[]string{"-model", in, "-scheme", "fp8"}, "output"},
		{[]string{"-model", in, "-scheme", "fp8", "-out", filepath.Join(root, "y"), "-temperature", "0"}, "-temperature"},
		{[]string{"-model", in, "-scheme", "fp8", "-out", filepath.Join(root, "z"), "-rm", in}, "prompts"},
		{[]string{"-model", in, "-scheme", "fp8", "-out", filepath.Join(root, "w"), "stray"}, "unexpected"},
	} {
		err := run(context.Background(), tt.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tt.args, err, tt.want)
		}
	}
}
