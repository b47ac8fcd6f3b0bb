package gguf

import (
	"bytes"
	"io"
	"testing"

	"github.com/herdml/herd/model"
)

// benchModel is a 1536-wide, 2-layer model (about 30M parameters with a
// 530-token vocabulary padded to 8192) for export and load speed.
func benchModel(b *testing.B) (model.Config, *model.Params, *Model) {
	tok := trainTokenizer(b, 530)
	cfg := model.Config{VocabSize: 8192, HiddenSize: 1536, IntermediateSize: 4096, NumHiddenLayers: 2,
		NumAttentionHeads: 12, NumKeyValueHeads: 4, MaxPositionEmbeddings: 256}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 1)
	return cfg, p, &Model{Tokenizer: tok}
}

// BenchmarkWrite reports export speed per type in parameters per second.
func BenchmarkWrite(b *testing.B) {
	cfg, p, m := benchModel(b)
	for _, typ := range []Type{F32, F16, BF16, Q8_0} {
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(int64(len(p.Data)))
			for b.Loop() {
				if err := Write(io.Discard, cfg, p, m.Tokenizer, Options{Type: typ}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead reports load speed per type (parameters per second,
// reported as bytes).
func BenchmarkRead(b *testing.B) {
	cfg, p, m := benchModel(b)
	for _, typ := range []Type{F32, F16, Q8_0} {
		var buf bytes.Buffer
		if err := Write(&buf, cfg, p, m.Tokenizer, Options{Type: typ}); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(int64(len(p.Data)))
			for b.Loop() {
				if _, err := Read(bytes.NewReader(data), int64(len(data)), true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
