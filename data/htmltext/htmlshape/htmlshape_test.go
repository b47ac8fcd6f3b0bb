package htmlshape

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// parsedDepth is the depth of the tree x/net/html builds, below <body>.
func parsedDepth(t *testing.T, page string) int {
	d, _ := parsed(t, page)
	return d
}

// parsed returns the depth of the tree x/net/html builds, below <body>,
// and its number of elements other than html, head and body.
func parsed(t *testing.T, page string) (int, int) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	elements := 0
	var depth func(n *html.Node, d int) int
	depth = func(n *html.Node, d int) int {
		best := d
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type != html.ElementNode {
				continue
			}
			cd := d + 1
			switch c.Data {
			case "html", "head", "body":
				cd = d
			default:
				elements++
			}
			best = max(best, depth(c, cd))
		}
		return best
	}
	return depth(doc, 0), elements
}

func TestMeasure(t *testing.T) {
	cases := []struct {
		name     string
		page     string
		depth    int
		elements int
	}{
		{"text", "just text", 0, 0},
		{"nested", "<div><div><span>x</span></div></div>", 3, 3},
		{"document", "<!doctype html><html><head><title>t</title></head><body><p>a</p></body></html>", 1, 5},
		{"unclosed paragraphs", "<p>a<p>b<p>c<p>d", 1, 4},
		{"paragraph closed by div", "<p>a<div>b</div>", 1, 2},
		{"list items", "<ul><li>a<li>b<li>c</ul>", 2, 4},
		{"definition list", "<dl><dt>a<dd>b<dt>c<dd>d</dl>", 2, 5},
		{"table with implied sections", "<table><tr><td>a<td>b<tr><td>c</table>", 4, 7},
		{"void elements", "<br><img src=x><hr><input>", 1, 4},
		{"self-closing div opens", "<div/><div/><div/>", 3, 3},
		{"self-closing in svg", "<svg><g/><g/><path/></svg>", 2, 4},
		{"raw text", "<script><div><div><div></script><style><p><p></style>", 1, 2},
		{"stray end tags", "</div></span><b>x</b></p>", 1, 2},
		{"misnested inline", "<div><span><div></span>x</div></div>", 3, 3},
		{"options", "<select><option>a<option>b<optgroup><option>c</select>", 3, 5},
		{"headings", "<h1>a<h2>b", 1, 2},
		{"custom elements", "<my-el><my-el><other-el></other-el></my-el></my-el>", 3, 3},
		{"anchors do not nest", "<a href=1>x<a href=2>y<a href=3>z", 1, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Measure(c.page, Limits{})
			if got.Depth != c.depth || got.Elements != c.elements {
				t.Errorf("got depth %d, %d elements; want %d, %d", got.Depth, got.Elements, c.depth, c.elements)
			}
			if d := parsedDepth(t, c.page); d > got.Depth {
				t.Errorf("the parser nests %d deep, Measure says %d", d, got.Depth)
			}
		})
	}
}

// TestPathological: the pages of the issue are measured deep, and
// Measure stops at the limit instead of walking on.
func TestPathological(t *testing.T) {
	tables := strings.Repeat("<table><tr><td>", 5000)
	divs := strings.Repeat("<div>", 100000)
	if got := Measure(tables, Limits{}); got.Depth < 15000 {
		t.Errorf("5,000 unclosed tables: depth %d", got.Depth)
	}
	if got := Measure(divs, Limits{}); got.Depth != 100000 {
		t.Errorf("100,000 nested divs: depth %d", got.Depth)
	}
	if got := Measure(divs, Limits{MaxDepth: 256}); got.Depth != 257 || got.Elements != 257 {
		t.Errorf("with a limit of 256: %+v", got)
	}
	wide := strings.Repeat("<p>x</p>", 200000)
	if got := Measure(wide, Limits{MaxElements: 1000}); got.Depth != 1 || got.Elements != 1001 {
		t.Errorf("200,000 paragraphs with a limit of 1000 elements: %+v", got)
	}
}

// TestAgainstParser compares Measure with the tree x/net/html builds, on
// random tag soup (every kind of misnesting) and on constructions that
// make a parser create more elements than there are tags: the parser's
// tree is never more than a small factor deeper or larger than measured,
// so limits on the measure bound the parser's work.
func TestAgainstParser(t *testing.T) {
	check := func(name, page string) {
		t.Helper()
		got := Measure(page, Limits{})
		depth, elements := parsed(t, page)
		if depth > 3*got.Depth+3 || elements > got.Elements*3/2+10 {
			t.Errorf("%s: measured %+v, the parser builds depth %d with %d elements:\n%.300s", name, got, depth, elements, page)
		}
	}
	tags := []string{"div", "p", "span", "b", "i", "a", "li", "ul", "ol", "table", "tr", "td", "th", "tbody",
		"dl", "dt", "dd", "section", "h2", "em", "br", "img", "select", "option", "form", "button", "svg", "g", "my-el",
		"font", "b class=x", "i id=1", "i id=2", "strong", "nobr", "caption", "object"}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 600 {
		var b strings.Builder
		for range 1 + rng.IntN(600) {
			tag := tags[rng.IntN(len(tags))]
			switch rng.IntN(5) {
			case 0, 1, 2:
				fmt.Fprintf(&b, "<%s>", tag)
			case 3:
				tag, _, _ = strings.Cut(tag, " ")
				fmt.Fprintf(&b, "</%s>", tag)
			case 4:
				b.WriteString("text ")
			}
		}
		check(fmt.Sprintf("soup %d", n), b.String())
	}
	for name, page := range map[string]string{
		"adoption agency":           strings.Repeat("<b><i><u><em><strong><s><small><tt><div>x</b>", 300),
		"anchors across blocks":     strings.Repeat("<a>x<div><a>y", 300),
		"reopened formatting":       "<p>" + strings.Repeat("<b id=x>", 50) + strings.Repeat("<b class=y>", 50) + "</p>" + strings.Repeat("<p>x</p>", 500),
		"formatting in table cells": strings.Repeat("<table><td><b><i><u>x", 200),
		"formatting around blocks":  strings.Repeat("<font><div>", 300) + strings.Repeat("</font>", 300),
		"select in table":           strings.Repeat("<table><tr><td><select><option>x<td>", 200),
		"svg":                       strings.Repeat("<svg><g><option><td><div>", 200),
	} {
		check(name, page)
	}
}
