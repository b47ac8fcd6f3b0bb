// Package document defines the unit of curation: one document with its text,
// provenance and the annotations stages add (language, scores, domain).
package document

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Doc is one document moving through the curation pipeline.
type Doc struct {
	// Ordinal is the document's position in the input: unit<<32 | index
	// within the unit. It orders documents deterministically; dedup keeps
	// the smallest.
	Ordinal uint64
	ID      string // from the input's id field, else derived from Origin
	Source  string // input name (file or recipe-given label)
	Origin  string // file:line (JSONL), file:row (Parquet) or file path
	URL     string
	Date    string // crawl/publication time as given (RFC 3339 or YYYY-MM-DD)
	Text    string

	Lang        string
	LangScore   float64
	Quality     float64 // quality classifier probability; -1 when not scored
	Domain      string
	DomainScore float64
}

// Unit returns the input unit of the document.
func (d *Doc) Unit() int { return int(d.Ordinal >> 32) }

// Ordinal builds an ordinal from a unit number and an index within it.
func Ordinal(unit, index int) uint64 { return uint64(unit)<<32 | uint64(uint32(index)) }

// Time parses Date; ok is false when it is empty or not a known format.
func (d *Doc) Time() (t time.Time, ok bool) {
	s := strings.TrimSpace(d.Date)
	if s == "" {
		return t, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02", time.RFC1123Z, time.RFC1123} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return t, false
}

// Words counts whitespace-separated words of the text.
func (d *Doc) Words() int {
	n, in := 0, false
	for i := 0; i < len(d.Text); i++ {
		c := d.Text[i]
		sp := c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
		if !sp && !in {
			n++
		}
		in = !sp
	}
	return n
}

// Chars counts the Unicode code points of the text.
func (d *Doc) Chars() int { return utf8.RuneCountInString(d.Text) }
