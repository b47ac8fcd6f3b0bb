package reader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/herdml/herd/data/htmltext/htmlshape"
)

// HTMLExtractor reduces an HTML page to its main text. Read bounds what it
// is given (Config.HTMLMax*) and how long it may take (Config.HTMLTimeout).
type HTMLExtractor interface {
	Extract(html, url string) (string, error)
}

// pages turns HTML into text within the configured bounds.
type pages struct {
	ctx     context.Context
	html    HTMLExtractor
	lim     htmlshape.Limits
	bytes   int
	timeout time.Duration
}

func newPages(ctx context.Context, cfg Config, html HTMLExtractor) *pages {
	d := Default()
	or := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	secs := cfg.HTMLTimeout
	if !(secs > 0) {
		secs = d.HTMLTimeout
	}
	return &pages{ctx: ctx, html: html,
		lim:     htmlshape.Limits{MaxDepth: or(cfg.HTMLMaxDepth, d.HTMLMaxDepth), MaxElements: or(cfg.HTMLMaxElements, d.HTMLMaxElements)},
		bytes:   or(cfg.HTMLMaxBytes, d.HTMLMaxBytes),
		timeout: time.Duration(secs * float64(time.Second))}
}

// set puts the main text of the page raw into r, or marks r with the
// problem that kept it out (the record keeps the start of the page). The
// error is ctx's, when it ends while the extractor runs.
func (p *pages) set(r *Record, raw string) error {
	problem := func(reason, detail string) {
		r.Problem, r.Detail = reason, detail
		r.Doc.Text = capBytes(raw, 1<<16)
	}
	if p.html == nil {
		r.Problem, r.Detail = "html_extract", "no HTML extractor configured"
		return nil
	}
	if len(raw) > p.bytes {
		problem("html_too_large", fmt.Sprintf("%d bytes > input.html_max_bytes %d", len(raw), p.bytes))
		return nil
	}
	shape := htmlshape.Measure(raw, p.lim)
	if shape.Depth > p.lim.MaxDepth {
		problem("html_too_deep", fmt.Sprintf("elements nest deeper than input.html_max_depth %d", p.lim.MaxDepth))
		return nil
	}
	if shape.Elements > p.lim.MaxElements {
		problem("html_too_many_elements", fmt.Sprintf("more than input.html_max_elements %d elements", p.lim.MaxElements))
		return nil
	}
	text, err := p.extract(raw, r.Doc.URL)
	switch {
	case errors.Is(err, errTimeout):
		problem("html_timeout", fmt.Sprintf("extraction took longer than input.html_timeout_seconds %g", p.timeout.Seconds()))
	case err != nil && p.ctx.Err() != nil:
		return p.ctx.Err()
	case err != nil:
		problem("html_extract", err.Error())
	default:
		r.Doc.Text = text
	}
	return nil
}

var errTimeout = errors.New("html extraction timed out")

// extract runs the extractor on its own goroutine, so that a page that
// takes too long, or a cancelled run, does not wait for it. An abandoned
// extraction runs on to its end in the background (the bounds above keep
// that short) and its result is dropped. A panic of the extractor is
// reported as its error.
func (p *pages) extract(raw, url string) (string, error) {
	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- result{err: fmt.Errorf("extractor panicked: %v", v)}
			}
		}()
		text, err := p.html.Extract(raw, url)
		done <- result{text, err}
	}()
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case res := <-done:
		return res.text, res.err
	case <-timer.C:
		return "", errTimeout
	case <-p.ctx.Done():
		return "", p.ctx.Err()
	}
}
