// Package planted builds test corpora with known duplicates from real
// text: documents cut from the corpora in ../shared/testdata/corpora
// (SpamAssassin mail bodies, KJV chapters, fortune records, Jargon File,
// Debian Reference and Devil's Dictionary passages), plus planted exact
// copies, near copies (small edits) and boilerplate lines shared by many
// documents. Everything is derived from a seed, and the ground truth says
// which document is a copy of which.
package planted

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
)

// Source is one document-sized chunk of a corpus file.
type Source struct {
	Name string // corpus and position, e.g. "kjv.txt#12"
	Text string
}

// Kind says how a generated document came about.
type Kind int

const (
	// Original is a source chunk (possibly with boilerplate lines added).
	Original Kind = iota
	// Exact is a copy of an original's final text, byte-identical or with
	// only whitespace and letter case changed.
	Exact
	// Near is a copy of an original's content with small edits (see Config).
	Near
)

func (k Kind) String() string {
	switch k {
	case Original:
		return "original"
	case Exact:
		return "exact"
	case Near:
		return "near"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Doc is a generated document with its ground truth.
type Doc struct {
	ID     uint64
	Text   string
	Source string // Source.Name of the chunk it derives from
	Kind   Kind
	// Group is the id of the Original the document derives from (its own
	// id for an Original). Documents with equal Group are planted duplicates.
	Group uint64
	// Edits describes the edits of a Near copy ("sub 3 words", "swap paragraphs 1,4", ...).
	Edits []string
	// Boilerplate lists the boilerplate lines added to this document.
	Boilerplate []string
}

// Corpus is a generated corpus. Docs are in id order (ids 0..n-1, copies
// shuffled among originals, so a copy may come before its original).
type Corpus struct {
	Docs []Doc
	// BoilerplateLines is the pool of boilerplate lines that were planted.
	BoilerplateLines []string
}

// Config controls generation. Zero fields take the documented defaults.
type Config struct {
	// Dir is the corpora folder (../shared/testdata/corpora from the repo root); required.
	Dir string
	// Seed makes the corpus deterministic.
	Seed uint64
	// Originals is the number of source chunks used; default 2000.
	Originals int
	// MinWords drops chunks shorter than this many words; default 60.
	MinWords int
	// ExactCopies and NearCopies are the numbers of planted copies;
	// default 10% of Originals each. An original gets at most one copy of
	// each kind.
	ExactCopies, NearCopies int
	// EditRate bounds near-copy edits: each near copy gets 1–3 edit
	// operations (substitute, insert or delete words; swap two
	// paragraphs; change whitespace) touching in total at most
	// EditRate × words words (at least 1); default 0.02.
	EditRate float64
	// BoilerplateFraction of the documents get 1–3 boilerplate lines
	// (cookie banners, navigation menus, footers) at the top or bottom;
	// default 0.3.
	BoilerplateFraction float64
}

func (c Config) withDefaults() Config {
	if c.Originals == 0 {
		c.Originals = 2000
	}
	if c.MinWords == 0 {
		c.MinWords = 60
	}
	if c.ExactCopies == 0 {
		c.ExactCopies = c.Originals / 10
	}
	if c.NearCopies == 0 {
		c.NearCopies = c.Originals / 10
	}
	if c.EditRate == 0 {
		c.EditRate = 0.02
	}
	if c.BoilerplateFraction == 0 {
		c.BoilerplateFraction = 0.3
	}
	return c
}

// Boilerplate is the pool of planted boilerplate lines.
var boilerplate = []string{
	"We use cookies to improve your experience. By continuing to browse you accept our use of cookies.",
	"Accept all cookies | Reject non-essential | Cookie settings",
	"Home | About Us | Products | Blog | Contact",
	"Skip to main content",
	"Subscribe to our newsletter for the latest updates and offers!",
	"Share this: Facebook Twitter LinkedIn Email Print",
	"Copyright 2024 Example Media Group. All rights reserved.",
	"Privacy Policy - Terms of Service - Sitemap - Accessibility",
	"Sign in or create an account to leave a comment.",
	"Related posts: You might also like these articles",
	"Advertisement - continue reading below",
	"Menu Search Login Register Cart (0)",
}

// Sources reads and chunks the corpora in dir. The result is deterministic.
func Sources(dir string) ([]Source, error) {
	var out []Source
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("planted: %w", err)
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	add := func(name string, chunks []string) {
		for i, c := range chunks {
			out = append(out, Source{Name: fmt.Sprintf("%s#%d", name, i), Text: c})
		}
	}
	kjv, err := read("kjv.txt")
	if err != nil {
		return nil, err
	}
	add("kjv.txt", kjvChapters(kjv))
	fort, err := read("fortunes.txt")
	if err != nil {
		return nil, err
	}
	add("fortunes.txt", packRecords(strings.Split(fort, "\n%\n"), 120))
	for _, name := range []string{"jargon.txt", "debian-reference.en.txt", "dict-devil.txt"} {
		t, err := read(name)
		if err != nil {
			return nil, err
		}
		add(name, packRecords(paragraphs(t), 200))
	}
	for _, group := range []string{"ham", "spam"} {
		files, err := filepath.Glob(filepath.Join(dir, "spamassassin", group, "*.txt"))
		if err != nil {
			return nil, fmt.Errorf("planted: %w", err)
		}
		slices.Sort(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("planted: %w", err)
			}
			out = append(out, Source{Name: "spamassassin/" + group + "/" + filepath.Base(f), Text: MailBody(string(b))})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("planted: no text found in " + dir)
	}
	return out, nil
}

// MailBody returns the body of an RFC 822 message (after the first blank
// line), with CRLF turned into LF and invalid UTF-8 replaced.
func MailBody(msg string) string {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	if _, body, ok := strings.Cut(msg, "\n\n"); ok {
		msg = body
	}
	return strings.ToValidUTF8(msg, "\uFFFD")
}

// kjvChapters splits the KJV at its "Book N" heading lines.
func kjvChapters(t string) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(t))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line != "" && !strings.HasPrefix(line, " ") && strings.TrimSpace(cur.String()) != "" {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if cur.Len() > 0 {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}

// paragraphs splits at blank lines.
func paragraphs(t string) []string {
	var out []string
	for _, p := range strings.Split(strings.ReplaceAll(t, "\r\n", "\n"), "\n\n") {
		if p = strings.Trim(p, "\n"); strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}

// packRecords joins consecutive records (paragraphs, fortunes) with blank
// lines until each chunk has at least minWords words.
func packRecords(recs []string, minWords int) []string {
	var out []string
	var cur []string
	words := 0
	for _, r := range recs {
		if strings.TrimSpace(r) == "" {
			continue
		}
		cur = append(cur, strings.Trim(r, "\n"))
		words += len(strings.Fields(r))
		if words >= minWords {
			out = append(out, strings.Join(cur, "\n\n"))
			cur, words = nil, 0
		}
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, "\n\n"))
	}
	return out
}

// Generate builds a corpus from the sources in cfg.Dir.
func Generate(cfg Config) (*Corpus, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("planted: Config.Dir (the corpora folder) is required")
	}
	srcs, err := Sources(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return fromSources(srcs, cfg)
}

// fromSources builds a corpus from given sources (cfg.Dir is not used).
// Sources with fewer than MinWords words and repeated texts (after
// whitespace and case normalization) are skipped, so the only duplicates
// with the same normalized text are planted ones.
func fromSources(srcs []Source, cfg Config) (*Corpus, error) {
	cfg = cfg.withDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x706c616e746564))
	seen := map[string]bool{}
	var pool []Source
	for _, s := range srcs {
		f := strings.Fields(s.Text)
		if len(f) < cfg.MinWords {
			continue
		}
		key := strings.ToLower(strings.Join(f, " "))
		if seen[key] {
			continue
		}
		seen[key] = true
		pool = append(pool, s)
	}
	if len(pool) < cfg.Originals {
		return nil, fmt.Errorf("planted: %d usable sources (≥ %d words), want %d originals", len(pool), cfg.MinWords, cfg.Originals)
	}
	if cfg.ExactCopies > cfg.Originals || cfg.NearCopies > cfg.Originals {
		return nil, fmt.Errorf("planted: %d exact and %d near copies need as many originals; have %d", cfg.ExactCopies, cfg.NearCopies, cfg.Originals)
	}
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	pool = pool[:cfg.Originals]

	type proto struct {
		d       Doc
		content string // text before boilerplate
		origIdx int
	}
	docs := make([]proto, 0, cfg.Originals+cfg.ExactCopies+cfg.NearCopies)
	for i, s := range pool {
		docs = append(docs, proto{d: Doc{Source: s.Name, Kind: Original}, content: s.Text, origIdx: i})
	}
	for i := range docs {
		docs[i].d.Text, docs[i].d.Boilerplate = addBoilerplate(rng, docs[i].content, cfg.BoilerplateFraction)
	}
	nearOf := rng.Perm(cfg.Originals)[:cfg.NearCopies]
	for _, oi := range nearOf {
		text, edits := nearCopy(rng, docs[oi].content, cfg.EditRate)
		d := Doc{Source: docs[oi].d.Source, Kind: Near, Edits: edits}
		d.Text, d.Boilerplate = addBoilerplate(rng, text, cfg.BoilerplateFraction)
		docs = append(docs, proto{d: d, origIdx: oi})
	}
	exactOf := rng.Perm(cfg.Originals)[:cfg.ExactCopies]
	for _, oi := range exactOf {
		text := docs[oi].d.Text
		var edits []string
		if rng.IntN(2) == 1 {
			text, edits = whitespaceCase(rng, text), []string{"whitespace and case"}
		}
		docs = append(docs, proto{d: Doc{Text: text, Source: docs[oi].d.Source, Kind: Exact, Edits: edits, Boilerplate: docs[oi].d.Boilerplate}, origIdx: oi})
	}
	order := rng.Perm(len(docs))
	idOf := make([]uint64, cfg.Originals) // original index → id
	for id, k := range order {
		if docs[k].d.Kind == Original {
			idOf[docs[k].origIdx] = uint64(id)
		}
	}
	c := &Corpus{Docs: make([]Doc, len(docs)), BoilerplateLines: slices.Clone(boilerplate)}
	for id, k := range order {
		d := docs[k].d
		d.ID = uint64(id)
		d.Group = idOf[docs[k].origIdx]
		c.Docs[id] = d
	}
	return c, nil
}

func addBoilerplate(rng *rand.Rand, text string, frac float64) (string, []string) {
	if rng.Float64() >= frac {
		return text, nil
	}
	n := 1 + rng.IntN(3)
	lines := make([]string, n)
	for i := range lines {
		lines[i] = boilerplate[rng.IntN(len(boilerplate))]
	}
	var top, bottom []string
	for _, l := range lines {
		if rng.IntN(2) == 0 {
			top = append(top, l)
		} else {
			bottom = append(bottom, l)
		}
	}
	var b strings.Builder
	for _, l := range top {
		b.WriteString(l + "\n")
	}
	b.WriteString(text)
	for _, l := range bottom {
		b.WriteString("\n" + l)
	}
	return b.String(), lines
}

// whitespaceCase changes only whitespace and letter case.
func whitespaceCase(rng *rand.Rand, text string) string {
	var b strings.Builder
	for _, r := range text {
		switch {
		case r == ' ' && rng.IntN(8) == 0:
			b.WriteString("  ")
		case unicode.IsLetter(r) && rng.IntN(16) == 0:
			b.WriteRune(unicode.ToUpper(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String() + "\n"
}

// replacement words for substitutions and insertions.
var vocab = strings.Fields(`also very quite indeed perhaps however certainly many several
various new old great small large early late public private local general special
system people world house water night point group number place report moment story
rather simply often never always sometimes together already`)

// nearCopy applies 1–3 small edits to text.
func nearCopy(rng *rand.Rand, text string, rate float64) (string, []string) {
	words := len(strings.Fields(text))
	budget := max(1, int(rate*float64(words)))
	ops := 1 + rng.IntN(3)
	var edits []string
	for o := range ops {
		share := budget / ops
		if o == 0 {
			share += budget % ops
		}
		switch rng.IntN(5) {
		case 0, 1:
			if share == 0 {
				continue
			}
			text = editWords(rng, text, share, 0)
			edits = append(edits, fmt.Sprintf("sub %d words", share))
		case 2:
			if share == 0 {
				continue
			}
			text = editWords(rng, text, share, 1)
			edits = append(edits, fmt.Sprintf("insert %d words", share))
		case 3:
			if share == 0 {
				continue
			}
			text = editWords(rng, text, share, 2)
			edits = append(edits, fmt.Sprintf("delete %d words", share))
		case 4:
			paras := strings.Split(text, "\n\n")
			if len(paras) >= 3 {
				i, j := rng.IntN(len(paras)), rng.IntN(len(paras))
				paras[i], paras[j] = paras[j], paras[i]
				text = strings.Join(paras, "\n\n")
				edits = append(edits, fmt.Sprintf("swap paragraphs %d,%d", i, j))
			} else {
				text = strings.ReplaceAll(text, "\n", " \n")
				edits = append(edits, "whitespace")
			}
		}
	}
	if len(edits) == 0 {
		text = editWords(rng, text, 1, 0)
		edits = append(edits, "sub 1 words")
	}
	return text, edits
}

// editWords substitutes (op 0), inserts (1) or deletes (2) n words at
// random positions, keeping the rest of the text (line breaks included).
func editWords(rng *rand.Rand, text string, n, op int) string {
	type span struct{ lo, hi int }
	var spans []span
	in := false
	for i, r := range text {
		sp := unicode.IsSpace(r)
		if !sp && !in {
			spans = append(spans, span{i, i})
			in = true
		}
		if sp && in {
			spans[len(spans)-1].hi = i
			in = false
		}
	}
	if in {
		spans[len(spans)-1].hi = len(text)
	}
	if len(spans) == 0 {
		return text
	}
	pick := map[int]bool{}
	for len(pick) < min(n, len(spans)) {
		pick[rng.IntN(len(spans))] = true
	}
	var b strings.Builder
	prev := 0
	for i, s := range spans {
		if !pick[i] {
			continue
		}
		b.WriteString(text[prev:s.lo])
		w := vocab[rng.IntN(len(vocab))]
		switch op {
		case 0:
			b.WriteString(w)
		case 1:
			b.WriteString(w + " " + text[s.lo:s.hi])
		case 2:
		}
		prev = s.hi
	}
	b.WriteString(text[prev:])
	return b.String()
}
