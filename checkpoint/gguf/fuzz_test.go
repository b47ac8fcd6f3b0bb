package gguf

import (
	"bytes"
	"strings"
	"testing"

	"github.com/herdml/herd/model"
)

// tinyGGUF is a small valid GGUF file: a one-layer model with a trained
// 530-token tokenizer and llama3 RoPE scaling, its matrices of type typ.
func tinyGGUF(t testing.TB, typ Type) []byte {
	t.Helper()
	tok := trainTokenizer(t, 530)
	cfg := model.Config{VocabSize: tok.VocabSize(), HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 1,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 64, TieWordEmbeddings: typ != F32,
		RopeScaling: &model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 32}}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 3)
	var buf bytes.Buffer
	if err := Write(&buf, cfg, p, tok, Options{Type: typ}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzRead: any input is read or refused with an error; never a panic, a
// hang or an allocation beyond what the file's size allows.
func FuzzRead(f *testing.F) {
	for _, typ := range []Type{F32, Q8_0} {
		good := tinyGGUF(f, typ)
		f.Add(good)
		f.Add(good[:len(good)/2])
		f.Add(good[:200])
	}
	f.Add([]byte("GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00a\x09\x00\x00\x00\x08\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Read(bytes.NewReader(data), int64(len(data)), true)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(m.Params.Data) > len(data) {
			t.Fatalf("%d parameters from a file of %d bytes", len(m.Params.Data), len(data))
		}
	})
}

// TestReadErrors: damaged files are refused with an error that says what
// is wrong.
func TestReadErrors(t *testing.T) {
	good := tinyGGUF(t, F32)
	hd, err := readHeader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "does not start with"},
		{"truncated header", good[:1000], "does not fit"},
		{"truncated data", good[:len(good)-100], "outside"},
		{"version 2", append([]byte("GGUF\x02\x00\x00\x00"), good[8:]...), "version 2"},
		{"huge tensor count", append(append([]byte("GGUF\x03\x00\x00\x00"), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), good[16:]...), "tensor count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.data), int64(len(tc.data)), true)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Llama variants herd does not implement are refused by name.
	for _, kv := range []metaKV{{"llama.rope.scaling.type", "linear"}, {"llama.expert_count", uint32(8)}} {
		var buf bytes.Buffer
		gw, err := newFileWriter(&buf, append([]metaKV{{"general.architecture", "llama"}}, kv), nil)
		if err != nil {
			t.Fatal(err)
		}
		gw.Close()
		_, err = Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), false)
		if err == nil || !strings.Contains(err.Error(), kv.Key) {
			t.Errorf("%s: err %v", kv.Key, err)
		}
	}
	if hd.dataStart%ggufAlignment != 0 {
		t.Errorf("data section at %d", hd.dataStart)
	}
}
