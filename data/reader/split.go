package reader

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// How text files become documents (Config.TextSplit).
const (
	SplitFile       = "file"        // the whole file is one document
	SplitBlankLines = "blank_lines" // each run of lines between blank lines is one
	SplitSeparator  = "separator"   // the pieces between occurrences of Config.TextSeparator are
)

// maxSeparator bounds Config.TextSeparator.
const maxSeparator = 1024

func checkSplit(cfg Config) error {
	switch cfg.TextSplit {
	case "", SplitFile, SplitBlankLines:
	case SplitSeparator:
		if cfg.TextSeparator == "" {
			return fmt.Errorf("input.text_split = separator needs input.text_separator, e.g. %q for lines holding only %%", "\n%\n")
		}
		if len(cfg.TextSeparator) > maxSeparator {
			return fmt.Errorf("input.text_separator is %d bytes: at most %d", len(cfg.TextSeparator), maxSeparator)
		}
	default:
		return fmt.Errorf("input.text_split = %q: want %s, %s or %s", cfg.TextSplit, SplitFile, SplitBlankLines, SplitSeparator)
	}
	return nil
}

// splitDoc is one document of a split text file.
type splitDoc struct {
	text    []byte // valid until the next call of next
	line    int    // the line of its first byte (1-based)
	bytes   int64  // input bytes consumed since the previous document, separators and blank pieces included
	tooLong bool   // the piece was longer than the limit; text is empty
}

// splitter streams the documents of a text file, holding at most about
// max bytes (plus the separator and one read) whatever the file size.
type splitter struct {
	r    *bufio.Reader
	sep  []byte // nil: blank-line mode
	max  int
	buf  []byte // separator mode: unread bytes, starting at line `line`
	line int    // line number of the first byte not yet returned
	eof  bool
	used int64 // bytes consumed since the last document
	// blank-line mode: the current paragraph
	para     []byte
	paraLine int   // its first line (0: none yet)
	paraLong bool  // longer than max: its text is dropped
	paraRaw  int64 // its input bytes
	inLine   bool  // the last read ended inside a line longer than the read buffer
}

func newSplitter(r io.Reader, sep string, max int) *splitter {
	s := &splitter{r: bufio.NewReaderSize(r, 64<<10), max: max, line: 1}
	if sep != "" {
		s.sep = []byte(sep)
	}
	return s
}

// next returns the next document; io.EOF after the last.
func (s *splitter) next() (splitDoc, error) {
	if s.sep == nil {
		return s.nextParagraph()
	}
	return s.nextPiece()
}

// isBlank reports whether b holds only white space.
func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// trimBreaks removes the line breaks around a piece and returns how many
// newlines it removed in front.
func trimBreaks(b []byte) ([]byte, int) {
	lead := 0
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r') {
		if b[0] == '\n' {
			lead++
		}
		b = b[1:]
	}
	return bytes.TrimRight(b, "\r\n"), lead
}

func (s *splitter) nextPiece() (splitDoc, error) {
	searched := 0  // s.buf[:searched] holds no separator start
	long := false  // the current piece overflowed: its start is gone
	startLine := 0 // the line of the current piece's first byte
	for {
		if startLine == 0 {
			startLine = s.line
		}
		if i := bytes.Index(s.buf[searched:], s.sep); i >= 0 {
			end := searched + i
			piece := s.buf[:end]
			n := bytes.Count(piece, []byte{'\n'}) + bytes.Count(s.sep, []byte{'\n'})
			raw := int64(end + len(s.sep))
			s.buf = s.buf[end+len(s.sep):]
			if d, ok := s.piece(piece, startLine, long, raw); ok {
				s.line += n
				return d, nil
			}
			s.line += n
			searched, long, startLine = 0, false, 0
			continue
		}
		if s.eof {
			if len(s.buf) == 0 && !long {
				return splitDoc{}, io.EOF
			}
			piece := s.buf
			s.buf = s.buf[:0]
			n := bytes.Count(piece, []byte{'\n'})
			d, ok := s.piece(piece, startLine, long, int64(len(piece)))
			s.line += n
			if ok {
				return d, nil
			}
			return splitDoc{}, io.EOF
		}
		// No separator can start before len(buf)-len(sep)+1.
		searched = max(0, len(s.buf)-len(s.sep)+1)
		if searched > s.max {
			// The piece is longer than the limit: drop what it has so
			// far, keeping the bytes a separator could start in.
			s.line += bytes.Count(s.buf[:searched], []byte{'\n'})
			s.used += int64(searched)
			s.buf = s.buf[:copy(s.buf, s.buf[searched:])]
			searched, long = 0, true
		}
		if err := s.fill(); err != nil {
			return splitDoc{}, err
		}
	}
}

// piece turns the raw bytes between separators into a document; blank
// pieces are skipped (ok false).
func (s *splitter) piece(raw []byte, line int, long bool, n int64) (splitDoc, bool) {
	s.used += n
	if long || len(raw) > s.max {
		d := splitDoc{line: line, bytes: s.used, tooLong: true}
		s.used = 0
		return d, true
	}
	if isBlank(raw) {
		return splitDoc{}, false
	}
	text, lead := trimBreaks(raw)
	d := splitDoc{text: text, line: line + lead, bytes: s.used}
	s.used = 0
	return d, true
}

// fill reads more input into s.buf.
func (s *splitter) fill() error {
	if cap(s.buf)-len(s.buf) < 32<<10 {
		nb := make([]byte, len(s.buf), 2*cap(s.buf)+64<<10)
		copy(nb, s.buf)
		s.buf = nb
	}
	n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
	s.buf = s.buf[:len(s.buf)+n]
	if errors.Is(err, io.EOF) {
		s.eof = true
		return nil
	}
	return err
}

func (s *splitter) nextParagraph() (splitDoc, error) {
	for {
		line, err := s.r.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		atEOF := errors.Is(err, io.EOF)
		if err != nil && !full && !atEOF {
			return splitDoc{}, err
		}
		if len(line) > 0 {
			ends := line[len(line)-1] == '\n'
			if !full && !s.inLine && isBlank(line) {
				// A blank line ends the paragraph.
				s.used += int64(len(line))
				if ends {
					s.line++
				}
				if s.paraLine != 0 {
					return s.paragraph(), nil
				}
				continue
			}
			if s.paraLine == 0 {
				s.paraLine = s.line
			}
			s.paraRaw += int64(len(line))
			if !s.paraLong && len(s.para)+len(line) > s.max {
				s.paraLong, s.para = true, s.para[:0]
			}
			if !s.paraLong {
				s.para = append(s.para, line...)
			}
			s.inLine = full // the next read continues this line
			if ends {
				s.line++
			}
		}
		if atEOF {
			if s.paraLine != 0 {
				return s.paragraph(), nil
			}
			return splitDoc{}, io.EOF
		}
	}
}

// paragraph returns the current paragraph and starts the next.
func (s *splitter) paragraph() splitDoc {
	d := splitDoc{line: s.paraLine, bytes: s.used + s.paraRaw, tooLong: s.paraLong}
	if !s.paraLong {
		d.text = bytes.TrimRight(s.para, "\r\n")
	}
	s.para, s.paraLine, s.paraLong, s.paraRaw, s.used = s.para[:0], 0, false, 0, 0
	return d
}

// readSplit streams the documents of a text file split by cfg.TextSplit.
func readSplit(path string, cfg Config, emit func(*Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	defer f.Close()
	sep := ""
	if cfg.TextSplit == SplitSeparator {
		sep = cfg.TextSeparator
	}
	max := cfg.MaxLineBytes
	if max <= 0 {
		max = 64 << 20
	}
	src := cfg.Source
	if src == "" {
		src = filepath.Dir(path)
	}
	sp := newSplitter(f, sep, max)
	for {
		d, err := sp.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s near line %d: %w", path, sp.line, err)
		}
		r := &Record{Bytes: d.bytes}
		r.Doc.Origin = path + ":" + strconv.Itoa(d.line)
		r.Doc.ID = r.Doc.Origin
		r.Doc.Source = src
		if d.tooLong {
			r.Problem, r.Detail = "text_too_long", fmt.Sprintf("a document longer than input.max_line_bytes = %d (input.text_split = %s)", max, cfg.TextSplit)
		} else {
			r.Doc.Text = string(d.text)
		}
		if err := emit(r); err != nil {
			return err
		}
	}
}
