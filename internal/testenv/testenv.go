// Package testenv holds the checks tests make of their environment: the
// reference data in ../shared/testdata and optional external tools. A test
// skips, saying so, when one is absent, except where the environment
// demands it: CI (.ci/run) sets HERD_REQUIRE_TESTDATA=1 and
// HERD_REQUIRE_TOOLS=1, so that the reference checks the README claims
// always run there and a missing prerequisite fails instead of passing
// silently.
package testenv

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment variables that turn a skip into a failure.
const (
	requireTestdataEnv = "HERD_REQUIRE_TESTDATA"
	requireToolsEnv    = "HERD_REQUIRE_TOOLS"
	// shotsEnv names a folder where Screenshot keeps a copy of every
	// screenshot, as TEST_NAME.png, for a person to look at.
	shotsEnv = "HERD_REPORT_SHOTS"
)

// Testdata checks that the reference data at path (a file or a folder
// under ../shared/testdata) exists; when it does not, the test is skipped,
// or fails under HERD_REQUIRE_TESTDATA=1.
func Testdata(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		absent(t, requireTestdataEnv, fmt.Sprintf("reference data %s is absent (%v); see ../shared/testdata/README.md", path, err))
	}
}

// needTool returns the path of the first of names found on PATH; when none
// is, the test is skipped, saying why it needs one (why), or fails under
// HERD_REQUIRE_TOOLS=1.
func needTool(t testing.TB, why string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	absent(t, requireToolsEnv, fmt.Sprintf("%s is not installed: %s", strings.Join(names, " or "), why))
	return ""
}

// absent skips t with msg, or fails it when env is set to 1.
func absent(t testing.TB, env, msg string) {
	t.Helper()
	if os.Getenv(env) == "1" {
		t.Fatalf("%s (%s=1: required here)", msg, env)
	}
	t.Skip(msg)
}

// Screenshot renders the HTML file at path in headless Chromium (Debian's
// chromium package) in a window of w×h pixels, with no network and no
// server (a file:// URL), and returns the screenshot (kept in
// $HERD_REPORT_SHOTS when set). Without Chromium
// the test skips, or fails under HERD_REQUIRE_TOOLS=1.
func Screenshot(t testing.TB, path string, w, h int) image.Image {
	t.Helper()
	bin := needTool(t, "the report checks render report.html in headless Chromium (Debian: apt-get install chromium)", "chromium", "chromium-browser")
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	shot := filepath.Join(tmp, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--no-first-run", "--disable-extensions", "--user-data-dir="+filepath.Join(tmp, "profile"),
		fmt.Sprintf("--window-size=%d,%d", w, h), "--screenshot="+shot, (&url.URL{Scheme: "file", Path: abs}).String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v\n%s", err, out)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if keep := os.Getenv(shotsEnv); keep != "" {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ".png"
		data, err := os.ReadFile(shot)
		if err == nil {
			err = os.WriteFile(filepath.Join(keep, name), data, 0o644)
		}
		if err != nil {
			t.Errorf("keep the screenshot in %s: %v", keep, err)
		}
	}
	return img
}

// Pixels counts the pixels of img within tol (per 8-bit channel) of c.
func Pixels(img image.Image, c color.Color, tol int) int {
	cr, cg, cb, _ := c.RGBA()
	near := func(a, b uint32) bool { d := int(a>>8) - int(b>>8); return d <= tol && -d <= tol }
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, cr) && near(g, cg) && near(bl, cb) {
				n++
			}
		}
	}
	return n
}

// RendersPlots screenshots the report.html at path in headless Chromium
// (see Screenshot) and fails unless the page is a white document showing
// gonum plots: enough pixels of plotutil's first two colours (the loss
// curve's red and the held-out curve's or gradient norm's green).
func RendersPlots(t testing.TB, path string) {
	t.Helper()
	const w, h = 1000, 1600
	shot := Screenshot(t, path, w, h)
	white := Pixels(shot, color.White, 8)
	red := Pixels(shot, color.RGBA{241, 90, 96, 255}, 30)
	green := Pixels(shot, color.RGBA{122, 195, 106, 255}, 30)
	t.Logf("%s in Chromium: white %d, plot red %d, plot green %d pixels", path, white, red, green)
	if white < w*h/3 || red < 100 || green < 100 {
		t.Errorf("%s does not show its plots: white %d, red %d, green %d pixels", path, white, red, green)
	}
}
