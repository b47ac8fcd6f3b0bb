package dedup

import (
	"testing"

	"github.com/herdml/herd/internal/benchutil"
)

// cpuSeconds is the process CPU time; MB per CPU second is steadier than
// wall-clock MB/s on a machine shared with other jobs.
func cpuSeconds() float64 { return benchutil.CPUSeconds() }

// perCPU reports MB per CPU second for b.N passes over n bytes since cpu0.
func perCPU(b *testing.B, cpu0 float64, n int64) { benchutil.ReportMBPerCPUSecond(b, cpu0, n) }

// benchTexts is real text from the planted corpus (mail bodies, KJV,
// fortunes, Jargon File, Debian Reference, Devil's Dictionary).
func benchTexts(b *testing.B) ([]string, int64) {
	c := loadPlanted(b)
	var texts []string
	var n int64
	for _, d := range c.Docs[:1500] {
		texts = append(texts, d.Text)
		n += int64(len(d.Text))
	}
	return texts, n
}

func BenchmarkExactHash(b *testing.B) {
	texts, n := benchTexts(b)
	h := NewExactHasher(ExactConfig{})
	b.SetBytes(n)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	defer func() { perCPU(b, cpu0, n) }()
	for range b.N {
		for _, t := range texts {
			h.Key(t)
		}
	}
}

func BenchmarkLineDedup(b *testing.B) {
	texts, n := benchTexts(b)
	d := NewLineDedup(LineConfig{})
	b.SetBytes(n)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	defer func() { perCPU(b, cpu0, n) }()
	for range b.N {
		d.Reset()
		for _, t := range texts {
			d.Count(t)
		}
		for _, t := range texts {
			d.Filter(t)
		}
	}
}

func BenchmarkMinHashSignature(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  MinHashConfig
	}{{"word5_14x8", MinHashConfig{}}, {"char5_20x13", MinHashConfig{CharShingles: true, Bands: 20, Rows: 13}}} {
		b.Run(bc.name, func(b *testing.B) {
			texts, n := benchTexts(b)
			mh, err := NewMinHasher(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			var sig []uint64
			b.SetBytes(n)
			b.ResetTimer()
			cpu0 := cpuSeconds()
			defer func() { perCPU(b, cpu0, n) }()
			for range b.N {
				for _, t := range texts {
					sig, _ = mh.Signature(t, sig)
				}
			}
		})
	}
}

func BenchmarkNearDuplicates(b *testing.B) {
	texts, n := benchTexts(b)
	docs := make([]Doc, len(texts))
	for i, t := range texts {
		docs[i] = Doc{uint64(i), t}
	}
	b.SetBytes(n)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	defer func() { perCPU(b, cpu0, n) }()
	for range b.N {
		if _, err := NearDuplicates(b.Context(), docs, MinHashConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}
