package htmltext

import (
	"strings"
	"testing"
)

// TestExtract checks that the main text of a page survives and the cookie
// banner, navigation and footer do not; an empty page is an error. (A page
// of navigation only comes back as its link text: trafilatura's fallback;
// the heuristic filters remove such stubs.)
func TestExtract(t *testing.T) {
	page := `<html><head><title>Bread at home</title></head><body>
<div class="cookie-notice">This website uses cookies. Accept or reject cookies in your settings.</div>
<nav><a href="/">Home</a> <a href="/recipes">Recipes</a> <a href="/shop">Shop</a> <a href="/login">Log in</a></nav>
<article><h1>Baking bread at home</h1>
<p>A simple loaf needs only flour, water, salt and yeast, yet the result depends on time and temperature more than on any secret ingredient.</p>
<p>Let the dough rise slowly in a cool kitchen overnight and the crumb will be open and the crust deeply browned when it comes out of the oven.</p>
</article>
<footer>© 2024 Kitchen Notes · Imprint · Newsletter signup</footer>
</body></html>`
	text, err := Extractor{}.Extract(page, "https://kitchen.example/bread")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flour, water, salt and yeast", "crumb will be open"} {
		if !strings.Contains(text, want) {
			t.Errorf("main text lost %q:\n%s", want, text)
		}
	}
	for _, bad := range []string{"uses cookies", "Log in", "Newsletter signup", "Imprint"} {
		if strings.Contains(text, bad) {
			t.Errorf("boilerplate %q kept:\n%s", bad, text)
		}
	}
	if _, err := (Extractor{}).Extract("<html><body></body></html>", ""); err == nil {
		t.Error("an empty page gave no error")
	}
}
