package pretrain

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
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
		m, err := parseManifest(data, "manifest.json")
		if err != nil {
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseManifest(again, "again")
		if err != nil {
			t.Fatalf("re-encoded manifest does not parse: %v", err)
		}
		if b, _ := json.Marshal(m2); !bytes.Equal(b, again) {
			t.Fatal("manifest does not round-trip")
		}
	})
}

// FuzzRecord: metrics lines parse or fail cleanly; parsed records
// round-trip.
func FuzzRecord(f *testing.F) {
	f.Add([]byte(`{"kind":"train","step":3,"stage":"main","tokens":6144,"grad_norm":"NaN","loss":"Infinity","lr":0.001,"skipped":true}`))
	f.Add([]byte(`{"kind":"eval","step":10,"stage":"anneal","tokens":1,"eval_loss":2.5,"eval_ppl":12.18,"unigram":4}`))
	f.Add([]byte(`{"kind":"train","loss":"fast"}`))
	f.Add([]byte(`{"step":1.5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Record
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var r2 Record
		if err := json.Unmarshal(b, &r2); err != nil {
			t.Fatalf("re-encoded record %s does not parse: %v", b, err)
		}
		b2, _ := r2.MarshalJSON()
		if !bytes.Equal(b, b2) {
			t.Fatalf("record does not round-trip: %s vs %s", b, b2)
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
	writeTokenShard(f, path, synthRows("s", 12, 32, 1, 3, 40), 4)
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
		sf, err := openShard(p)
		if err != nil {
			return
		}
		defer sf.Close()
		for g := range sf.pf.RowGroups() {
			if _, err := sf.readRowGroup(g, 32, nil); err != nil {
				return
			}
		}
	})
}
