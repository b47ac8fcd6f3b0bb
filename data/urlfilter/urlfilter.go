// Package urlfilter drops documents whose URL's host is on a domain block
// list (adult sites, PII-heavy people-search sites, …). A listed domain also
// blocks its subdomains.
package urlfilter

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

// Filter is a set of blocked domains. It is safe for concurrent use.
type Filter struct {
	domains map[string]struct{}
}

// parse reads a block list: one domain per line, '#' comments, blank lines
// ignored; "www." prefixes and a leading "*." or "." are stripped. source
// names the list in errors.
func parse(r io.Reader, source string) (*Filter, error) {
	f := &Filter{domains: map[string]struct{}{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		d := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(d, '#'); i >= 0 {
			d = strings.TrimSpace(d[:i])
		}
		if d == "" {
			continue
		}
		d = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(d), "*."), ".")
		d = strings.TrimPrefix(d, "www.")
		if strings.ContainsAny(d, " \t/:") {
			return nil, fmt.Errorf("%s:%d: %q is not a domain name (write one bare domain per line, like example.com)", source, line, d)
		}
		f.domains[d] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read block list %s: %w", source, err)
	}
	return f, nil
}

// Load reads the block list in file.
func Load(file string) (*Filter, error) {
	r, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("URL block list: %w", err)
	}
	defer r.Close()
	return parse(r, file)
}

// Len returns the number of blocked domains.
func (f *Filter) Len() int { return len(f.domains) }

// Host returns the lower-case host of rawURL without port and "www.", or ""
// when it has none.
func Host(rawURL string) string {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || u.Host == "" {
		if err == nil && u.Scheme == "" && u.Path != "" {
			// "example.com/page" without a scheme
			if u2, err := url.Parse("http://" + strings.TrimSpace(rawURL)); err == nil {
				u = u2
			}
		}
		if u == nil || u.Host == "" {
			return ""
		}
	}
	return strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
}

// Blocked reports whether rawURL's host or one of its parent domains is listed.
func (f *Filter) Blocked(rawURL string) bool {
	h := Host(rawURL)
	for h != "" {
		if _, ok := f.domains[h]; ok {
			return true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
	}
	return false
}
