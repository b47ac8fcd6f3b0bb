package curate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The metrics log, metrics-rankR.jsonl in the output directory, has one
// JSON object per line in the schema of the other tools' metrics.jsonl:
// "kind" names the record, "time" is when it was written (RFC 3339, UTC),
// and every other key carries its unit in its name.
//
//	{"kind":"unit", "pass":0, "unit":3, "docs_in":1024, "bytes_in":2093011, "seconds":0.41, "docs_per_s":2497.6, "bytes_per_s":5104905.4, "time":…}
//	{"kind":"done", "rank":0, "units":12, "docs_kept":…, "bytes_kept":…, "docs_removed":…, "bytes_removed":…, "seconds":…, "time":…}
//
// A unit record is written when a unit finishes a pass (docs_in and
// bytes_in count what reached the pass's first stage); done ends a run.

// metricsLog appends JSON lines; its first error is kept and returned by
// every later call, so a full disk stops the run instead of losing lines.
type metricsLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	err  error
}

func openMetrics(path string) (*metricsLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return &metricsLog{path: path, f: f}, nil
}

// write appends one record of the given kind.
func (m *metricsLog) write(kind string, v map[string]any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	v["kind"] = kind
	v["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(v)
	if err == nil {
		_, err = m.f.Write(append(b, '\n'))
	}
	if err != nil {
		m.err = fmt.Errorf("metrics %s: %w", m.path, err)
	}
	return m.err
}

// close closes the file (once; later calls only return the error) and
// returns the first error of the log.
func (m *metricsLog) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return m.err
	}
	if err := m.f.Close(); err != nil && m.err == nil {
		m.err = fmt.Errorf("metrics %s: %w", m.path, err)
	}
	m.f = nil
	if m.err == nil {
		m.err = fmt.Errorf("metrics %s: closed", m.path) // for later writes
		return nil
	}
	return m.err
}

// rate is n per second of d (0 for no time).
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
