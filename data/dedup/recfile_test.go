package dedup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validFiles writes one small file of each kind and returns their bytes.
func validFiles(t testing.TB) map[uint16][]byte {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	docs := []Doc{{1, "alpha beta gamma delta epsilon zeta"}, {4, "alpha beta gamma delta epsilon eta"}, {9, "other words entirely here now"}}
	sp := filepath.Join(dir, "sig.bin")
	sw, err := NewSignatureWriter(sp, MinHashConfig{Bands: 2, Rows: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		addText(sw, d.ID, d.Text)
	}
	if err := sw.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := WriteBands(ctx, []string{sp}, dir, nil, SpillConfig{TempDir: dir}); err != nil {
		t.Fatal(err)
	}
	idx, err := OpenSignatureIndex([]string{sp})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	ep := filepath.Join(dir, "edges.bin")
	if _, err := FindEdges(ctx, BandFileName(dir, 0), idx, ep, MinHashConfig{Bands: 2, Rows: 2, Threshold: 0.1}); err != nil {
		t.Fatal(err)
	}
	kp := filepath.Join(dir, "keys.bin")
	kw := NewKeyWriter(kp, SpillConfig{TempDir: dir})
	for _, d := range docs {
		kw.Add(KeyRecord{HashText(d.Text, ExactConfig{}), d.ID, d.ID})
	}
	kw.Add(KeyRecord{HashText(docs[0].Text, ExactConfig{}), 7, 7})
	if err := kw.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rp := filepath.Join(dir, "rem.bin")
	if err := writeRemovals(ctx, rp, []Removal{{7, 1}, {3, 2}}); err != nil {
		t.Fatal(err)
	}
	out := map[uint16][]byte{}
	for kind, p := range map[uint16]string{kindSignatures: sp, kindBands: BandFileName(dir, 0), kindEdges: ep, kindKeys: kp, kindRemovals: rp} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[kind] = b
	}
	return out
}

// readAny parses data as a file of the given kind through the same checks
// the public readers apply, returning the first error.
func readAny(kind uint16, data []byte) error {
	r, err := openRecBytes("fuzz.bin", data, kind, 0)
	if err != nil {
		return err
	}
	switch kind {
	case kindSignatures:
		sr, err := newSignatureReader(r)
		if err != nil {
			return err
		}
		for {
			if _, _, err := sr.Next(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	case kindRemovals:
		if r.recSize != removalCodec.size {
			return errors.New("record size")
		}
		_, err := readRemovals(&RemovalReader{r: r})
		return err
	case kindBands:
		if r.recSize != bandCodec.size {
			return errors.New("record size")
		}
		if _, err := parseSigParams("fuzz.bin", r.params); err != nil {
			return err
		}
		return scanGroups(context.Background(), fileSource(r, bandCodec), func([]uint64) error { return nil })
	case kindKeys:
		if r.recSize != keyCodec.size {
			return errors.New("record size")
		}
		src := fileSource(r, keyCodec)
		for {
			_, ok, err := src()
			if err != nil || !ok {
				return err
			}
		}
	default:
		return r.each(func([]byte) error { return nil })
	}
}

func TestRecordFilesRejectCorruption(t *testing.T) {
	files := validFiles(t)
	for kind, good := range files {
		if err := readAny(kind, good); err != nil {
			t.Fatalf("%s file: valid file rejected: %v", kindNames[kind], err)
		}
		flip := bytes.Clone(good)
		flip[len(flip)-recFooterSize-3] ^= 1
		other := kindKeys
		if kind == kindKeys {
			other = kindEdges
		}
		tests := []struct {
			name string
			data []byte
			kind uint16
			want string
		}{
			{"truncated", good[:len(good)-5], kind, "footer"},
			{"cut record", append(bytes.Clone(good[:len(good)-recFooterSize-1]), good[len(good)-recFooterSize:]...), kind, "data bytes"},
			{"flipped bit", flip, kind, "checksum"},
			{"wrong kind", good, other, "holds"},
			{"garbage", []byte(strings.Repeat("not a dedup file at all; ", 4)), kind, "magic"},
		}
		for _, tc := range tests {
			err := readAny(tc.kind, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "fuzz.bin") {
				t.Errorf("%s file, %s: err = %v, want mention of %q and the file name", kindNames[kind], tc.name, err, tc.want)
			}
		}
	}
}

func TestSortedReadersCheckOrder(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.bin")
	w, err := createRec(p, kindRemovals, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	enc := make([]byte, 16)
	for _, r := range []Removal{{5, 1}, {3, 1}} { // out of order
		removalCodec.put(enc, r)
		w.write(enc)
	}
	if err := w.commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRemovals(p); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("unsorted removal file: %v", err)
	}
}

func FuzzRecordFiles(f *testing.F) {
	for kind, b := range validFiles(f) {
		f.Add(kind, b)
		f.Add(kind, b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, kind uint16, data []byte) {
		kind = 1 + kind%5
		readAny(kind, data) // must not panic, hang or allocate wildly
	})
}
