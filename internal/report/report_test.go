package report

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

// Colours the screenshot check looks for.
var (
	plotRed  = color.RGBA{200, 40, 40, 255}      // the test image
	ruleBlue = color.RGBA{0x3a, 0x6e, 0xa5, 255} // the h2 rule of the style sheet
)

// solidPNG is a w×h PNG of one colour.
func solidPNG(t *testing.T, w, h int, c color.Color) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSelfContained: the page references nothing outside itself (no
// http(s) or file URLs, no external style sheets or scripts) and escapes
// what it shows.
func TestSelfContained(t *testing.T) {
	var buf bytes.Buffer
	p := Page{Title: "run <x>", Sections: []Section{{Title: "a & b", Text: "<script>alert(1)</script>",
		Images: []Image{{Alt: "plot", PNG: solidPNG(t, 4, 4, plotRed)}}, Pre: []string{"</pre>"}}}}
	if err := renderPage(&buf, p); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	if m := regexp.MustCompile(`(?i)(src|href)="(https?:|file:|//|[a-z0-9_./-]+\.(png|css|js))`).FindString(html); m != "" {
		t.Fatalf("the page loads %s from outside itself", m)
	}
	if !strings.Contains(html, `src="data:image/png;base64,`) {
		t.Fatal("the image is not inlined as a data: URI")
	}
	if strings.Contains(html, "<script>") || strings.Contains(html, "<x>") {
		t.Fatal("text is not escaped")
	}
}

// TestRenderInChromium renders a report with a known plot (a 320×160
// block of one red) in headless Chromium from a file:// URL and checks
// the screenshot: the expected size, a white page, the plot's red over
// about its area (so the data: image decoded and displayed), the style
// sheet's blue rules and dark text.
func TestRenderInChromium(t *testing.T) {
	dir := t.TempDir()
	p := Page{Title: "herd test report", Dir: dir, Sections: []Section{
		{Title: "Training", Facts: []Fact{{"steps", "10"}, {"last loss", "2.5"}},
			Images: []Image{{Alt: "plot", PNG: solidPNG(t, 320, 160, plotRed)}}},
		{Title: "Table", Table: &Table{Header: []string{"stage", "docs"}, Rows: [][]string{{"input", "12"}}}, Notes: []string{"a note"}},
	}}
	if err := Write(dir, p); err != nil {
		t.Fatal(err)
	}
	const w, h = 900, 900
	img := testenv.Screenshot(t, filepath.Join(dir, File), w, h)
	if got := img.Bounds().Size(); got != (image.Point{w, h}) {
		t.Fatalf("screenshot is %v, want %dx%d", got, w, h)
	}
	white := testenv.Pixels(img, color.White, 8)
	red := testenv.Pixels(img, plotRed, 12)
	blue := testenv.Pixels(img, ruleBlue, 24)
	dark := testenv.Pixels(img, color.RGBA{0x22, 0x22, 0x22, 255}, 40)
	t.Logf("screenshot %dx%d: white %d, plot red %d, rule blue %d, dark text %d", w, h, white, red, blue, dark)
	if white < w*h/2 {
		t.Errorf("only %d white pixels: the page is not a white document", white)
	}
	// 320×160 = 51200 pixels at scale 1; allow for device scaling.
	if red < 51200*9/10 || red > 51200*4+1000 {
		t.Errorf("%d pixels of the plot's red, want about 51200: the inlined image did not show", red)
	}
	if blue < 2*500 {
		t.Errorf("%d pixels of the section rules' blue: the style sheet did not apply", blue)
	}
	if dark < 500 {
		t.Errorf("%d dark pixels: no text was drawn", dark)
	}
}
