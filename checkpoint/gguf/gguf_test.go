package gguf

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/traintest"
	"github.com/herdml/herd/model"
)

// refDir is a reference model of ../shared/testdata (see its README):
// a Hugging Face checkpoint and the model.gguf llama.cpp's converter made
// of it.
func refDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "testdata", "llama-ref", name)
	if _, err := os.Stat(filepath.Join(dir, "model.gguf")); err != nil {
		t.Skipf("reference data missing: %v", err)
	}
	return dir
}

// openHeader parses the header of a GGUF file.
func openHeader(t testing.TB, path string) (*header, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hd, err := readHeader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return hd, data
}

// refTokenizerDir writes the tokenizer of the reference model.gguf (a
// placeholder byte-level vocabulary) as a Hugging Face tokenizer
// directory, for exporting the reference checkpoint, which has none.
func refTokenizerDir(t *testing.T, ref string) string {
	t.Helper()
	m, err := LoadTokenizer(filepath.Join(ref, "model.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Tokenizer.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestExportMatchesConverter is must-show 1: herd's F32 export of the
// reference checkpoints has tensor infos and data byte-identical to the
// model.gguf llama.cpp's converter made (q/k permutation, reversed dims,
// rope_freqs for tiny-b's llama3 scaling, no output.weight for the tied
// tiny-b), and the same metadata: every key of the reference with the same
// type and value (herd adds only its own keys).
func TestExportMatchesConverter(t *testing.T) {
	for _, name := range []string{"tiny-a", "tiny-b"} {
		t.Run(name, func(t *testing.T) {
			ref := refDir(t, name)
			out := filepath.Join(t.TempDir(), name+".gguf")
			if err := Convert(ConvertOptions{Model: ref, Tokenizer: refTokenizerDir(t, ref), Format: FormatGGUF, Type: F32, Out: out}); err != nil {
				t.Fatal(err)
			}
			want, wdata := openHeader(t, filepath.Join(ref, "model.gguf"))
			got, gdata := openHeader(t, out)
			if !reflect.DeepEqual(got.tensors, want.tensors) {
				t.Fatalf("tensor infos differ:\n got %+v\nwant %+v", got.tensors, want.tensors)
			}
			for _, ti := range want.tensors {
				w := wdata[want.dataStart+int64(ti.Offset):][:ti.bytes()]
				g := gdata[got.dataStart+int64(ti.Offset):][:ti.bytes()]
				if !bytes.Equal(g, w) {
					t.Errorf("tensor %s: data differs from the converter's", ti.Name)
				}
			}
			if !bytes.Equal(gdata[got.dataStart:], wdata[want.dataStart:]) {
				t.Error("data sections differ")
			}
			llama := 0
			for _, k := range want.keys {
				g, ok := got.kv[k]
				if !ok {
					t.Errorf("key %s missing", k)
					continue
				}
				if !reflect.DeepEqual(g, want.kv[k]) {
					t.Errorf("key %s = %+v, the converter wrote %+v", k, g.v, want.kv[k].v)
				}
				if strings.HasPrefix(k, "llama.") {
					llama++
				}
			}
			if llama < 12 {
				t.Errorf("only %d llama.* keys compared", llama)
			}
			for _, k := range got.keys {
				if _, ok := want.kv[k]; !ok && !slices.Contains([]string{herdKey, "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id", "tokenizer.chat_template"}, k) {
					t.Errorf("herd writes key %s, which the converter does not", k)
				}
			}
		})
	}
}

// TestReadConverterFile reads the converter's own file into herd (the RoPE
// scaling of tiny-b inferred from rope_freqs.weight, no herd keys) and
// checks it equals the Hugging Face checkpoint it was made from.
func TestReadConverterFile(t *testing.T) {
	for _, name := range []string{"tiny-a", "tiny-b"} {
		t.Run(name, func(t *testing.T) {
			ref := refDir(t, name)
			m, err := Load(filepath.Join(ref, "model.gguf"))
			if err != nil {
				t.Fatal(err)
			}
			cfg, p, err := checkpoint.LoadModel(ref)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameArchitecture(m.Config, cfg); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Config.RopeScaling, cfg.RopeScaling) {
				t.Fatalf("rope_scaling %+v, want %+v", m.Config.RopeScaling, cfg.RopeScaling)
			}
			if !slices.Equal(m.Params.Data, p.Data) {
				t.Fatal("weights differ from the Hugging Face checkpoint")
			}
		})
	}
}

// TestRoundTripHF: HF → GGUF (F32) → HF gives byte-identical files
// (weights, config.json, generation_config.json, tokenizer files).
func TestRoundTripHF(t *testing.T) {
	for _, name := range []string{"tiny-a", "tiny-b"} {
		t.Run(name, func(t *testing.T) {
			ref := refDir(t, name)
			tmp := t.TempDir()
			a := filepath.Join(tmp, "a")
			// herd's own form of the reference directory, with a tokenizer.
			if err := Convert(ConvertOptions{Model: ref, Tokenizer: refTokenizerDir(t, ref), Format: FormatHF, Type: F32, Out: a}); err != nil {
				t.Fatal(err)
			}
			g := filepath.Join(tmp, "m.gguf")
			if err := Convert(ConvertOptions{Model: a, Format: FormatGGUF, Type: F32, Out: g}); err != nil {
				t.Fatal(err)
			}
			b := filepath.Join(tmp, "b")
			if err := Convert(ConvertOptions{Model: g, Format: FormatHF, Type: F32, Out: b}); err != nil {
				t.Fatal(err)
			}
			files, _ := os.ReadDir(a)
			if len(files) < 5 {
				t.Fatalf("only %d files in %s", len(files), a)
			}
			for _, f := range files {
				wa, err := os.ReadFile(filepath.Join(a, f.Name()))
				if err != nil {
					t.Fatal(err)
				}
				wb, err := os.ReadFile(filepath.Join(b, f.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(wa, wb) {
					t.Errorf("%s differs after the round trip:\n%s\n---\n%s", f.Name(), clip(wa), clip(wb))
				}
			}
		})
	}
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// refQ8 is ggml's reference Q8_0 quantizer (quantize_row_q8_0_ref in
// ggml-quants.c), written from its published definition: blocks of 32
// floats; amax = max |x|; d = amax / ((1<<7) - 1); id = d ? 1/d : 0; the
// block stores GGML_FP32_TO_FP16(d) (IEEE half, round to nearest even)
// then qs[j] = roundf(x[j]*id) (round half away from zero), all in
// float32 arithmetic.
func refQ8(x []float32) []byte {
	var out []byte
	for b := 0; b < len(x); b += 32 {
		blk := x[b : b+32]
		amax := float32(0)
		for _, v := range blk {
			if v < 0 {
				v = -v
			}
			if v > amax {
				amax = v
			}
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		out = binary.LittleEndian.AppendUint16(out, halfBits(d))
		for _, v := range blk {
			p := v * id
			r := float32(math.Floor(float64(abs32(p)) + 0.5))
			if p < 0 {
				r = -r
			}
			out = append(out, byte(int8(r)))
		}
	}
	return out
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// halfBits converts a non-negative finite float32 to IEEE binary16 bits,
// rounding to nearest even, from the definition of the format (written
// independently of the library the exporter uses).
func halfBits(f float32) uint16 {
	if f == 0 {
		return 0
	}
	if f >= 65520 {
		return 0x7c00
	}
	x := float64(f)
	e := math.Floor(math.Log2(x))
	if e < -14 {
		e = -14 // subnormal: fixed exponent, no implicit bit
	}
	m := x / math.Exp2(e-10) // significand scaled to 10 fraction bits
	r := math.RoundToEven(m)
	if e > -14 || r >= 1024 {
		if r >= 2048 { // rounding carried into the next binade
			r /= 2
			e++
		}
		return uint16(e+15)<<10 | uint16(r-1024)
	}
	return uint16(r)
}

// TestQ8Blocks: herd's Q8_0 blocks equal the reference quantizer's on
// random rows of several scales, rows with exact .5 ties, zero blocks and
// subnormal scales.
func TestQ8Blocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 32 * (1 + rng.IntN(8))
		x := make([]float32, n)
		scale := math.Pow(10, float64(rng.IntN(12)-8))
		for i := range x {
			x[i] = float32(rng.NormFloat64() * scale)
		}
		switch trial % 5 {
		case 1: // exact halves: x = k/2 · d with amax 127·d
			for i := range x {
				x[i] = float32(rng.IntN(255)-127) / 2
			}
			x[0] = 127
		case 2:
			clear(x[:32])
		case 3:
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 1e-38)
			}
		}
		got := encode(nil, x, Q8_0)
		want := refQ8(x)
		if !bytes.Equal(got, want) {
			for b := 0; b < len(want); b += 34 {
				if !bytes.Equal(got[b:b+34], want[b:b+34]) {
					t.Fatalf("trial %d block %d: got %v, want %v (x %v)", trial, b/34, got[b:b+34], want[b:b+34], x[b/34*32:b/34*32+32])
				}
			}
		}
	}
}

// TestExportTypes exports tiny-a as F16, BF16 and Q8_0: norms stay F32,
// every other tensor has the type asked for except the Q8_0 ffn_down
// (rows of 176, not a multiple of 32: F16 as the converter falls back),
// general.file_type says the type, and the weights read back within the
// type's rounding.
func TestExportTypes(t *testing.T) {
	ref := refDir(t, "tiny-a")
	tokDir := refTokenizerDir(t, ref)
	cfg, p, err := checkpoint.LoadModel(ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ      Type
		fileType uint32
		rel      float64 // largest error relative to the block's / value's magnitude
	}{{F16, 1, 1.0 / 2048}, {BF16, 32, 1.0 / 256}, {Q8_0, 7, 0.5/127 + 1.0/2048}} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m.gguf")
			if err := Convert(ConvertOptions{Model: ref, Tokenizer: tokDir, Format: FormatGGUF, Type: tc.typ, Out: out}); err != nil {
				t.Fatal(err)
			}
			hd, _ := openHeader(t, out)
			if ft, _ := hd.uint("general.file_type"); ft != uint64(tc.fileType) {
				t.Errorf("general.file_type %d, want %d", ft, tc.fileType)
			}
			for _, ti := range hd.tensors {
				want := tc.typ
				switch {
				case len(ti.Dims) == 1:
					want = F32
				case tc.typ == Q8_0 && ti.Dims[0]%32 != 0:
					want = F16
				}
				if ti.Type != want {
					t.Errorf("%s %v is %v, want %v", ti.Name, ti.Dims, ti.Type, want)
				}
			}
			m, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameArchitecture(m.Config, cfg); err != nil {
				t.Fatal(err)
			}
			for i, ti := range p.Layout.Tensors {
				a, b := p.View(i), m.Params.View(i)
				amax := float64(0)
				for _, v := range a {
					amax = max(amax, math.Abs(float64(v)))
				}
				for j := range a {
					lim := tc.rel * math.Abs(float64(a[j]))
					if tc.typ == Q8_0 {
						lim = tc.rel * amax
					}
					if d := math.Abs(float64(a[j] - b[j])); d > lim+0x1p-25 { // half the smallest f16 subnormal
						t.Fatalf("%s[%d]: %v read back as %v", ti.Name, j, a[j], b[j])
					}
				}
			}
		})
	}
}

// TestOverwriteRefused: export never replaces a file herd did not write,
// and does replace its own.
func TestOverwriteRefused(t *testing.T) {
	ref := refDir(t, "tiny-a")
	tokDir := refTokenizerDir(t, ref)
	dir := t.TempDir()
	mine := filepath.Join(dir, "notes.gguf")
	if err := os.WriteFile(mine, []byte("my notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.gguf")
	data, _ := os.ReadFile(filepath.Join(ref, "model.gguf"))
	if err := os.WriteFile(foreign, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{mine, foreign} {
		before, _ := os.ReadFile(p)
		err := Convert(ConvertOptions{Model: ref, Tokenizer: tokDir, Format: FormatGGUF, Out: p})
		if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
			t.Errorf("%s: err %v, want a refusal", p, err)
		}
		after, _ := os.ReadFile(p)
		if !bytes.Equal(before, after) {
			t.Errorf("%s was changed", p)
		}
	}
	out := filepath.Join(dir, "herd.gguf")
	for range 2 {
		if err := Convert(ConvertOptions{Model: ref, Tokenizer: tokDir, Format: FormatGGUF, Out: out}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Convert(ConvertOptions{Model: ref, Tokenizer: tokDir, Format: FormatHF, Out: filepath.Join(dir, "x"), Type: Q8_0}); err == nil {
		t.Error("hf with q8_0 accepted")
	}
}

// TestTokenizerRoundTrip: a trained herd tokenizer written into a GGUF
// and read back encodes, decodes and names its special tokens as before.
func TestTokenizerRoundTrip(t *testing.T) {
	tok := trainTokenizer(t, 700)
	cfg := model.Config{VocabSize: tok.VocabSize() + 5, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 1,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, MaxPositionEmbeddings: 64, TieWordEmbeddings: true}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 1)
	var buf bytes.Buffer
	if err := Write(&buf, cfg, p, tok, Options{Type: Q8_0}); err != nil {
		t.Fatal(err)
	}
	m, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), true)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Tokenizer
	if got.VocabSize() != tok.VocabSize() || got.NumBPE() != tok.NumBPE() || !reflect.DeepEqual(got.Specials(), tok.Specials()) {
		t.Fatalf("vocabulary %d/%d tokens, want %d/%d", got.VocabSize(), got.NumBPE(), tok.VocabSize(), tok.NumBPE())
	}
	if got.Config().BOS != tok.Config().BOS || got.Config().EOS != tok.Config().EOS || got.Config().AddBOS != tok.Config().AddBOS {
		t.Fatalf("config %+v, want %+v", got.Config(), tok.Config())
	}
	for _, text := range []string{"The quick brown fox, 1234 times.\n\n  indented", "naïve café — ünïcödé 😀", "<|eot_id|> is text here"} {
		if a, b := got.Encode([]byte(text)), tok.Encode([]byte(text)); !slices.Equal(a, b) {
			t.Errorf("%q: %v, want %v", text, a, b)
		}
	}
	if m.Config.VocabSize != cfg.VocabSize {
		t.Errorf("vocab_size %d, want %d (padding tokens)", m.Config.VocabSize, cfg.VocabSize)
	}
	// The Hugging Face files written from either are the same.
	tj1, cj1, err1 := tok.MarshalHF()
	tj2, cj2, err2 := got.MarshalHF()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !bytes.Equal(tj1, tj2) || !bytes.Equal(cj1, cj2) {
		t.Errorf("tokenizer files differ after the round trip:\n%s\n%s", clip(cj1), clip(cj2))
	}
}

// trainTokenizer trains a byte-level BPE tokenizer on a slice of the
// reference English corpus (or a built-in text when absent).
func trainTokenizer(t testing.TB, vocab int) *tokenizer.Tokenizer {
	t.Helper()
	return traintest.Tokenizer(t, corpusText(t, 200_000), vocab)
}

// TestMetadataTypes: every metadata value type the writer takes reads back
// with its GGUF type and value; unsupported Go types and repeated keys are
// refused.
func TestMetadataTypes(t *testing.T) {
	kvs := []metaKV{{"u8", uint8(7)}, {"i8", int8(-7)}, {"u16", uint16(700)}, {"i16", int16(-700)}, {"u32", uint32(7e6)},
		{"i32", int32(-7e6)}, {"f32", float32(1.5)}, {"b", true}, {"s", "héllo"}, {"u64", uint64(1) << 40}, {"i64", int64(-1) << 40},
		{"f64", 2.25}, {"ss", []string{"a", "", "Ġthe"}}, {"ai32", []int32{1, -2, 3}}, {"af32", []float32{0.5}}, {"ab", []bool{true, false}},
		{"empty", []uint64{}}}
	var buf bytes.Buffer
	gw, err := newFileWriter(&buf, kvs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%ggufAlignment != 0 {
		t.Errorf("file of %d bytes is not padded to %d", buf.Len(), ggufAlignment)
	}
	hd, err := readHeader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		v := hd.kv[kv.Key]
		want, _ := valueType(kv.Value)
		if v == nil || v.typ != want {
			t.Fatalf("%s: read %+v, want type %d", kv.Key, v, want)
		}
		switch x := kv.Value.(type) {
		case []string:
			if !slices.Equal(v.v.([]string), x) {
				t.Errorf("%s: %v", kv.Key, v.v)
			}
		case []int32:
			got, _ := hd.ints(kv.Key)
			if len(got) != 3 || got[1] != -2 {
				t.Errorf("%s: %v", kv.Key, got)
			}
		case []float32, []bool, []uint64:
			_, n, b := arrayBytes(x)
			if !bytes.Equal(v.v.([]byte), b) || v.n != uint64(n) {
				t.Errorf("%s: %v", kv.Key, v.v)
			}
		default:
			if v.v != kv.Value {
				t.Errorf("%s: %v (%T), want %v", kv.Key, v.v, v.v, kv.Value)
			}
		}
	}
	for _, bad := range [][]metaKV{{{"x", 3}}, {{"x", []any{1}}}, {{"x", uint8(1)}, {"x", uint8(2)}}, {{"x", [][]int32{{1}}}}} {
		if _, err := newFileWriter(io.Discard, bad, nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestChunked exports and reads a model whose matrices span several
// chunks (q: 1536 rows of 1536, chunks of 682 rows that cut heads of 128
// rows): q's stored rows are the HF rows permuted per head (checked
// against the permutation written out here), and F32 reads back exactly.
func TestChunked(t *testing.T) {
	tok := trainTokenizer(t, 530)
	cfg := model.Config{VocabSize: tok.VocabSize(), HiddenSize: 1536, IntermediateSize: 64, NumHiddenLayers: 1,
		NumAttentionHeads: 12, NumKeyValueHeads: 4, MaxPositionEmbeddings: 64, TieWordEmbeddings: true}
	cfg.Normalize()
	p := model.NewParams(model.NewLayout(cfg))
	p.Init(cfg, 9)
	var buf bytes.Buffer
	if err := Write(&buf, cfg, p, tok, Options{Type: F32}); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	hd, err := readHeader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"q_proj", "k_proj"} {
		w := p.Get("model.layers.0.self_attn." + name + ".weight")
		ti := hd.tensors[hd.byName["blk.0.attn_"+name[:1]+".weight"]]
		heads := cfg.NumAttentionHeads
		if name == "k_proj" {
			heads = cfg.NumKeyValueHeads
		}
		C, hdim := cfg.HiddenSize, cfg.HeadDim
		stored := data[hd.dataStart+int64(ti.Offset):]
		for h := range heads {
			for i := range hdim / 2 {
				for half := range 2 {
					g := h*hdim + 2*i + half      // GGUF row
					f := h*hdim + half*hdim/2 + i // HF row
					got := stored[4*g*C : 4*(g+1)*C]
					if !bytes.Equal(got, f32bytes(nil, w[f*C:(f+1)*C])) {
						t.Fatalf("%s: GGUF row %d is not HF row %d", name, g, f)
					}
				}
			}
		}
	}
	m, err := Read(bytes.NewReader(data), int64(len(data)), true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Params.Data, p.Data) {
		t.Fatal("weights differ after the round trip")
	}
}
