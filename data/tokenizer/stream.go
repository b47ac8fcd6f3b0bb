package tokenizer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
)

// StreamOptions configure EncodeStream.
type StreamOptions struct {
	// AllowSpecial encodes special-token texts as their ids (see
	// AppendEncode).
	AllowSpecial bool
	// AddBOS emits the BOS of PrefixBOS (if the tokenizer has one) before
	// the text's ids, as Hugging Face's add_special_tokens=True does.
	AddBOS bool
	// Workers encode pieces in parallel, at most MaxWorkers (0:
	// GOMAXPROCS).
	Workers int
	// MaxSegment bounds the bytes held before a safe cut point is found, at
	// most MaxLimit (0: DefaultMaxSegment). Text is cut only where a
	// pre-token must end (see cutPoint: after an ASCII letter before an
	// ASCII non-letter, or after a line break before a non-space), so only
	// a longer run without such a place (a single very long pre-token, or
	// text without ASCII spaces, punctuation and line breaks) exceeds it;
	// that is an error wrapping ErrTooLong. Encoding one pre-token takes
	// about 30 bytes of memory per byte, so the default bounds a
	// pathological input at about a GiB.
	MaxSegment int
}

// EncodeStream encodes the text read from r and passes its ids to emit in
// order, piece by piece; the concatenated ids equal AppendEncode of the
// whole text. Memory stays bounded: about one chunk of a MiB per worker
// plus the longest segment without a safe cut point (see StreamOptions).
// emit must not keep the slice.
func (t *Tokenizer) EncodeStream(ctx context.Context, r io.Reader, o StreamOptions, emit func(ids []int32) error) error {
	return t.encodeStream(ctx, r, o, chunkSize, emit)
}

// encodeStream is EncodeStream with a target chunk size (small in tests).
func (t *Tokenizer) encodeStream(ctx context.Context, r io.Reader, o StreamOptions, chunk int, emit func([]int32) error) error {
	workers, err := workerCount(o.Workers)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	maxSeg, err := limitSetting("max segment", o.MaxSegment, DefaultMaxSegment)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if bos, ok := t.PrefixBOS(); ok && o.AddBOS {
		if err := emit([]int32{bos}); err != nil {
			return err
		}
	}
	seg := &segmenter{r: r, t: t, special: o.AllowSpecial, chunk: chunk, limit: max(maxSeg, chunk)}
	batch := make([][]byte, 0, workers)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch = batch[:0]
		var rerr error
		for len(batch) < workers {
			c, err := seg.next()
			if err != nil {
				rerr = err
				break
			}
			batch = append(batch, c)
		}
		if len(batch) > 0 {
			ids, err := t.EncodeBatch(ctx, batch, o.AllowSpecial, workers)
			if err != nil {
				return err
			}
			for _, x := range ids {
				if err := emit(x); err != nil {
					return err
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// segmenter cuts a stream into chunks at places where cutting does not
// change the encoding: pre-token boundaries that are certain whatever
// follows (cutPoint), outside special tokens when those are recognised.
type segmenter struct {
	r            io.Reader
	t            *Tokenizer
	special      bool
	chunk, limit int
	buf          []byte // read, not yet returned; it starts at a cut
	off          int64  // input offset of buf[0]
	scanned      int    // cut candidates p <= scanned are known to be unusable
	fresh        int    // the special-token scan from fresh equals the scan from 0
	eof          bool
}

// next returns the next chunk (a new slice), or io.EOF after the last.
func (s *segmenter) next() ([]byte, error) {
	for {
		if s.eof {
			if len(s.buf) == 0 {
				return nil, io.EOF
			}
			c := s.buf
			s.buf = nil
			s.off += int64(len(c))
			return c, nil
		}
		if len(s.buf) >= s.chunk {
			if p := s.cut(); p > 0 {
				c := bytes.Clone(s.buf[:p])
				s.buf = s.buf[:copy(s.buf, s.buf[p:])]
				s.off += int64(p)
				s.scanned, s.fresh = 0, 0
				return c, nil
			}
			if len(s.buf) > s.limit {
				return nil, fmt.Errorf("%w: no safe place to cut the text between bytes %d and %d of the input (%d bytes, limit %d): a single pre-token this long, or text without ASCII spaces, punctuation or line breaks",
					ErrTooLong, s.off, s.off+int64(len(s.buf)), len(s.buf), s.limit)
			}
		}
		s.buf = slices.Grow(s.buf, s.chunk)
		n, err := io.ReadFull(s.r, s.buf[len(s.buf):len(s.buf)+s.chunk])
		s.buf = s.buf[:len(s.buf)+n]
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			s.eof = true
		case err != nil:
			return nil, fmt.Errorf("read at byte %d: %w", s.off+int64(len(s.buf)), err)
		}
	}
}

// cut returns a cut point of buf, or -1: the largest one cutPoint finds,
// or, when that lies inside a special token the encoder finds (with
// special tokens recognised), the end of that token. Either way the text
// before the cut and the text after it encode to the ids of the whole.
// With special tokens, only candidates at least the longest token's length
// before the end of buf are considered, so that the token is fully read.
func (s *segmenter) cut() int {
	hi := len(s.buf) - 1
	if s.special && len(s.t.specials.lens) > 0 {
		hi = len(s.buf) - s.t.specials.lens[0]
	}
	lo := max(1, s.scanned+1)
	if hi < lo {
		return -1
	}
	q := cutPoint(s.buf[lo-1 : hi+1])
	if q <= 0 {
		s.scanned = hi
		return -1
	}
	p := lo - 1 + q
	if s.special && len(s.t.specials.lens) > 0 {
		if end, inside := s.specialAround(p); inside {
			return end
		}
	}
	return p
}

// specialAround reports whether the encoder, scanning buf for special
// tokens from its start the way AppendEncode does, finds one that starts
// before p and ends after it, and where that token ends. The scan resumes
// from the end of the last token passed (fresh), and looks no further than
// the longest token's length beyond p, which cannot change the tokens
// found before p.
func (s *segmenter) specialAround(p int) (end int, inside bool) {
	for {
		w := s.buf[s.fresh:min(len(s.buf), p+s.t.specials.lens[0])]
		pos, stop, _ := s.t.specials.find(w)
		if pos < 0 || s.fresh+pos >= p {
			return 0, false
		}
		if s.fresh+stop > p {
			return s.fresh + stop, true
		}
		s.fresh += stop
	}
}
