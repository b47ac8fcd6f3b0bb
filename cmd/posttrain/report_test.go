package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

// TestReports: every training kind leaves a self-contained report.html
// with its plots inlined; the SFT one renders in headless Chromium with
// the plots showing.
func TestReports(t *testing.T) {
	for _, kind := range []string{"sft", "rm", "dpo"} {
		dir := finished(t, kind)
		html, err := os.ReadFile(filepath.Join(dir, "report.html"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"herd post-training run (" + kind + ")", `<img alt="loss" src="data:image/png;base64,`,
			`<img alt="learning rate, gradient norm, throughput, MFU" src="data:image/png;base64,`, "Last held-out evaluation"} {
			if !strings.Contains(string(html), want) {
				t.Errorf("%s: report.html lacks %q", kind, want)
			}
		}
	}
	testenv.RendersPlots(t, filepath.Join(finished(t, "sft"), "report.html"))
}
