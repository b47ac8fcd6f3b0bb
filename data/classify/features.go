package classify

import (
	"unicode"
	"unicode/utf8"

	"github.com/zeebo/xxh3"
)

// Feature hashing. A text becomes a list of row indices into the input
// embedding table:
//   - tokens: maximal runs of letters/digits, lowercased, and maximal runs
//     of other non-space characters ("!!!", "$", "</"), each hashed once
//     with xxh3 (seeded per feature type);
//   - word n-grams for n = 2..WordNgrams: the hashes of n consecutive
//     tokens combined (h = h·116049371 + next, as fastText does);
//   - optionally the character n-grams (CharNgramMin..CharNgramMax) of each
//     letter/digit token wrapped in "<" and ">".
// Every feature hash is reduced modulo Buckets.

const (
	seedToken = 0x746f6b656e
	seedChar  = 0x63686172
	ngramMul  = 116049371
)

// featurizer extracts features; it holds scratch buffers, so each
// goroutine needs its own.
type featurizer struct {
	cfg  Config
	buf  []byte
	hist []uint64 // last WordNgrams-1 token hashes
	cbuf []byte
	ends []int
}

func newFeaturizer(cfg Config) *featurizer {
	return &featurizer{cfg: cfg, hist: make([]uint64, 0, cfg.WordNgrams)}
}

// each calls fn with the bucket of every feature of text, in order, and
// returns the number of features.
func (f *featurizer) each(text string, fn func(row int)) int {
	buckets := uint64(f.cfg.Buckets)
	n := f.cfg.WordNgrams
	f.hist = f.hist[:0]
	count, tokens := 0, 0
	for i := 0; i < len(text) && (f.cfg.MaxTokens <= 0 || tokens < f.cfg.MaxTokens); {
		r, sz := decode(text, i)
		if unicode.IsSpace(r) {
			i += sz
			continue
		}
		word := isWord(r)
		buf := f.buf[:0]
		for i < len(text) {
			r, sz = decode(text, i)
			if unicode.IsSpace(r) || isWord(r) != word {
				break
			}
			if word {
				r = unicode.ToLower(r)
			}
			buf = utf8.AppendRune(buf, r)
			i += sz
		}
		f.buf = buf
		tokens++
		h := xxh3.HashSeed(buf, seedToken)
		fn(int(h % buckets))
		count++
		// word n-grams ending at this token
		g := h
		for k := len(f.hist) - 1; k >= 0 && len(f.hist)-k < n; k-- {
			g = f.hist[k]*ngramMul + g
			fn(int(mix(g+uint64(len(f.hist)-k)) % buckets))
			count++
		}
		if n > 1 {
			if len(f.hist) == n-1 {
				copy(f.hist, f.hist[1:])
				f.hist = f.hist[:n-2]
			}
			f.hist = append(f.hist, h)
		}
		if word && f.cfg.CharNgramMax > 0 {
			count += f.charNgrams(buf, buckets, fn)
		}
	}
	return count
}

// charNgrams emits the character n-grams of "<word>".
func (f *featurizer) charNgrams(word []byte, buckets uint64, fn func(int)) int {
	f.cbuf = append(append(append(f.cbuf[:0], '<'), word...), '>')
	f.ends = f.ends[:0]
	for i := 0; i < len(f.cbuf); {
		_, sz := utf8.DecodeRune(f.cbuf[i:])
		i += sz
		f.ends = append(f.ends, i)
	}
	count := 0
	for start := 0; start < len(f.ends); start++ {
		from := 0
		if start > 0 {
			from = f.ends[start-1]
		}
		for n := f.cfg.CharNgramMin; n <= f.cfg.CharNgramMax && start+n <= len(f.ends); n++ {
			g := f.cbuf[from:f.ends[start+n-1]]
			if len(g) == len(f.cbuf) {
				continue // the whole word is already a token
			}
			fn(int(xxh3.HashSeed(g, seedChar) % buckets))
			count++
		}
	}
	return count
}

func decode(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isWord(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// mix is the murmur3 finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
