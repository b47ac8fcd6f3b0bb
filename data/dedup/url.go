package dedup

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/zeebo/xxh3"
)

// URLConfig controls URL normalization. The zero value is the default:
// lowercase scheme and host, drop default ports, the fragment, a trailing
// slash and tracking parameters (trackingParams: utm_*, fbclid, …), resolve "." and
// ".." path segments, sort the query parameters.
type URLConfig struct {
	// KeepTrackingParams keeps utm_* and the other tracking parameters.
	KeepTrackingParams bool
	// ExtraTrackingParams are more query keys to drop (case-insensitive; a
	// trailing "*" matches a prefix).
	ExtraTrackingParams []string
	// StripWWW also treats "www.example.com" as "example.com".
	StripWWW bool
	// KeepQueryOrder keeps query parameters in their original order.
	KeepQueryOrder bool
}

var trackingParams = []string{
	"utm_*", "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid",
	"mc_cid", "mc_eid", "_ga", "_gl", "igshid", "_hsenc", "_hsmi", "mkt_tok", "oly_enc_id", "oly_anon_id",
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "ftp": "21", "ws": "80", "wss": "443"}

// NormalizeURL returns the canonical form of raw used as URL dedup key.
// It fails on URLs that do not parse or lack a scheme or host.
func NormalizeURL(raw string, cfg URLConfig) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("dedup: normalize URL: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("dedup: normalize URL %q: want an absolute URL with scheme and host", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	host = strings.TrimSuffix(host, ".")
	if cfg.StripWWW {
		host = strings.TrimPrefix(host, "www.")
	}
	if port == defaultPorts[u.Scheme] {
		port = ""
	}
	if strings.Contains(host, ":") { // IPv6 literal
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	u.Fragment, u.RawFragment = "", ""
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	p = path.Clean(p)
	if p == "." {
		p = "/"
	}
	if dec, err := url.PathUnescape(p); err == nil {
		u.Path, u.RawPath = dec, p
	}
	u.RawQuery = normalizeQuery(u.RawQuery, cfg)
	u.ForceQuery = false
	return u.String(), nil
}

func normalizeQuery(q string, cfg URLConfig) string {
	if q == "" {
		return ""
	}
	parts := strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' })
	kept := parts[:0]
	for _, p := range parts {
		key, _, _ := strings.Cut(p, "=")
		if key == "" || isTracking(strings.ToLower(key), cfg) {
			continue
		}
		kept = append(kept, p)
	}
	if !cfg.KeepQueryOrder {
		slices.SortStableFunc(kept, func(a, b string) int {
			ka, _, _ := strings.Cut(a, "=")
			kb, _, _ := strings.Cut(b, "=")
			return strings.Compare(ka, kb)
		})
	}
	return strings.Join(kept, "&")
}

func isTracking(key string, cfg URLConfig) bool {
	match := func(list []string) bool {
		for _, t := range list {
			t = strings.ToLower(t)
			if pre, ok := strings.CutSuffix(t, "*"); ok {
				if strings.HasPrefix(key, pre) {
					return true
				}
			} else if key == t {
				return true
			}
		}
		return false
	}
	return (!cfg.KeepTrackingParams && match(trackingParams)) || match(cfg.ExtraTrackingParams)
}

// URLKey hashes a normalized URL.
func URLKey(normalized string) Key {
	u := xxh3.HashString128(normalized)
	return Key{Hi: u.Hi, Lo: u.Lo}
}
