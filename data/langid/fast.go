package langid

import (
	"slices"
	"sync"
	"unicode"
	"unicode/utf8"
	_ "unsafe" // go:linkname to whatlanggo's trigram profiles

	"github.com/abadojack/whatlanggo"
)

// The detector below gives the answers of whatlanggo.Detect (same scripts,
// same trigram profiles, same distance and confidence) about 50 times
// faster: script detection takes an ASCII fast path; trigrams are packed
// into uint64 keys and counted in a reused open-addressing table instead of
// a map of strings; and instead of looking up the 300 profile trigrams of
// every candidate language in the text's trigram map, each distinct trigram
// of the text is looked up once in an index of all profiles of its script,
// which lists the languages and ranks where it occurs.
//
// The profiles are whatlanggo's own (unexported) tables, reached by
// go:linkname so that no copy of them lives in this repository; the
// agreement test (fast_test.go) compares against whatlanggo.Detect.

//go:linkname wlLatin github.com/abadojack/whatlanggo.latinLangs
var wlLatin map[whatlanggo.Lang][]string

//go:linkname wlCyrillic github.com/abadojack/whatlanggo.cyrillicLangs
var wlCyrillic map[whatlanggo.Lang][]string

//go:linkname wlArabic github.com/abadojack/whatlanggo.arabicLangs
var wlArabic map[whatlanggo.Lang][]string

//go:linkname wlDevanagari github.com/abadojack/whatlanggo.devanagariLangs
var wlDevanagari map[whatlanggo.Lang][]string

//go:linkname wlEthiopic github.com/abadojack/whatlanggo.ethiopicLangs
var wlEthiopic map[whatlanggo.Lang][]string

//go:linkname wlHebrew github.com/abadojack/whatlanggo.hebrewLangs
var wlHebrew map[whatlanggo.Lang][]string

// Whatlanggo's constants: a missing trigram costs maxTrigramDistance, and
// scores are maxTotalDistance minus the distance.
const (
	maxTrigramDistance = 300
	maxTotalDistance   = 90000
)

// script is one script whatlanggo tells apart, with the language it
// implies or the profiles it scores.
type script struct {
	table *unicode.RangeTable
	lang  whatlanggo.Lang // when profiles is nil
	index *profileIndex
}

// profileIndex maps a packed trigram to the languages whose profile holds
// it and its rank there.
type profileIndex struct {
	langs   []whatlanggo.Lang // sorted: ties in distance go to the lower Lang
	sizes   []int             // profile length per language
	keys    []uint64          // open addressing over packed trigrams (0 = empty)
	spans   [][2]int32        // per slot: entries[lo:hi]
	entries []rankEntry
	mask    uint64
}

func slotOf(key, mask uint64) uint64 { return (key * 0x9e3779b97f4a7c15) >> 20 & mask }

// lookup returns the languages and ranks of a trigram.
func (ix *profileIndex) lookup(key uint64) []rankEntry {
	for i := slotOf(key, ix.mask); ; i = (i + 1) & ix.mask {
		switch ix.keys[i] {
		case key:
			sp := ix.spans[i]
			return ix.entries[sp[0]:sp[1]]
		case 0:
			return nil
		}
	}
}

type rankEntry struct {
	lang int32 // index into langs
	rank int32
}

// scriptOrder is whatlanggo's script order (it breaks ties between scripts).
var scriptOrder = []struct {
	table    *unicode.RangeTable
	lang     whatlanggo.Lang
	profiles *map[whatlanggo.Lang][]string
}{
	{unicode.Latin, -1, &wlLatin},
	{unicode.Cyrillic, -1, &wlCyrillic},
	{unicode.Arabic, -1, &wlArabic},
	{unicode.Devanagari, -1, &wlDevanagari},
	{nil, whatlanggo.Jpn, nil}, // Hiragana and Katakana
	{unicode.Ethiopic, -1, &wlEthiopic},
	{unicode.Hebrew, -1, &wlHebrew},
	{unicode.Bengali, whatlanggo.Ben, nil},
	{unicode.Georgian, whatlanggo.Kat, nil},
	{unicode.Han, whatlanggo.Cmn, nil},
	{unicode.Hangul, whatlanggo.Kor, nil},
	{unicode.Greek, whatlanggo.Ell, nil},
	{unicode.Kannada, whatlanggo.Kan, nil},
	{unicode.Tamil, whatlanggo.Tam, nil},
	{unicode.Thai, whatlanggo.Tha, nil},
	{unicode.Gujarati, whatlanggo.Guj, nil},
	{unicode.Gurmukhi, whatlanggo.Pan, nil},
	{unicode.Telugu, whatlanggo.Tel, nil},
	{unicode.Malayalam, whatlanggo.Mal, nil},
	{unicode.Oriya, whatlanggo.Ori, nil},
	{unicode.Myanmar, whatlanggo.Mya, nil},
	{unicode.Sinhala, whatlanggo.Sin, nil},
	{unicode.Khmer, whatlanggo.Khm, nil},
}

const (
	numScripts  = 23 // len(scriptOrder)
	scriptLatin = 0
	scriptKana  = 4
	scriptHan   = 9
)

// detector holds the read-only tables, built once.
type detector struct {
	scripts []script
	codes   map[whatlanggo.Lang]string // ISO codes (whatlanggo builds a map per lookup)
	pool    sync.Pool                  // *scratch
}

var theDetector = sync.OnceValue(newDetector)

func newDetector() *detector {
	if len(scriptOrder) != numScripts {
		panic("langid: numScripts is out of date")
	}
	d := &detector{}
	for _, s := range scriptOrder {
		sc := script{table: s.table, lang: s.lang}
		if s.profiles != nil {
			sc.index = buildIndex(*s.profiles)
		}
		d.scripts = append(d.scripts, sc)
	}
	d.codes = map[whatlanggo.Lang]string{-1: ""}
	for _, sc := range d.scripts {
		d.codes[sc.lang] = code(sc.lang)
		if sc.index != nil {
			for _, l := range sc.index.langs {
				d.codes[l] = code(l)
			}
		}
	}
	d.pool.New = func() any { return &scratch{} }
	return d
}

func buildIndex(profiles map[whatlanggo.Lang][]string) *profileIndex {
	ix := &profileIndex{}
	for l := range profiles {
		ix.langs = append(ix.langs, l)
	}
	slices.Sort(ix.langs)
	byKey := map[uint64][]rankEntry{}
	var order []uint64
	for li, l := range ix.langs {
		ix.sizes = append(ix.sizes, len(profiles[l]))
		for rank, tg := range profiles[l] {
			var rs [3]rune
			n := 0
			for _, r := range tg {
				if n < 3 {
					rs[n] = r
				}
				n++
			}
			if n != 3 {
				continue // not a trigram: can never match one of the text
			}
			k := pack(rs[0], rs[1], rs[2])
			if byKey[k] == nil {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], rankEntry{int32(li), int32(rank)})
		}
	}
	size := 1024
	for size < 2*len(order) {
		size <<= 1
	}
	ix.mask = uint64(size - 1)
	ix.keys = make([]uint64, size)
	ix.spans = make([][2]int32, size)
	for _, k := range order { // profiles hold no NUL, so no key is 0 (the empty mark)
		i := slotOf(k, ix.mask)
		for ix.keys[i] != 0 {
			i = (i + 1) & ix.mask
		}
		lo := int32(len(ix.entries))
		ix.entries = append(ix.entries, byKey[k]...)
		ix.keys[i], ix.spans[i] = k, [2]int32{lo, int32(len(ix.entries))}
	}
	return ix
}

func pack(a, b, c rune) uint64 { return uint64(a)<<42 | uint64(b)<<21 | uint64(c) }

// scratch is per-call working memory (pooled).
type scratch struct {
	runes  []rune
	keys   []uint64 // distinct trigrams
	counts []int32
	slots  []int32 // open addressing: index+1 into keys, 0 = empty
	dist   []int
	order  []uint64 // keys by rank
	starts []int
}

// isStopChar is whatlanggo's separator test: symbols, spaces, punctuation
// and digits do not belong to a word.
func isStopChar(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiStop[r]
	}
	return unicode.IsSymbol(r) || unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsDigit(r)
}

// asciiTrigramChar maps an ASCII character to its trigram form: stop
// characters become spaces, letters lower case.
var asciiTrigramChar = func() (t [utf8.RuneSelf]rune) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		t[r] = unicode.ToLower(r)
		if asciiStop[r] {
			t[r] = ' '
		}
	}
	return
}()

var asciiStop = func() (t [utf8.RuneSelf]bool) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		t[r] = unicode.IsSymbol(r) || unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsDigit(r)
	}
	return
}()

// detectScript returns the index in d.scripts of text's script, or -1.
// Like whatlanggo, it moves a script one place forward in its list each time
// it matches a character and breaks ties between counts by that order.
func (d *detector) detectScript(text string) int {
	var counts [numScripts]int
	var at, pos [numScripts]int8 // the list order and each script's place in it
	for k := range at {
		at[k], pos[k] = int8(k), int8(k)
	}
	half := len(text) / 2
	hit := func(k int) bool {
		counts[k]++
		if counts[k] > half {
			return true
		}
		if p := pos[k]; p > 0 {
			o := at[p-1]
			at[p-1], at[p] = int8(k), o
			pos[k], pos[o] = p-1, p
		}
		return false
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			i++
			if c|0x20 >= 'a' && c|0x20 <= 'z' && hit(scriptLatin) {
				return scriptLatin
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		if isStopChar(r) {
			continue
		}
		for k, s := range d.scripts {
			var in bool
			if k == scriptKana {
				in = unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r)
			} else {
				in = unicode.Is(s.table, r)
			}
			if in {
				if hit(k) {
					return k
				}
				break // scripts are disjoint
			}
		}
	}
	best, bestCount, kana := -1, 0, 0
	for _, k := range at {
		if n := counts[k]; n > bestCount {
			best, bestCount = int(k), n
			if k == scriptKana {
				kana = n
			}
		}
	}
	if best == scriptHan && kana > 0 {
		return scriptKana // kanji with kana is Japanese
	}
	return best
}

// detect returns the language and confidence whatlanggo.Detect gives, and
// tie = true when the two best languages have the same distance (then
// whatlanggo's answer depends on map iteration order, ours on Lang order).
func (d *detector) detect(text string) (lang whatlanggo.Lang, confidence float64, tie bool) {
	k := d.detectScript(text)
	if k < 0 {
		return -1, 0, false
	}
	s := &d.scripts[k]
	if s.index == nil {
		return s.lang, 1, false
	}
	sc := d.pool.Get().(*scratch)
	defer d.pool.Put(sc)
	return s.index.score(text, sc)
}

// count fills sc.keys and sc.counts with the distinct trigrams of text, as
// whatlanggo forms them: stop characters become spaces, letters are
// lower-cased, a space is appended, the first trigram starts with a space,
// and trigrams whose middle is a space next to another space are skipped.
func (sc *scratch) count(text string) {
	sc.runes = sc.runes[:0]
	for i := 0; i < len(text); {
		if c := text[i]; c < utf8.RuneSelf {
			sc.runes = append(sc.runes, asciiTrigramChar[c])
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		if isStopChar(r) {
			r = ' '
		} else {
			r = unicode.ToLower(r)
		}
		sc.runes = append(sc.runes, r)
	}
	sc.runes = append(sc.runes, ' ')
	size := 64
	for size < 2*len(sc.runes) {
		size <<= 1
	}
	if cap(sc.slots) < size {
		sc.slots = make([]int32, size)
	} else {
		sc.slots = sc.slots[:size]
		clear(sc.slots)
	}
	mask := uint64(size - 1)
	sc.keys, sc.counts = sc.keys[:0], sc.counts[:0]
	r1, r2 := ' ', sc.runes[0]
	for _, r3 := range sc.runes[1:] {
		if !(r2 == ' ' && (r1 == ' ' || r3 == ' ')) {
			key := pack(r1, r2, r3)
			i := (key * 0x9e3779b97f4a7c15) >> 20 & mask
			for {
				j := sc.slots[i]
				if j == 0 {
					sc.keys = append(sc.keys, key)
					sc.counts = append(sc.counts, 1)
					sc.slots[i] = int32(len(sc.keys))
					break
				}
				if sc.keys[j-1] == key {
					sc.counts[j-1]++
					break
				}
				i = (i + 1) & mask
			}
		}
		r1, r2 = r2, r3
	}
}

func (ix *profileIndex) score(text string, sc *scratch) (whatlanggo.Lang, float64, bool) {
	sc.count(text)
	// Rank the text's trigrams: most frequent first, ties by the larger
	// trigram (whatlanggo sorts ascending by count, then string, and
	// numbers from the end; packed keys order like the UTF-8 strings).
	// Counting sort by count (group g holds count maxCount-g), then each
	// group by key, descending.
	maxCount := int32(0)
	for _, c := range sc.counts {
		maxCount = max(maxCount, c)
	}
	groups := int(maxCount) + 1
	sc.starts = append(sc.starts[:0], make([]int, 2*groups+1)...)
	start, next := sc.starts[:groups+1], sc.starts[groups+1:]
	for _, c := range sc.counts {
		start[int(maxCount-c)+1]++
	}
	for g := 1; g <= groups; g++ {
		start[g] += start[g-1]
	}
	copy(next, start[:groups])
	sc.order = append(sc.order[:0], sc.keys...)
	for i, c := range sc.counts {
		g := maxCount - c
		sc.order[next[g]] = sc.keys[i]
		next[g]++
	}
	for g := range groups {
		if part := sc.order[start[g]:start[g+1]]; len(part) > 1 {
			slices.Sort(part)
			slices.Reverse(part)
		}
	}
	// distance(lang) = Σ over its profile of |text position − rank|, or
	// maxTrigramDistance for a trigram the text lacks.
	sc.dist = sc.dist[:0]
	for _, n := range ix.sizes {
		sc.dist = append(sc.dist, n*maxTrigramDistance)
	}
	for pos, key := range sc.order {
		for _, e := range ix.lookup(key) {
			sc.dist[e.lang] += abs(pos-int(e.rank)) - maxTrigramDistance
		}
	}
	switch len(ix.langs) {
	case 0:
		return -1, 0, false
	case 1:
		return ix.langs[0], 1, false
	}
	// The two smallest distances (ties: the lower Lang).
	b1, b2 := -1, -1
	for l, d := range sc.dist {
		switch {
		case b1 < 0 || d < sc.dist[b1]:
			b1, b2 = l, b1
		case b2 < 0 || d < sc.dist[b2]:
			b2 = l
		}
	}
	tie := sc.dist[b1] == sc.dist[b2]
	score1 := maxTotalDistance - sc.dist[b1]
	score2 := maxTotalDistance - sc.dist[b2]
	switch {
	case score1 == 0:
		return -1, 0, tie
	case score2 == 0:
		// whatlanggo divides the integers here.
		return ix.langs[b1], min(float64(score1/500), 1), tie
	}
	rate := float64(score1-score2) / float64(score2)
	confidentRate := 12.0/float64(len(sc.keys)) + 0.05
	if rate > confidentRate {
		return ix.langs[b1], 1, tie
	}
	return ix.langs[b1], rate / confidentRate, tie
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
