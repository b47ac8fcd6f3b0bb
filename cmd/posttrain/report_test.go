package main

import (
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

// TestReports: every training kind leaves a self-contained report.html
// with its plots inlined; the SFT one renders in headless Chromium with
// the plots showing (the loss curve's colours, the page's white).
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
	shot := testenv.Screenshot(t, filepath.Join(finished(t, "sft"), "report.html"), 1000, 1400)
	white := testenv.Pixels(shot, color.White, 8)
	// plotutil.Color(0) and (1): the EMA loss and held-out curves.
	ema := testenv.Pixels(shot, color.RGBA{241, 90, 96, 255}, 30)
	heldOut := testenv.Pixels(shot, color.RGBA{122, 195, 106, 255}, 30)
	t.Logf("screenshot: white %d, EMA loss %d, held-out %d pixels", white, ema, heldOut)
	if white < 1000*1400/3 || ema < 100 || heldOut < 20 {
		t.Fatalf("the report does not show its plots: white %d, EMA loss %d, held-out %d pixels", white, ema, heldOut)
	}
}
