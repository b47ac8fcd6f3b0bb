package chatdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"

	"github.com/herdml/herd/data/tokenizer"
)

// Defaults of Options.
const (
	DefaultShuffle      = 1024     // examples per shuffle window
	DefaultMaxLineBytes = 16 << 20 // longest JSONL line or Parquet value
	MaxShuffle          = 1 << 22  // largest shuffle window
)

// Options configure a loader.
type Options struct {
	// Paths are the input files, directories or globs (see ListFiles).
	Paths []string
	// Tokenizer renders and encodes the rows; it needs the Llama 3
	// special tokens.
	Tokenizer *tokenizer.Tokenizer
	// Encode sets the chat template variables, the sequence length T
	// (required), the truncation policy and the SFT loss mask.
	Encode EncodeOptions
	// Shuffle is the number of examples shuffled together, at most
	// MaxShuffle (0: DefaultShuffle; 1: reading order). Memory is bounded
	// by this many tokenized examples. Files are read in a seeded order
	// per epoch (sorted path order permuted by (Seed, epoch)) either way.
	Shuffle int
	// Seed seeds the file order of every epoch and the permutation of
	// every shuffle window.
	Seed uint64
	// Epochs is the number of passes over the inputs (0: endless).
	Epochs int
	// Strict makes the first bad row an error naming its file and line,
	// instead of counting it in Stats and skipping it.
	Strict bool
	// MaxLineBytes bounds a JSONL line or a Parquet value (0:
	// DefaultMaxLineBytes); a longer one is a bad row (line_too_long).
	MaxLineBytes int
	// Samples is the number of bad rows kept per reason in Stats.Samples
	// (0: defaultSamples; negative: none).
	Samples int
	// HoldOut is the fraction of rows set aside for evaluation, in [0, 1):
	// a row is held out when a hash of its messages (roles, contents, tool
	// calls) falls below HoldOut, so the split does not depend on the file
	// format, the file order or the seed. Rows of the other split are
	// skipped and counted in Stats.OtherSplit.
	HoldOut float64
	// HeldOut serves the held-out rows (the evaluation split) instead of
	// the others.
	HeldOut bool
}

// State is the resumable position of a loader: JSON-serialisable, a few
// hundred bytes. A loader made with it yields exactly the batches an
// uninterrupted loader would have yielded after the batch at which State
// was taken: it re-reads the current shuffle window from Pos (the read
// position at the window's start), shuffles it with the permutation of
// window number Window, and skips the Index examples already served.
type State struct {
	Pos    Pos   `json:"pos"`
	Window int64 `json:"window"`
	Index  int   `json:"index"`
	// Stats are the counts at the window's start.
	Stats Stats `json:"stats"`
	// Fingerprint identifies the inputs (paths and sizes) and the
	// options that decide the order and the examples; a State is only
	// accepted by a loader with the same fingerprint.
	Fingerprint string `json:"fingerprint"`
}

// Clone returns a deep copy.
func (s State) Clone() State {
	s.Stats = s.Stats.Clone()
	return s
}

// prepared is what every loader derives from its Options.
type prepared struct {
	files       []string
	enc         *Encoder
	shuffle     int
	maxLine     int
	keep        int
	holdOut     float64
	heldOut     bool
	fingerprint string
}

// reasonOtherSplit marks a row of the other split (skipped, not bad).
const reasonOtherSplit = "other_split"

// split returns a rowError marking a row of the other split, or nil when
// the row belongs to the split served.
func (p *prepared) split(key uint64) *rowError {
	if p.holdOut == 0 {
		return nil
	}
	held := float64(key>>11)/(1<<53) < p.holdOut
	if held == p.heldOut {
		return nil
	}
	return &rowError{Reason: reasonOtherSplit}
}

func prepare(o *Options, kind string) (*prepared, error) {
	if o.Tokenizer == nil {
		return nil, errors.New("chatdata: Options.Tokenizer is nil")
	}
	enc, err := NewEncoder(o.Tokenizer, o.Encode)
	if err != nil {
		return nil, err
	}
	if !(o.HoldOut >= 0 && o.HoldOut < 1) {
		return nil, fmt.Errorf("chatdata: HoldOut %v: want a fraction in [0, 1)", o.HoldOut)
	}
	if o.Shuffle < 0 || o.Shuffle > MaxShuffle || o.Epochs < 0 || o.MaxLineBytes < 0 {
		return nil, fmt.Errorf("chatdata: options out of range: shuffle %d (want 0 to %d), epochs %d, max line bytes %d (want 0 or more)", o.Shuffle, MaxShuffle, o.Epochs, o.MaxLineBytes)
	}
	files, err := ListFiles(o.Paths)
	if err != nil {
		return nil, err
	}
	p := &prepared{files: files, enc: enc, shuffle: o.Shuffle, maxLine: o.MaxLineBytes, keep: o.Samples, holdOut: o.HoldOut, heldOut: o.HeldOut}
	if p.shuffle == 0 {
		p.shuffle = DefaultShuffle
	}
	if p.maxLine == 0 {
		p.maxLine = DefaultMaxLineBytes
	}
	if p.keep == 0 {
		p.keep = defaultSamples
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%d|%d|%d|%q|%v|%d|%+v|%v|%v", kind, o.Seed, p.shuffle, enc.o.SeqLen, enc.o.Truncation, enc.o.AllTokens, p.maxLine, enc.o.Chat, o.HoldOut, o.HeldOut)
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		fmt.Fprintf(h, "|%s:%d", f, st.Size())
	}
	p.fingerprint = fmt.Sprintf("%016x", h.Sum64())
	return p, nil
}

// window serves examples from a shuffle window of up to size examples:
// the window is filled from the source in reading order and served in a
// permutation seeded by (seed, window number).
type window[E any] struct {
	src    *source
	encode func(record) (E, int, *rowError) // example, prompt tokens cut, or a bad row
	size   int
	seed   uint64
	strict bool
	keep   int
	fp     string

	items  []E
	perm   []int
	num    int64
	index  int
	filled bool
	done   bool  // the source ended in the current window
	err    error // a failed fill: the window's position is lost, so every later call fails

	// goodEpoch is the epoch of the last example read: an endless run
	// over inputs without a good row stops after one empty epoch.
	goodEpoch int

	start      Pos
	startStats Stats
	stats      Stats

	pcg *rand.PCG
	rng *rand.Rand
}

func newWindow[E any](p *prepared, o *Options, st *State, encode func(record) (E, int, *rowError)) (*window[E], error) {
	var s State
	if st != nil {
		if st.Fingerprint != p.fingerprint {
			return nil, fmt.Errorf("chatdata: the saved data position was made for other inputs or options (fingerprint %s, now %s): the files, their sizes, the seed, shuffle, sequence length, truncation, loss mask, held-out split or chat options changed", st.Fingerprint, p.fingerprint)
		}
		if st.Index < 0 || st.Window < 0 {
			return nil, fmt.Errorf("chatdata: invalid saved data position %+v", *st)
		}
		s = st.Clone()
	}
	src, err := newSource(p.files, o.Seed, o.Epochs, p.maxLine, s.Pos)
	if err != nil {
		return nil, err
	}
	pcg := rand.NewPCG(0, 0)
	return &window[E]{src: src, encode: encode, size: p.shuffle, seed: o.Seed, strict: o.Strict, keep: p.keep, fp: p.fingerprint,
		items: make([]E, 0, p.shuffle), perm: make([]int, 0, p.shuffle),
		num: s.Window, index: s.Index, start: s.Pos, goodEpoch: s.Pos.Epoch, startStats: s.Stats.Clone(), stats: s.Stats,
		pcg: pcg, rng: rand.New(pcg)}, nil
}

// state returns the resumable position.
func (w *window[E]) state() State {
	return State{Pos: w.start, Window: w.num, Index: w.index, Stats: w.startStats.Clone(), Fingerprint: w.fp}
}

// peek returns the next example without consuming it; io.EOF at the end
// of the data.
func (w *window[E]) peek(ctx context.Context) (*E, error) {
	if w.err != nil {
		return nil, w.err
	}
	for !w.filled || w.index >= len(w.perm) {
		if w.filled {
			if w.done {
				return nil, io.EOF
			}
			w.num++
			w.index = 0
			w.filled = false
		}
		if err := w.fill(ctx); err != nil {
			w.err = fmt.Errorf("%w (the loader stopped; make a new one from its State to continue)", err)
			return nil, err
		}
		if w.index > len(w.perm) {
			w.err = fmt.Errorf("chatdata: the saved data position skips %d examples of window %d, which has %d: the inputs changed", w.index, w.num, len(w.perm))
			return nil, w.err
		}
	}
	return &w.items[w.perm[w.index]], nil
}

// advance consumes the example peek returned.
func (w *window[E]) advance() { w.index++ }

// fill reads the current window.
func (w *window[E]) fill(ctx context.Context) error {
	w.start = w.src.pos
	w.startStats = w.stats.Clone()
	clear(w.items)
	w.items = w.items[:0]
	for len(w.items) < w.size {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := w.src.next()
		if err == io.EOF {
			w.done = true
			break
		}
		if err != nil {
			return err
		}
		if w.src.pos.Epoch > w.goodEpoch+1 {
			return fmt.Errorf("chatdata: epoch %d of %v gave no example (%s)", w.src.pos.Epoch-1, w.src.files, w.stats)
		}
		if rec.bad == nil && rec.line == nil && rec.f == nil {
			continue // blank line
		}
		w.stats.Rows++
		x, cut, rerr := w.encode(rec)
		if rerr != nil && rerr.Reason == reasonOtherSplit {
			w.stats.Rows--
			w.stats.OtherSplit++
			continue
		}
		if rerr != nil {
			rerr.Loc = w.src.loc()
			if w.strict {
				return fmt.Errorf("chatdata: %w (strict mode: fix or remove the row, or turn strict off to count and skip bad rows)", rerr)
			}
			w.stats.add(rerr, w.keep)
			continue
		}
		w.stats.Examples++
		w.goodEpoch = w.src.pos.Epoch
		if cut > 0 {
			w.stats.Truncated++
			w.stats.TruncatedTokens += int64(cut)
		}
		w.items = append(w.items, x)
	}
	w.perm = w.perm[:len(w.items)]
	for i := range w.perm {
		w.perm[i] = i
	}
	w.pcg.Seed(w.seed^0x77696e646f77, uint64(w.num))
	w.rng.Shuffle(len(w.perm), func(i, j int) { w.perm[i], w.perm[j] = w.perm[j], w.perm[i] })
	w.filled = true
	return nil
}

// rowFields returns the fields of a record, or why it is bad.
func rowFields(rec record) (fields, *rowError) {
	if rec.bad != nil {
		return nil, rec.bad
	}
	if rec.f != nil {
		return rec.f, nil
	}
	return parseObject(rec.line)
}

// rowKey hashes the messages of a row (roles, contents, structured
// contents and tool calls), in order, for the held-out split.
func rowKey(parts ...[]tokenizer.Message) uint64 {
	h := fnv.New64a()
	for _, msgs := range parts {
		io.WriteString(h, "\x00part")
		for i := range msgs {
			m := &msgs[i]
			io.WriteString(h, "\x00"+m.Role+"\x00"+m.Content+"\x00")
			if m.Data != nil {
				writeJSON(h, m.Data)
			}
			for _, c := range m.ToolCalls {
				io.WriteString(h, "\x00call\x00"+c.Name+"\x00")
				writeJSON(h, c.Arguments)
			}
		}
	}
	return h.Sum64()
}

func writeJSON(h hash.Hash64, v any) {
	b, _ := json.Marshal(v)
	h.Write(b)
}
