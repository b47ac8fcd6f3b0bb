// Package htmltext reduces HTML pages to their main text with
// github.com/markusmobius/go-trafilatura (a Go port of trafilatura):
// navigation, headers, footers, cookie banners and comments are removed.
package htmltext

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/markusmobius/go-trafilatura"
)

// Extractor implements reader.HTMLExtractor. It is safe for concurrent use.
type Extractor struct {
	// Fallback also runs the readability and dom-distiller fallbacks
	// (better recall, slower).
	Fallback bool
}

// Extract returns the main text of page.
func (e Extractor) Extract(page, rawURL string) (string, error) {
	opts := trafilatura.Options{EnableFallback: e.Fallback, ExcludeComments: true, Deduplicate: false}
	if rawURL != "" {
		if u, err := url.Parse(rawURL); err == nil {
			opts.OriginalURL = u
		}
	}
	res, err := trafilatura.Extract(strings.NewReader(page), opts)
	if err != nil {
		return "", fmt.Errorf("extract main text: %w", err)
	}
	if res == nil || strings.TrimSpace(res.ContentText) == "" {
		return "", fmt.Errorf("extract main text: no main content found")
	}
	return res.ContentText, nil
}
