package pretrain

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/herdml/herd/data/tokens"
	"github.com/zeebo/xxh3"
)

// The data order.
//
// A stage's training data is one global stream of packed sequences, a pure
// function of the seed, the sources and the stream's starting state:
//
//   - Each source is a list of chunks (the row groups of its token shards,
//     files in sorted order). Epoch e of a source orders its chunks by a
//     permutation seeded by (seed, source name, e) and cuts that order into
//     groups of K chunks (shuffle_chunks); the documents of group g are
//     visited in a permutation seeded by (seed, source name, e, g), so
//     K chunks are mixed at a time and held in memory.
//     Held-out documents, documents below the source's min_quality, and
//     empty ones are passed over.
//   - Documents are drawn from the sources by token deficit: the next
//     document comes from the source with the fewest tokens taken in this
//     stage relative to its weight (ties: the first listed), so the mixture
//     matches the weights in tokens, without randomness.
//   - Documents are packed back to back into sequences of seq_len tokens;
//     a document that does not fit continues at the start of the next
//     sequence. Each token carries its document's index within the row
//     (the model's document mask); a token's target is the next token of
//     the same document, or none at a document's end. Windows of W packed
//     sequences (shuffle_window) are served in a permutation seeded by
//     (seed, window), so a batch mixes many documents.
//   - Global batch k is sequences [k·S, (k+1)·S) of the stream (S =
//     batch_tokens / seq_len). Worker r of W takes the rows [r·S/W,
//     (r+1)·S/W) of every global batch, so the data seen does not depend
//     on W, and the stream state after a step is the same for every worker:
//     a run resumes on any number of workers.

// cursor is a source's read position.
type cursor struct {
	Epoch  int `json:"epoch"`
	Group  int `json:"group"`  // chunk group of the epoch
	Doc    int `json:"doc"`    // index in the group's document permutation
	Offset int `json:"offset"` // tokens of the current document already taken
	// Fingerprint identifies the source's files and filters; a cursor is
	// only reused by a source with the same fingerprint.
	Fingerprint string `json:"fingerprint"`
}

// packState is the position of the packer: every source's cursor and the
// open document.
type packState struct {
	// Sources are the read positions of every source seen so far, by name
	// (kept across stages).
	Sources map[string]cursor `json:"sources"`
	// Mix counts the tokens taken from each source in the current stage.
	Mix map[string]int64 `json:"mix"`
	// Current is the source whose document is partly packed ("" = none).
	Current string `json:"current,omitempty"`
	// Sequences counts the sequences packed in the current stage.
	Sequences int64 `json:"sequences"`
}

// Clone returns a deep copy.
func (s packState) Clone() packState {
	s.Sources = maps.Clone(s.Sources)
	s.Mix = maps.Clone(s.Mix)
	return s
}

// packedStreamState is the position of a Stream: the packer's state at the start
// of the current shuffle window, the window's number, and how many of its
// sequences were served.
type packedStreamState struct {
	Pack   packState `json:"pack"`
	Window int64     `json:"window"`
	Index  int       `json:"index"`
}

// Clone returns a deep copy.
func (s packedStreamState) Clone() packedStreamState {
	s.Pack = s.Pack.Clone()
	return s
}

// chunkRef is one row group of one token shard.
type chunkRef struct {
	file, group, rows int
}

// piece is the tokens [lo, hi) of rows[row]: a document, or a part of a
// long one.
type piece struct{ row, lo, hi int }

// source is one data source of a stream.
type source struct {
	Source
	weight      float64
	seedKey     uint64
	fingerprint string
	files       []string
	chunks      []chunkRef
	heldOut     float64 // documents with holdoutKey < heldOut·2^64 are skipped (0: none)
	keepHeld    bool    // keep only held-out documents (eval) instead of skipping them

	group int // chunks per group
	split int // documents are cut into pieces of at most split tokens (0: whole)
	// loaded group
	open        *tokens.File
	openFile    int
	loadedEpoch int
	loadedGroup int
	rows        []tokens.TokenRow
	pieces      []piece
	docOrder    []int // permutation of pieces
	chunkOrder  []int
	orderEpoch  int
	idle        int // consecutive groups without an eligible document
}

// openSources lists the chunks of every source (reading only footers).
func openSources(srcs []Source, heldOut float64, group, split int) ([]*source, error) {
	var out []*source
	var total float64
	for _, s := range srcs {
		total += s.W()
	}
	for _, s := range srcs {
		shards, err := tokens.Resolve(s.Paths)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		if len(shards) == 0 {
			return nil, fmt.Errorf("source %s: no token shards in %v", s.Name, s.Paths)
		}
		files := make([]string, len(shards))
		for i, sh := range shards {
			files[i] = sh.Path
		}
		src := &source{Source: s, weight: s.W() / total, seedKey: xxh3.HashString(s.Name), files: files,
			heldOut: heldOut, openFile: -1, loadedEpoch: -1, loadedGroup: -1, orderEpoch: -1, group: max(group, 1), split: split}
		h := xxh3.New()
		fmt.Fprintf(h, "%q %v %d", strings.Join(files, "\x00"), s.MinQuality, split)
		for i, f := range files {
			sf, err := tokens.Open(f)
			if err != nil {
				return nil, fmt.Errorf("source %s: %w", s.Name, err)
			}
			if n, want := sf.NumRows(), shards[i].Info.Docs; n != want {
				sf.Close()
				return nil, fmt.Errorf("source %s: %s holds %d documents but %s recorded %d: the shard changed after tokenize; re-run `pretrain tokenize` for %s",
					s.Name, f, n, filepath.Join(shards[i].Dir, tokens.ManifestFile), want, shards[i].Dir)
			}
			for g, n := range sf.RowGroupRows() {
				if n > 0 {
					src.chunks = append(src.chunks, chunkRef{file: i, group: g, rows: n})
					fmt.Fprintf(h, " %d", n)
				}
			}
			sf.Close()
		}
		if len(src.chunks) == 0 {
			return nil, fmt.Errorf("source %s: the token shards %v hold no documents", s.Name, files)
		}
		src.fingerprint = fmt.Sprintf("%016x", h.Sum64())
		out = append(out, src)
	}
	return out, nil
}

func (s *source) close() {
	if s.open != nil {
		s.open.Close()
		s.open = nil
		s.openFile = -1
	}
}

// permutation returns a seeded permutation of n.
func permutation(n int, seed, key uint64, a, b int) []int {
	r := rand.New(rand.NewPCG(seed^key, uint64(a)<<32^uint64(b)^0x9e3779b97f4a7c15))
	return r.Perm(n)
}

// holdoutKey places a document id in [0, 2^64) for the held-out split.
func holdoutKey(id string) uint64 { return xxh3.HashString(id) }

func (s *source) eligible(r *tokens.TokenRow) bool {
	if len(r.Tokens) == 0 || s.MinQuality > 0 && float64(r.Quality) < s.MinQuality {
		return false
	}
	if s.heldOut > 0 {
		held := float64(holdoutKey(r.ID)) < s.heldOut*math.Exp2(64)
		return held == s.keepHeld
	}
	return !s.keepHeld
}

// groups is the number of chunk groups of an epoch.
func (s *source) groups() int { return (len(s.chunks) + s.group - 1) / s.group }

// load reads the group of chunks the cursor points at: group g of an
// epoch is chunks [g·K, (g+1)·K) of the epoch's chunk permutation, and its
// documents are visited in one permutation across all K chunks.
func (s *source) load(c *cursor, seed uint64, vocab int, shuffle bool) error {
	if s.orderEpoch != c.Epoch {
		if shuffle {
			s.chunkOrder = permutation(len(s.chunks), seed, s.seedKey, c.Epoch, -1)
		} else {
			s.chunkOrder = identity(s.chunkOrder, len(s.chunks))
		}
		s.orderEpoch = c.Epoch
	}
	if s.loadedEpoch == c.Epoch && s.loadedGroup == c.Group {
		return nil
	}
	s.rows = s.rows[:0]
	for _, ci := range s.chunkOrder[c.Group*s.group : min((c.Group+1)*s.group, len(s.chunks))] {
		ref := s.chunks[ci]
		if s.openFile != ref.file {
			s.close()
			sf, err := tokens.Open(s.files[ref.file])
			if err != nil {
				return fmt.Errorf("source %s: %w", s.Name, err)
			}
			s.open, s.openFile = sf, ref.file
		}
		rows, err := s.open.ReadRowGroup(ref.group, vocab, nil)
		if err != nil {
			return fmt.Errorf("source %s: %w", s.Name, err)
		}
		if len(rows) != ref.rows {
			return fmt.Errorf("source %s: %s row group %d has %d rows, %d when the run started; token shards must not change during a run", s.Name, s.files[ref.file], ref.group, len(rows), ref.rows)
		}
		s.rows = append(s.rows, rows...)
	}
	s.pieces = s.pieces[:0]
	for i := range s.rows {
		n := len(s.rows[i].Tokens)
		step := n
		if s.split > 0 {
			step = s.split
		}
		for lo := 0; lo < n; lo += step {
			s.pieces = append(s.pieces, piece{row: i, lo: lo, hi: min(n, lo+step)})
		}
		if n == 0 {
			s.pieces = append(s.pieces, piece{row: i})
		}
	}
	if shuffle {
		s.docOrder = permutation(len(s.pieces), seed, s.seedKey, c.Epoch, c.Group)
	} else {
		s.docOrder = identity(s.docOrder, len(s.pieces))
	}
	s.loadedEpoch, s.loadedGroup = c.Epoch, c.Group
	return nil
}

func identity(dst []int, n int) []int {
	dst = dst[:0]
	for i := range n {
		dst = append(dst, i)
	}
	return dst
}

// errSourceDone is returned by doc when a source without wrap-around is
// exhausted.
var errSourceDone = errors.New("source exhausted")

// doc returns the document at the cursor, moving the cursor over
// ineligible documents, chunks and epochs. With wrap false, reaching the
// end of the first epoch returns errSourceDone.
func (s *source) doc(c *cursor, seed uint64, vocab int, shuffle, wrap bool) ([]int32, error) {
	for {
		if c.Group >= s.groups() {
			if !wrap {
				return nil, errSourceDone
			}
			c.Epoch, c.Group, c.Doc, c.Offset = c.Epoch+1, 0, 0, 0
		}
		if err := s.load(c, seed, vocab, shuffle); err != nil {
			return nil, err
		}
		for c.Doc < len(s.docOrder) {
			pc := s.pieces[s.docOrder[c.Doc]]
			r := &s.rows[pc.row]
			if c.Offset > 0 || s.eligible(r) {
				toks := r.Tokens[pc.lo:pc.hi]
				if c.Offset >= len(toks) {
					return nil, fmt.Errorf("source %s: saved offset %d is past the end of document %q (%d tokens); the data changed since the checkpoint", s.Name, c.Offset, r.ID, len(toks))
				}
				s.idle = 0
				return toks, nil
			}
			c.Doc++
		}
		c.Group, c.Doc, c.Offset = c.Group+1, 0, 0
		s.idle++
		if s.idle > s.groups() {
			what := "training documents (all are held out, empty or below min_quality)"
			if s.keepHeld {
				what = "held-out documents"
			}
			return nil, fmt.Errorf("source %s has no %s", s.Name, what)
		}
	}
}

// packer packs the documents of a mixture of sources into sequences.
type packer struct {
	srcs   []*source
	seed   uint64
	vocab  int
	seqLen int
	state  packState
	cur    *source // source of the open document, or nil
}

// packedStreamOptions configure a Stream.
type packedStreamOptions struct {
	SeqLen int
	Seed   uint64
	// Vocab bounds the token ids (larger ids are an error naming the shard).
	Vocab int
	// HeldOut is the fraction of documents skipped (kept for evaluation).
	HeldOut float64
	// Window is the number of packed sequences shuffled together (default
	// defaultWindow; 1 = no shuffling).
	Window int
	// GroupChunks is the number of chunks whose documents are shuffled
	// together (default defaultGroupChunks).
	GroupChunks int
	// MaxDocTokens cuts longer documents into pieces that are shuffled as
	// separate documents (0: keep documents whole).
	MaxDocTokens int
}

// defaultGroupChunks is the default number of chunks shuffled together.
const defaultGroupChunks = 8

// defaultWindow is the default shuffle window in sequences.
const defaultWindow = 256

// newPacker opens a packer over sources starting at state (nil: the
// beginning). Cursors of sources that are not in this mixture are kept in
// the state untouched; a cursor whose source changed is reset.
func newPacker(sources []Source, opt packedStreamOptions, state *packState) (*packer, error) {
	if opt.SeqLen <= 0 || opt.Vocab <= 0 {
		return nil, fmt.Errorf("stream: seq_len (%d) and vocab (%d) must be positive", opt.SeqLen, opt.Vocab)
	}
	if opt.GroupChunks <= 0 {
		opt.GroupChunks = defaultGroupChunks
	}
	srcs, err := openSources(sources, opt.HeldOut, opt.GroupChunks, opt.MaxDocTokens)
	if err != nil {
		return nil, err
	}
	s := &packer{srcs: srcs, seed: opt.Seed, vocab: opt.Vocab, seqLen: opt.SeqLen}
	if state != nil {
		s.state = state.Clone()
	}
	if s.state.Sources == nil {
		s.state.Sources = map[string]cursor{}
	}
	if s.state.Mix == nil {
		s.state.Mix = map[string]int64{}
	}
	for _, src := range srcs {
		c, ok := s.state.Sources[src.Name]
		if !ok || c.Fingerprint != src.fingerprint {
			if ok && s.state.Current == src.Name {
				s.state.Current = ""
			}
			s.state.Sources[src.Name] = cursor{Fingerprint: src.fingerprint}
		}
	}
	if s.state.Current != "" {
		for _, src := range srcs {
			if src.Name == s.state.Current {
				s.cur = src
			}
		}
		if s.cur == nil {
			// The open document's source is not in this mixture: close
			// the document; its source resumes at the next one.
			c := s.state.Sources[s.state.Current]
			c.Doc, c.Offset = c.Doc+1, 0
			s.state.Sources[s.state.Current] = c
			s.state.Current = ""
		}
	}
	return s, nil
}

// close releases open files.
func (s *packer) close() {
	for _, src := range s.srcs {
		src.close()
	}
}

// pick returns the source the next document comes from.
func (s *packer) pick() *source {
	var best *source
	var bestRatio float64
	for _, src := range s.srcs {
		if src.weight <= 0 {
			continue
		}
		r := float64(s.state.Mix[src.Name]) / src.weight
		if best == nil || r < bestRatio {
			best, bestRatio = src, r
		}
	}
	return best
}

// next packs the next sequence into tokens, targets and docIDs (each of
// length seq_len) and returns the number of positions with a target.
func (s *packer) next(tokens, targets, docIDs []int32) (int, error) {
	T := s.seqLen
	if len(tokens) != T || len(targets) != T || len(docIDs) != T {
		return 0, fmt.Errorf("stream: row buffers must have seq_len %d entries", T)
	}
	fill, seg := 0, int32(0)
	for fill < T {
		if s.cur == nil {
			s.cur = s.pick()
			s.state.Current = s.cur.Name
		}
		src := s.cur
		c := s.state.Sources[src.Name]
		toks, err := src.doc(&c, s.seed, s.vocab, true, true)
		if err != nil {
			return 0, err
		}
		rest := toks[c.Offset:]
		n := min(len(rest), T-fill)
		copy(tokens[fill:fill+n], rest[:n])
		for i := fill; i < fill+n; i++ {
			docIDs[i] = seg
		}
		fill += n
		c.Offset += n
		s.state.Mix[src.Name] += int64(n)
		if c.Offset == len(toks) {
			c.Doc, c.Offset = c.Doc+1, 0
			s.cur, s.state.Current = nil, ""
			seg++
		}
		s.state.Sources[src.Name] = c
	}
	// The last position's target is the open document's next token.
	next := int32(-1)
	if s.cur != nil {
		c := s.state.Sources[s.cur.Name]
		toks, err := s.cur.doc(&c, s.seed, s.vocab, true, true)
		if err != nil {
			return 0, err
		}
		next = toks[c.Offset]
	}
	s.state.Sequences++
	return fillTargets(tokens, targets, docIDs, next), nil
}

// fillTargets sets each position's target to the next token of the same
// document (next for the last position) and counts the targets.
func fillTargets(tokens, targets, docIDs []int32, next int32) int {
	T := len(tokens)
	n := 0
	for i := 0; i < T-1; i++ {
		if docIDs[i+1] == docIDs[i] {
			targets[i] = tokens[i+1]
			n++
		} else {
			targets[i] = -1
		}
	}
	targets[T-1] = next
	if next >= 0 {
		n++
	}
	return n
}

// packedStream is the training data of a stage: packed sequences, shuffled in
// windows. The packer fills a window of W sequences; the window is served
// in a permutation seeded by (seed, window number). The state names the
// packer's position at the window's start and the sequences served, so a
// resumed stream re-packs the window and continues exactly.
type packedStream struct {
	p      *packer
	window int
	start  packState // packer state at the start of the window
	num    int64     // window number
	index  int       // sequences served from the window
	filled bool
	perm   []int
	tok    []int32 // window buffers [W·T]
	tgt    []int32
	doc    []int32
	counts []int
}

// newPackedStream opens a stream over sources at state (nil: the beginning).
func newPackedStream(sources []Source, opt packedStreamOptions, state *packedStreamState) (*packedStream, error) {
	if opt.Window <= 0 {
		opt.Window = defaultWindow
	}
	var st packedStreamState
	if state != nil {
		st = state.Clone()
	}
	p, err := newPacker(sources, opt, &st.Pack)
	if err != nil {
		return nil, err
	}
	n := opt.Window * opt.SeqLen
	return &packedStream{p: p, window: opt.Window, start: p.state.Clone(), num: st.Window, index: st.Index,
		tok: make([]int32, n), tgt: make([]int32, n), doc: make([]int32, n), counts: make([]int, opt.Window)}, nil
}

// State returns a copy of the stream's position.
func (s *packedStream) State() packedStreamState {
	return packedStreamState{Pack: s.start.Clone(), Window: s.num, Index: s.index}
}

// SeqLen is the stream's sequence length.
func (s *packedStream) SeqLen() int { return s.p.seqLen }

// Close releases open files.
func (s *packedStream) Close() { s.p.close() }

// fill packs the current window.
func (s *packedStream) fill() error {
	T := s.p.seqLen
	for i := range s.window {
		n, err := s.p.next(s.tok[i*T:(i+1)*T], s.tgt[i*T:(i+1)*T], s.doc[i*T:(i+1)*T])
		if err != nil {
			return err
		}
		s.counts[i] = n
	}
	s.perm = permutation(s.window, s.p.seed, 0x77696e646f77, int(s.num), int(s.num>>32))
	s.filled = true
	return nil
}

// EndWindow returns the packer's state after the current window (packing
// it if a resumed stream has not yet): where a stream over other sources or
// sequence lengths continues without repeating data.
func (s *packedStream) EndWindow() (packState, error) {
	if !s.filled {
		if err := s.fill(); err != nil {
			return packState{}, err
		}
	}
	return s.p.state.Clone(), nil
}

// Next writes the next sequence into tokens, targets and docIDs (each of
// length seq_len) and returns the number of positions with a target.
func (s *packedStream) Next(tokens, targets, docIDs []int32) (int, error) {
	T := s.p.seqLen
	if len(tokens) != T || len(targets) != T || len(docIDs) != T {
		return 0, fmt.Errorf("stream: row buffers must have seq_len %d entries", T)
	}
	if s.index == s.window {
		if _, err := s.EndWindow(); err != nil {
			return 0, err
		}
		s.start, s.num, s.index, s.filled = s.p.state.Clone(), s.num+1, 0, false
	}
	if !s.filled {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	i := s.perm[s.index]
	copy(tokens, s.tok[i*T:(i+1)*T])
	copy(targets, s.tgt[i*T:(i+1)*T])
	copy(docIDs, s.doc[i*T:(i+1)*T])
	s.index++
	return s.counts[i], nil
}
