package main

import (
	"bytes"
	"fmt"

	"github.com/herdml/herd/model"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Byte-level vocabulary of the demo: the 256 byte values plus document
// delimiters.
const (
	bosID     = 256
	eosID     = 257
	vocabSize = 258
)

// listFiles returns, in lexical order, the files under root whose names end
// in one of exts, split into training and held-out sets (every holdEvery-th
// file is held out).
func listFiles(root string, exts []string, holdEvery int) (train, held []string, err error) {
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		for _, e := range exts {
			if strings.HasSuffix(path, e) {
				if n%holdEvery == holdEvery-1 {
					held = append(held, path)
				} else {
					train = append(train, path)
				}
				n++
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list corpus %s: %w", root, err)
	}
	if len(train) == 0 || len(held) == 0 {
		return nil, nil, fmt.Errorf("corpus %s: found %d training and %d held-out files with extensions %v; need at least one of each", root, len(train), len(held), exts)
	}
	return train, held, nil
}

// packer streams documents as BOS, bytes…, EOS and cuts the stream into
// rows of T inputs with their next-token targets and document ids. Each
// file is split into documents of at most maxDoc bytes, cut after a newline
// where one exists. A target that belongs to the next document is -1, so
// no loss crosses a boundary; the model's document mask keeps attention
// inside each document. The file list cycles forever.
type packer struct {
	files    []string
	maxDoc   int
	pos      packerPos
	file     []byte // contents of files[fileIdx] when fileIdx >= 0
	fileIdx  int
	doc      []int32 // tokens of the current document (valid when loaded)
	docBytes int     // bytes of the file the current document covers
	loaded   bool
}

// packerPos is the packer's resumable position: the file being read, the
// byte where the current document starts in it, the offset in that
// document's tokens, how many documents were started and how many passes
// over the file list have begun.
type packerPos struct {
	File   int   `json:"file"`
	Byte   int   `json:"byte"`
	Offset int   `json:"offset"`
	DocID  int32 `json:"doc_id"`
	Epoch  int   `json:"epoch"`
}

func newPacker(files []string, maxDoc int) *packer {
	return &packer{files: files, maxDoc: maxDoc, fileIdx: -1}
}

// lanes are parallel packers over one file list, one per batch row, each
// starting at an evenly spaced byte offset of the concatenated corpus (on a
// line boundary), so every batch mixes text from all over the corpus while
// each row still reads whole documents in order.
type lanes []*packer

func newLanes(files []string, maxDoc, n int) (lanes, error) {
	sizes := make([]int64, len(files))
	var total int64
	for i, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		sizes[i] = st.Size()
		total += st.Size()
	}
	if total == 0 {
		return nil, fmt.Errorf("corpus: all %d files are empty", len(files))
	}
	ls := make(lanes, n)
	for r := range ls {
		p := newPacker(files, maxDoc)
		off := total * int64(r) / int64(n)
		f := 0
		for off >= sizes[f] {
			off -= sizes[f]
			f++
		}
		if off > 0 {
			b, err := os.ReadFile(files[f])
			if err != nil {
				return nil, fmt.Errorf("read corpus file: %w", err)
			}
			if nl := bytes.IndexByte(b[off:], '\n'); nl >= 0 {
				off += int64(nl) + 1
			}
		}
		p.pos = packerPos{File: f, Byte: int(off)}
		ls[r] = p
	}
	return ls, nil
}

// positions returns every lane's position.
func (ls lanes) positions() []packerPos {
	out := make([]packerPos, len(ls))
	for i, p := range ls {
		out[i] = p.pos
	}
	return out
}

// seek restores positions returned by positions.
func (ls lanes) seek(pos []packerPos) error {
	if len(pos) != len(ls) {
		return fmt.Errorf("corpus position has %d lanes, this run has %d", len(pos), len(ls))
	}
	for i, p := range ls {
		if err := p.seek(pos[i]); err != nil {
			return err
		}
	}
	return nil
}

// fill writes one row per lane into a batch.
func (ls lanes) fill(b *model.Batch) error {
	for r := 0; r < b.B; r++ {
		lo, hi := r*b.T, (r+1)*b.T
		if err := ls[r].fill(b.Tokens[lo:hi], b.Targets[lo:hi], b.DocIDs[lo:hi]); err != nil {
			return err
		}
	}
	return nil
}

// seek restores a position returned by a previous packer's pos.
func (p *packer) seek(pos packerPos) error {
	if pos.File < 0 || pos.File >= len(p.files) || pos.Byte < 0 || pos.Offset < 0 {
		return fmt.Errorf("corpus position %+v is outside the %d-file corpus", pos, len(p.files))
	}
	p.pos = pos
	p.loaded = false
	return nil
}

// load tokenizes the document starting at the current position, skipping
// empty files.
func (p *packer) load() error {
	for tries := 0; ; tries++ {
		if tries > len(p.files) {
			return fmt.Errorf("corpus: all %d files are empty", len(p.files))
		}
		if p.fileIdx != p.pos.File {
			b, err := os.ReadFile(p.files[p.pos.File])
			if err != nil {
				return fmt.Errorf("read corpus file: %w", err)
			}
			p.file, p.fileIdx = b, p.pos.File
		}
		if p.pos.Byte < len(p.file) {
			break
		}
		p.nextFile()
	}
	rest := p.file[p.pos.Byte:]
	n := len(rest)
	if n > p.maxDoc {
		n = p.maxDoc
		if nl := bytes.LastIndexByte(rest[:n], '\n'); nl > 0 {
			n = nl + 1
		}
	}
	if p.pos.Offset > n+1 {
		return fmt.Errorf("corpus position %+v is beyond the end of its document", p.pos)
	}
	doc := append(p.doc[:0], bosID)
	for _, c := range rest[:n] {
		doc = append(doc, int32(c))
	}
	p.doc = append(doc, eosID)
	p.docBytes = n
	p.loaded = true
	return nil
}

func (p *packer) nextFile() {
	p.pos.Byte = 0
	p.pos.File++
	if p.pos.File == len(p.files) {
		p.pos.File = 0
		p.pos.Epoch++
	}
}

// fill writes one row: tokens, targets and doc ids of length T.
func (p *packer) fill(tokens, targets, docIDs []int32) error {
	for i := range tokens {
		if !p.loaded {
			if err := p.load(); err != nil {
				return err
			}
		}
		if p.pos.Offset == 0 {
			p.pos.DocID++
		}
		tokens[i] = p.doc[p.pos.Offset]
		docIDs[i] = p.pos.DocID
		p.pos.Offset++
		if p.pos.Offset < len(p.doc) {
			targets[i] = p.doc[p.pos.Offset]
			continue
		}
		targets[i] = -1
		p.pos.Offset = 0
		p.pos.Byte += p.docBytes
		if p.pos.Byte >= len(p.file) {
			p.nextFile()
		}
		p.loaded = false
	}
	return nil
}
