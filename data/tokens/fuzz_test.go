package tokens_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/data/tokens"
	"github.com/herdml/herd/data/tokens/tokenstest"
)

// FuzzManifest: any bytes give a manifest or an error, never a panic; a
// parsed manifest re-encodes and parses to the same value.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"format":"herd-tokens/1","tokenizer":{"hash":"ab","vocab_size":2048,"bos_id":2048,"eos_id":2049},` +
		`"shards":[{"file":"tokens-00000.parquet","input":"d/docs-00000.parquet","input_hash":"01","docs":3,"tokens":30,"sources":{"web":{"docs":3,"tokens":30}}}],` +
		`"sources":{"web":{"docs":3,"tokens":30}},"total":{"docs":3,"tokens":30}}`))
	f.Add([]byte(`{"format":"herd-tokens/1","tokenizer":{"vocab_size":0}}`))
	f.Add([]byte(`{"format":"herd-tokens/1","tokenizer":{"vocab_size":5},"shards":[{"file":"../x"}]}`))
	f.Add([]byte("{\n  \"format\": 3\n}"))
	f.Add([]byte(`{"format":"herd-tokens/1","extra":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := tokens.ParseManifest(data, "manifest.json")
		if err != nil {
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := tokens.ParseManifest(again, "again")
		if err != nil {
			t.Fatalf("re-encoded manifest does not parse: %v", err)
		}
		if b, _ := json.Marshal(m2); !bytes.Equal(b, again) {
			t.Fatal("manifest does not round-trip")
		}
	})
}

// FuzzTokenShard: corrupted token shards give errors naming the file,
// never a panic or a huge allocation.
//
// The fuzzer damages a valid shard by writing patch at offset at and
// cutting cut bytes off the end, instead of mutating whole files: its
// inputs stay a few bytes long, so minimizing an interesting one takes
// milliseconds rather than the whole run.
func FuzzTokenShard(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "tokens-00000.parquet")
	tokenstest.WriteShard(f, path, tokenstest.SynthRows("s", 12, 32, 1, 3, 40), 4)
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint16(0), []byte(nil), uint16(0))
	f.Add(uint16(0), []byte(nil), uint16(len(good)/2))
	for _, at := range []int{8, len(good) / 3, len(good) / 2, len(good) - 12, len(good) - 9} {
		f.Add(uint16(at), []byte{good[at] ^ 0x5a}, uint16(0))
	}
	f.Add(uint16(0), []byte(nil), uint16(len(good)-4))
	f.Fuzz(func(t *testing.T, at uint16, patch []byte, cut uint16) {
		data := bytes.Clone(good)
		copy(data[int(at)%len(data):], patch)
		data = data[:len(data)-int(cut)%len(data)]
		p := filepath.Join(dir, "fuzz-tokens-00000.parquet")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sf, err := tokens.Open(p)
		if err != nil {
			return
		}
		defer sf.Close()
		for g := range sf.RowGroupRows() {
			if _, err := sf.ReadRowGroup(g, 32, nil); err != nil {
				return
			}
		}
	})
}
