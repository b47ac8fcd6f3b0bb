// Package htmlshape measures the tree an HTML page would build — how deeply
// elements nest and how many there are — in one linear pass over its
// tokens, without building it. Pages whose tree is pathologically deep or
// large make HTML parsers and main-text extractors take quadratic time or
// gigabytes of memory (5,000 unclosed <table><tr><td>, 100,000 nested
// <div>); measuring first lets a caller refuse them cheaply.
//
// The depth follows the HTML5 tree-construction rules that matter for
// nesting: void elements and a non-void element's "/>" in foreign (SVG,
// MathML) content open nothing; <p>, <li>, <dt>/<dd>, <option>, <tr>,
// <td>/<th> and table sections close their open predecessors as the parser
// would (so unclosed paragraphs and list items do not nest); a table inside
// a cell nests, with the implied tbody and tr counted; end tags close what
// the parser closes; and formatting elements (b, i, a, font, …) left open
// are reopened wherever the parser reopens them ("reconstructing the active
// formatting elements"), which is counted in both numbers — a page can use
// it to make a parser create far more elements than it has tags. Elements
// a parser would ignore are still counted in Elements. For misnested markup
// the result may be somewhat above a real parser's (it follows the stack of
// open elements, and simplifies the adoption agency), rarely below.
package htmlshape

import (
	"slices"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Shape is what Measure found.
type Shape struct {
	Depth    int // deepest nesting of elements below <body> (0: only text)
	Elements int // start tags, plus the table sections and rows they imply
}

// Limits stop a measurement early: Measure returns as soon as Depth
// exceeds MaxDepth or Elements exceeds MaxElements (0: no limit).
type Limits struct {
	MaxDepth, MaxElements int
}

type open struct {
	a       atom.Atom
	name    string    // for elements without an atom (custom elements)
	fe      *fmtEntry // its entry in the active formatting list, if any
	foreign bool      // an SVG or MathML element
}

// fmtEntry is an entry of the list of active formatting elements: a
// formatting element (open or not), or a marker (cells, captions, objects).
type fmtEntry struct {
	a      atom.Atom
	key    string // tag and attributes, for the "Noah's ark" limit
	marker bool
	open   bool // on the stack of open elements
}

func (o open) is(a atom.Atom, name string) bool {
	if a != 0 || o.a != 0 {
		return o.a == a
	}
	return o.name == name
}

// Measure returns the shape of page's tree, stopping once a limit is
// exceeded (the returned value then exceeds it).
func Measure(page string, lim Limits) Shape {
	m := measurer{lim: lim, count: map[atom.Atom]int{}}
	z := html.NewTokenizer(strings.NewReader(page))
	for !m.over() {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return m.shape
		case html.TextToken:
			if !m.inForeign() && len(strings.TrimSpace(string(z.Raw()))) > 0 {
				m.reconstruct()
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			key := ""
			if isFormatting(a) {
				key = formattingKey(z, name, hasAttr)
			}
			m.start(a, string(name), key, tt == html.SelfClosingTagToken)
		case html.EndTagToken:
			name, _ := z.TagName()
			m.end(atom.Lookup(name), string(name))
		}
	}
	return m.shape
}

// formattingKey identifies a formatting element by its tag and attributes.
func formattingKey(z *html.Tokenizer, name []byte, hasAttr bool) string {
	var attrs []string
	for hasAttr {
		var k, v []byte
		k, v, hasAttr = z.TagAttr()
		attrs = append(attrs, string(k)+"="+string(v))
	}
	slices.Sort(attrs)
	return string(name) + "\x00" + strings.Join(attrs, "\x00")
}

type measurer struct {
	lim   Limits
	stack []open
	count map[atom.Atom]int // open elements by tag (for atoms), so most searches are O(1)
	afe   []*fmtEntry       // the list of active formatting elements
	shape Shape
}

func (m *measurer) over() bool {
	return m.lim.MaxDepth > 0 && m.shape.Depth > m.lim.MaxDepth ||
		m.lim.MaxElements > 0 && m.shape.Elements > m.lim.MaxElements
}

func (m *measurer) push(a atom.Atom, name string) {
	m.pushEntry(a, name, nil)
}

func (m *measurer) pushEntry(a atom.Atom, name string, fe *fmtEntry) {
	o := open{a: a, fe: fe}
	if a == 0 {
		o.name = name
	}
	if fe != nil {
		fe.open = true
	}
	m.stack = append(m.stack, o)
	m.count[a]++
	m.shape.Elements++
	m.shape.Depth = max(m.shape.Depth, len(m.stack))
	if isMarkerElement(a) {
		m.afe = append(m.afe, &fmtEntry{marker: true})
	}
}

// reconstruct reopens the formatting elements that were closed implicitly
// (by the end of an element containing them) and never ended, as the
// parser does before inserting text or inline elements.
func (m *measurer) reconstruct() {
	n := len(m.afe)
	if n == 0 || m.afe[n-1].marker || m.afe[n-1].open {
		return
	}
	i := n - 1
	for i > 0 && !m.afe[i-1].marker && !m.afe[i-1].open {
		i--
	}
	for ; i < n && !m.over(); i++ {
		m.pushEntry(m.afe[i].a, "", m.afe[i])
	}
}

// clearToMarker drops the formatting entries after the last marker, and
// the marker (when a cell, caption or object ends).
func (m *measurer) clearToMarker() {
	for len(m.afe) > 0 {
		e := m.afe[len(m.afe)-1]
		m.afe = m.afe[:len(m.afe)-1]
		if e.marker {
			return
		}
	}
}

// lastFormatting returns the index in the active formatting list of the
// last entry for a after the last marker, or -1.
func (m *measurer) lastFormatting(a atom.Atom) int {
	for i := len(m.afe) - 1; i >= 0; i-- {
		if m.afe[i].marker {
			return -1
		}
		if m.afe[i].a == a {
			return i
		}
	}
	return -1
}

func (m *measurer) removeFormatting(i int) {
	m.afe = slices.Delete(m.afe, i, i+1)
}

// addFormatting appends a formatting element's entry; of entries with the
// same tag and attributes after the last marker only the last three stay.
func (m *measurer) addFormatting(a atom.Atom, key string) *fmtEntry {
	same, first := 0, -1
	for i := len(m.afe) - 1; i >= 0 && !m.afe[i].marker; i-- {
		if m.afe[i].key == key {
			same++
			first = i
		}
	}
	if same >= 3 {
		m.removeFormatting(first)
	}
	e := &fmtEntry{a: a, key: key}
	m.afe = append(m.afe, e)
	return e
}

// endFormatting ends a formatting element (a simplified adoption agency):
// it is closed with what it contains when nothing special is open inside
// it, and taken out of the stack on its own otherwise. It reports false
// when a is not an active formatting element.
func (m *measurer) endFormatting(a atom.Atom) bool {
	i := m.lastFormatting(a)
	if i < 0 {
		return false
	}
	fe := m.afe[i]
	if !fe.open {
		m.removeFormatting(i)
		return true
	}
	k := -1
	for j := len(m.stack) - 1; j >= 0; j-- {
		if m.stack[j].fe == fe {
			k = j
			break
		}
		if defaultScope(m.stack[j].a) {
			return true // not in scope: ignored
		}
	}
	if k < 0 {
		m.removeFormatting(i)
		return true
	}
	m.removeFormatting(i)
	block := -1
	for j := k + 1; j < len(m.stack) && block < 0; j++ {
		if isSpecial(m.stack[j].a) {
			block = j
		}
	}
	if block < 0 {
		m.popTo(k)
		return true
	}
	// With a block inside, the parser moves the block under a clone of
	// the element, cloning up to three formatting elements in between.
	between := 0
	for j := k + 1; j < block; j++ {
		if m.stack[j].fe != nil {
			between++
		}
	}
	m.shape.Elements += 1 + min(between, 3)
	fe.open = false
	m.count[m.stack[k].a]--
	m.stack = slices.Delete(m.stack, k, k+1)
	return true
}

// leaf counts an element that opens nothing (a void element).
func (m *measurer) leaf() {
	m.shape.Elements++
	m.shape.Depth = max(m.shape.Depth, len(m.stack)+1)
}

func (m *measurer) top() atom.Atom {
	if len(m.stack) == 0 {
		return 0
	}
	return m.stack[len(m.stack)-1].a
}

// popTo pops the elements above index i and the element at i.
func (m *measurer) popTo(i int) {
	for j := len(m.stack) - 1; j >= i; j-- {
		m.count[m.stack[j].a]--
		if fe := m.stack[j].fe; fe != nil {
			fe.open = false
		}
		if isMarkerElement(m.stack[j].a) {
			m.clearToMarker()
		}
	}
	m.stack = m.stack[:i]
}

// find returns the index of the nearest open element a (or named name),
// searching down from the top and stopping at any element in stop; -1 if
// none.
func (m *measurer) find(a atom.Atom, name string, stop func(atom.Atom) bool) int {
	if a != 0 && m.count[a] == 0 {
		return -1
	}
	for i := len(m.stack) - 1; i >= 0; i-- {
		if m.stack[i].is(a, name) {
			return i
		}
		if stop != nil && stop(m.stack[i].a) {
			return -1
		}
	}
	return -1
}

// inForeign reports whether start tags are read as SVG or MathML: the
// current element is foreign and not an integration point (where HTML
// resumes).
func (m *measurer) inForeign() bool {
	if len(m.stack) == 0 || !m.stack[len(m.stack)-1].foreign {
		return false
	}
	switch m.stack[len(m.stack)-1].a {
	case atom.Foreignobject, atom.ForeignObject, atom.Desc, atom.Title, atom.Mi, atom.Mo, atom.Mn, atom.Ms, atom.Mtext, atom.AnnotationXml:
		return false
	}
	return true
}

func (m *measurer) pushForeign(a atom.Atom, name string) {
	m.push(a, name)
	m.stack[len(m.stack)-1].foreign = true
}

// closeP closes an open <p> in button scope.
func (m *measurer) closeP() {
	if i := m.find(atom.P, "", buttonScope); i >= 0 {
		m.popTo(i)
	}
}

// tableContext returns the index of the nearest open table part (or -1).
func (m *measurer) tableContext() int {
	if m.count[atom.Table] == 0 && m.count[atom.Td] == 0 && m.count[atom.Th] == 0 && m.count[atom.Tr] == 0 &&
		m.count[atom.Tbody] == 0 && m.count[atom.Thead] == 0 && m.count[atom.Tfoot] == 0 && m.count[atom.Caption] == 0 {
		return -1
	}
	for i := len(m.stack) - 1; i >= 0; i-- {
		switch m.stack[i].a {
		case atom.Table, atom.Tbody, atom.Thead, atom.Tfoot, atom.Tr, atom.Td, atom.Th, atom.Caption:
			return i
		case atom.Template, atom.Html:
			return -1
		}
	}
	return -1
}

// popToTablePart pops down to the nearest open element among parts,
// keeping it; it reports whether one was found below the nearest table.
func (m *measurer) popToTablePart(parts ...atom.Atom) bool {
	for i := len(m.stack) - 1; i >= 0; i-- {
		for _, p := range parts {
			if m.stack[i].a == p {
				m.popTo(i + 1)
				return true
			}
		}
		if m.stack[i].a == atom.Table {
			return false
		}
	}
	return false
}

func (m *measurer) start(a atom.Atom, name, key string, selfClosing bool) {
	if m.inForeign() {
		if !breaksOut(a) {
			if selfClosing {
				m.leaf()
			} else {
				m.pushForeign(a, name)
			}
			return
		}
		// An HTML tag ends the foreign content.
		for len(m.stack) > 0 && m.inForeign() {
			m.popTo(len(m.stack) - 1)
		}
	}
	switch a {
	case atom.Html, atom.Head, atom.Body:
		m.shape.Elements++
		return
	}
	if sel := m.find(atom.Select, "", notInSelect); sel >= 0 {
		// In a select only options and a few others count; another
		// select or a form control ends it.
		switch a {
		case atom.Option, atom.Optgroup, atom.Hr, atom.Script, atom.Template:
		case atom.Select:
			m.shape.Elements++
			m.popTo(sel)
			return
		case atom.Input, atom.Keygen, atom.Textarea:
			m.popTo(sel)
		case atom.Caption, atom.Table, atom.Tbody, atom.Tfoot, atom.Thead, atom.Tr, atom.Td, atom.Th:
			// A select in a table ends at the table's tags.
			if m.find(atom.Table, "", nil) < 0 {
				m.shape.Elements++
				return
			}
			m.popTo(sel)
		default:
			m.shape.Elements++
			return
		}
	}
	if reconstructsBefore(a) {
		m.reconstruct()
	}
	if isVoid(a) || selfClosing && (a == atom.Svg || a == atom.Math) {
		m.leaf()
		return
	}
	if closesP(a) {
		m.closeP()
	}
	switch a {
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		switch m.top() {
		case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
			m.popTo(len(m.stack) - 1)
		}
	case atom.Li:
		m.closeListItem(func(x atom.Atom) bool { return x == atom.Li })
	case atom.Dd, atom.Dt:
		m.closeListItem(func(x atom.Atom) bool { return x == atom.Dd || x == atom.Dt })
	case atom.Option:
		if m.top() == atom.Option {
			m.popTo(len(m.stack) - 1)
		}
	case atom.Optgroup:
		if m.top() == atom.Option {
			m.popTo(len(m.stack) - 1)
		}
		if m.top() == atom.Optgroup {
			m.popTo(len(m.stack) - 1)
		}
	case atom.A:
		if m.lastFormatting(atom.A) >= 0 {
			m.endFormatting(atom.A)
			if i := m.lastFormatting(atom.A); i >= 0 {
				m.removeFormatting(i)
			}
			m.reconstruct()
		}
	case atom.Nobr:
		if m.find(atom.Nobr, "", defaultScope) >= 0 {
			m.endFormatting(atom.Nobr)
			m.reconstruct()
		}
	case atom.Button:
		if i := m.find(a, "", defaultScope); i >= 0 {
			m.popTo(i)
		}
	case atom.Table:
		// A table directly in a table (not in a cell) ends it.
		if i := m.tableContext(); i >= 0 {
			switch m.stack[i].a {
			case atom.Table, atom.Tbody, atom.Thead, atom.Tfoot, atom.Tr:
				if t := m.find(atom.Table, "", nil); t >= 0 {
					m.popTo(t)
				}
			}
		}
	case atom.Tbody, atom.Thead, atom.Tfoot, atom.Caption, atom.Colgroup:
		if m.tableContext() < 0 {
			m.shape.Elements++ // ignored outside a table
			return
		}
		m.popToTablePart(atom.Table)
	case atom.Tr:
		if m.tableContext() < 0 {
			m.shape.Elements++
			return
		}
		if !m.popToTablePart(atom.Tbody, atom.Thead, atom.Tfoot) {
			m.popToTablePart(atom.Table)
			m.push(atom.Tbody, "")
		}
	case atom.Td, atom.Th:
		if m.tableContext() < 0 {
			m.shape.Elements++
			return
		}
		if !m.popToTablePart(atom.Tr) {
			if !m.popToTablePart(atom.Tbody, atom.Thead, atom.Tfoot) {
				m.popToTablePart(atom.Table)
				m.push(atom.Tbody, "")
			}
			m.push(atom.Tr, "")
		}
	}
	switch {
	case isFormatting(a):
		m.pushEntry(a, name, m.addFormatting(a, key))
	case a == atom.Svg || a == atom.Math:
		m.pushForeign(a, name)
	default:
		m.push(a, name)
	}
}

// closeListItem closes an open list item (li, or dd/dt) as the parser
// does: searching down past address, div and p, stopping at other special
// elements.
func (m *measurer) closeListItem(item func(atom.Atom) bool) {
	for i := len(m.stack) - 1; i >= 0; i-- {
		x := m.stack[i].a
		if item(x) {
			m.popTo(i)
			return
		}
		if isSpecial(x) && x != atom.Address && x != atom.Div && x != atom.P {
			return
		}
	}
}

func (m *measurer) end(a atom.Atom, name string) {
	// In foreign content an end tag closes the nearest foreign element of
	// its name; reaching HTML, it is read by the HTML rules.
	for i := len(m.stack) - 1; i >= 0 && m.stack[i].foreign; i-- {
		if m.stack[i].is(a, name) {
			m.popTo(i)
			return
		}
	}
	if m.find(atom.Select, "", notInSelect) >= 0 {
		switch a {
		case atom.Option, atom.Optgroup, atom.Select:
		default:
			return // ignored in a select
		}
	}
	switch a {
	case atom.Html, atom.Head, atom.Body:
		return
	case atom.Table, atom.Tbody, atom.Thead, atom.Tfoot, atom.Tr:
		if i := m.find(a, "", func(x atom.Atom) bool { return x == atom.Table || x == atom.Template || x == atom.Html }); i >= 0 {
			m.popTo(i)
		}
		return
	case atom.P:
		if i := m.find(a, "", buttonScope); i >= 0 {
			m.popTo(i)
		} else {
			m.leaf() // </p> without <p> makes an empty paragraph
		}
		return
	case atom.Br:
		m.reconstruct() // </br> is read as <br>
		m.leaf()
		return
	case atom.Li:
		if i := m.find(a, "", listItemScope); i >= 0 {
			m.popTo(i)
		}
		return
	}
	if isFormatting(a) && m.endFormatting(a) {
		return
	}
	if isSpecial(a) {
		if i := m.find(a, "", defaultScope); i >= 0 {
			m.popTo(i)
		}
		return
	}
	// Any other end tag: close the nearest such element unless a special
	// element comes first.
	if i := m.find(a, name, isSpecial); i >= 0 {
		m.popTo(i)
	}
}

// notInSelect stops the search for an open select at anything a select
// cannot contain.
func notInSelect(a atom.Atom) bool { return a != atom.Option && a != atom.Optgroup }

func defaultScope(a atom.Atom) bool {
	switch a {
	case atom.Applet, atom.Caption, atom.Html, atom.Table, atom.Td, atom.Th, atom.Marquee, atom.Object, atom.Template,
		atom.Mi, atom.Mo, atom.Mn, atom.Ms, atom.Mtext, atom.AnnotationXml, atom.ForeignObject, atom.Desc, atom.Title:
		return true
	}
	return false
}

func buttonScope(a atom.Atom) bool { return a == atom.Button || defaultScope(a) }

func listItemScope(a atom.Atom) bool { return a == atom.Ol || a == atom.Ul || defaultScope(a) }

// breaksOut lists the HTML tags that end foreign content.
func breaksOut(a atom.Atom) bool {
	switch a {
	case atom.B, atom.Big, atom.Blockquote, atom.Body, atom.Br, atom.Center, atom.Code, atom.Dd, atom.Div, atom.Dl,
		atom.Dt, atom.Em, atom.Embed, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Head, atom.Hr,
		atom.I, atom.Img, atom.Li, atom.Listing, atom.Menu, atom.Meta, atom.Nobr, atom.Ol, atom.P, atom.Pre,
		atom.Ruby, atom.S, atom.Small, atom.Span, atom.Strong, atom.Strike, atom.Sub, atom.Sup, atom.Table,
		atom.Tt, atom.U, atom.Ul, atom.Var:
		return true
	}
	return false
}

func isFormatting(a atom.Atom) bool {
	switch a {
	case atom.A, atom.B, atom.Big, atom.Code, atom.Em, atom.Font, atom.I, atom.Nobr, atom.S, atom.Small,
		atom.Strike, atom.Strong, atom.Tt, atom.U:
		return true
	}
	return false
}

// isMarkerElement lists the elements that put a marker in the active
// formatting list (formatting does not leak into or out of them).
func isMarkerElement(a atom.Atom) bool {
	switch a {
	case atom.Td, atom.Th, atom.Caption, atom.Applet, atom.Marquee, atom.Object, atom.Template:
		return true
	}
	return false
}

// reconstructsBefore reports whether the parser reopens closed formatting
// elements before inserting a start tag: inline and unknown elements,
// void elements and form controls, not blocks.
func reconstructsBefore(a atom.Atom) bool {
	if isFormatting(a) {
		return true
	}
	switch a {
	case atom.Applet, atom.Marquee, atom.Object, atom.Area, atom.Br, atom.Embed, atom.Img, atom.Keygen, atom.Wbr,
		atom.Input, atom.Select, atom.Optgroup, atom.Option, atom.Math, atom.Svg, atom.Image:
		return true
	}
	return !isSpecial(a)
}

func isVoid(a atom.Atom) bool {
	switch a {
	case atom.Area, atom.Base, atom.Br, atom.Col, atom.Embed, atom.Hr, atom.Img, atom.Input, atom.Keygen,
		atom.Link, atom.Meta, atom.Param, atom.Source, atom.Track, atom.Wbr, atom.Frame, atom.Basefont, atom.Bgsound, atom.Image:
		return true
	}
	return false
}

// closesP lists the start tags that close an open <p>.
func closesP(a atom.Atom) bool {
	switch a {
	case atom.Address, atom.Article, atom.Aside, atom.Blockquote, atom.Center, atom.Details, atom.Dialog, atom.Dir,
		atom.Div, atom.Dl, atom.Fieldset, atom.Figcaption, atom.Figure, atom.Footer, atom.Header, atom.Hgroup,
		atom.Main, atom.Menu, atom.Nav, atom.Ol, atom.P, atom.Section, atom.Summary, atom.Ul,
		atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Pre, atom.Listing, atom.Form, atom.Plaintext,
		atom.Li, atom.Dd, atom.Dt, atom.Table, atom.Xmp:
		return true
	}
	return false
}

// isSpecial lists the HTML5 "special" elements.
func isSpecial(a atom.Atom) bool {
	switch a {
	case atom.Address, atom.Applet, atom.Area, atom.Article, atom.Aside, atom.Base, atom.Basefont, atom.Bgsound,
		atom.Blockquote, atom.Body, atom.Br, atom.Button, atom.Caption, atom.Center, atom.Col, atom.Colgroup,
		atom.Dd, atom.Details, atom.Dir, atom.Div, atom.Dl, atom.Dt, atom.Embed, atom.Fieldset, atom.Figcaption,
		atom.Figure, atom.Footer, atom.Form, atom.Frame, atom.Frameset, atom.H1, atom.H2, atom.H3, atom.H4,
		atom.H5, atom.H6, atom.Head, atom.Header, atom.Hgroup, atom.Hr, atom.Html, atom.Iframe, atom.Img,
		atom.Input, atom.Keygen, atom.Li, atom.Link, atom.Listing, atom.Main, atom.Marquee, atom.Menu, atom.Meta,
		atom.Nav, atom.Noembed, atom.Noframes, atom.Noscript, atom.Object, atom.Ol, atom.P, atom.Param,
		atom.Plaintext, atom.Pre, atom.Script, atom.Section, atom.Select, atom.Source, atom.Style,
		atom.Summary, atom.Table, atom.Tbody, atom.Td, atom.Template, atom.Textarea, atom.Tfoot, atom.Th,
		atom.Thead, atom.Title, atom.Tr, atom.Track, atom.Ul, atom.Wbr, atom.Xmp:
		return true
	}
	return false
}
