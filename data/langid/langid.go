// Package langid identifies the language of a document with a confidence
// score and decides whether to keep it. Detect gives the answers of
// github.com/abadojack/whatlanggo (trigram profiles of 84 languages) with a
// faster implementation of the same method (see fast.go).
package langid

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/abadojack/whatlanggo"
)

// Config selects the languages to keep.
type Config struct {
	// Keep lists the ISO 639-1 codes (or 639-3 where a language has no
	// 639-1 code) of languages to keep; empty keeps every language.
	Keep []string `yaml:"keep"`
	// MinScore is the lowest confidence (0..1) to keep a document (default 0.5 — whatlanggo's confidence saturates near 1 for clear text).
	MinScore float64 `yaml:"min_score"`
	// SampleBytes bounds how much of a document is examined (default 1024).
	SampleBytes int `yaml:"sample_bytes"`
}

// Default keeps English with score ≥ 0.5.
func Default() Config { return Config{Keep: []string{"en"}, MinScore: 0.5, SampleBytes: 1024} }

// Detect returns the language code ("" when unknown) and confidence of text.
func Detect(text string, sampleBytes int) (lang string, score float64) {
	if sampleBytes > 0 && len(text) > sampleBytes {
		cut := sampleBytes
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	d := theDetector()
	l, conf, _ := d.detect(text)
	c, ok := d.codes[l]
	if !ok {
		c = code(l)
	}
	return c, conf
}

// code returns the ISO 639-1 code of l, else its ISO 639-3 code ("" for -1).
func code(l whatlanggo.Lang) string {
	c := l.Iso6391()
	if c == "" {
		c = l.Iso6393()
	}
	return strings.ToLower(c)
}

// Check returns the rule rejecting a document of language lang with the
// given score, or "".
func (c Config) Check(lang string, score float64) string {
	if len(c.Keep) > 0 && !slices.Contains(c.Keep, lang) {
		return "language"
	}
	if score < c.MinScore {
		return "low_score"
	}
	return ""
}
