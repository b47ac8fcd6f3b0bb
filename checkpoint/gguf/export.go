package gguf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/model"
)

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	tokNormal      int32 = 1
	tokControl     int32 = 3
	tokUserDefined int32 = 4
	tokUnused      int32 = 5
	tokByte        int32 = 6
)

// herdKey marks a GGUF file written by herd, so that a later export may
// replace it; its value is the Hugging Face config.json the file was made
// from, which Load uses for what GGUF has no key for (the llama3 RoPE
// scaling parameters, config.json keys herd keeps but does not interpret).
const herdKey = "herd.hf_config"

// Options controls Export.
type Options struct {
	// Type of the weight matrices: F32 (default), F16, BF16 or Q8_0. Norm
	// weights and rope_freqs stay F32; with Q8_0 a matrix whose rows do
	// not split into 32-value blocks is stored as F16, as llama.cpp's
	// converter does.
	Type Type
	// Name is general.name ("" = "herd").
	Name string
}

// Export writes cfg and p with the tokenizer tok as a GGUF file at path,
// atomically. An existing path is replaced only when it is a GGUF file
// herd wrote; anything else there is an error.
func Export(path string, cfg model.Config, p *model.Params, tok *tokenizer.Tokenizer, opt Options) error {
	if err := checkOutput(path); err != nil {
		return err
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := Write(f, cfg, p, tok, opt); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	return f.Commit()
}

// checkOutput reports whether a GGUF file may be written at path: it does
// not exist, or it is a GGUF file herd wrote (it carries herd's marker
// key). Tools call it before long work.
func checkOutput(path string) error {
	if err := atomicfile.Check(path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h, err := readHeader(f, st.Size())
	if err != nil || h.kv[herdKey] == nil {
		return fmt.Errorf("%s exists and is not a GGUF file herd wrote; refusing to overwrite it (choose another output path, or remove it yourself)", path)
	}
	return nil
}

// chunkValues is about how many values an export encodes, or a load
// reads, at a time.
const chunkValues = 1 << 20

// plannedTensor is one tensor of an export: its GGUF info and where its
// values come from.
type plannedTensor struct {
	info  tensorInfo
	hf    string    // herd tensor name, "" for rope_freqs
	data  []float32 // rope_freqs values
	heads int       // RoPE permutation heads (0: none)
	rows  int
}

// Write streams cfg and p with the tokenizer tok as a GGUF file to w.
func Write(w io.Writer, cfg model.Config, p *model.Params, tok *tokenizer.Tokenizer, opt Options) error {
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid model configuration: %w", err)
	}
	if cfg.HasScoreHead() {
		return errors.New("a sequence classifier (reward model) has no GGUF layout: llama.cpp runs language models only")
	}
	if p == nil || p.Layout == nil || len(p.Data) != model.NewLayout(cfg).Total {
		return errors.New("the parameters do not match the configuration")
	}
	if tok == nil {
		return errors.New("a GGUF file needs the tokenizer (llama.cpp refuses a model without one)")
	}
	if tok.VocabSize() > cfg.VocabSize {
		return fmt.Errorf("the tokenizer has %d tokens but the model's vocab_size is %d", tok.VocabSize(), cfg.VocabSize)
	}
	typ := opt.Type
	if !typ.known() {
		return fmt.Errorf("%v is not a type herd writes (use F32, F16, BF16 or Q8_0)", typ)
	}
	var plan []plannedTensor
	if cfg.RopeScaling != nil && cfg.RopeScaling.RopeType == "llama3" {
		fr := ropeFactors(cfg)
		plan = append(plan, plannedTensor{info: tensorInfo{Name: ropeFreqsName, Dims: []uint64{uint64(len(fr))}, Type: F32}, data: fr})
	}
	for _, t := range p.Layout.Tensors {
		name := ggufName(t.Name)
		if name == "" {
			return fmt.Errorf("tensor %s has no llama.cpp name", t.Name)
		}
		dims := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			dims[len(dims)-1-i] = uint64(d)
		}
		tt := F32
		if len(t.Shape) > 1 {
			tt = typ
			if tt == Q8_0 && t.Shape[len(t.Shape)-1]%qk8 != 0 {
				tt = F16
			}
		}
		rows := 1
		if len(t.Shape) > 1 {
			rows = t.Shape[0]
		}
		plan = append(plan, plannedTensor{info: tensorInfo{Name: name, Dims: dims, Type: tt}, hf: t.Name,
			heads: ropeHeads(cfg, t.Name), rows: rows})
	}
	infos := make([]tensorInfo, len(plan))
	for i, pt := range plan {
		infos[i] = pt.info
	}
	kvs, err := metadata(cfg, tok, opt, typ)
	if err != nil {
		return err
	}
	gw, err := newFileWriter(w, kvs, infos)
	if err != nil {
		return err
	}
	var buf []byte
	for _, pt := range plan {
		x := pt.data
		if pt.hf != "" {
			x = p.Get(pt.hf)
		}
		if err := gw.BeginTensor(pt.info.Name); err != nil {
			return err
		}
		// Rows are encoded in chunks of about chunkValues values (rows hold
		// whole Q8_0 blocks), in GGUF row order.
		rows := max(pt.rows, 1)
		cols := len(x) / rows
		per := max(chunkValues/max(cols, 1), 1)
		for r0 := 0; r0 < rows; r0 += per {
			buf = buf[:0]
			for r := r0; r < min(r0+per, rows); r++ {
				src := hfRow(r, rows, pt.heads) * cols
				buf = encode(buf, x[src:src+cols], pt.info.Type)
			}
			if _, err := gw.Write(buf); err != nil {
				return err
			}
		}
	}
	return gw.Close()
}

// metadata is the key/value list of an export, in the order llama.cpp's
// converter writes it.
func metadata(cfg model.Config, tok *tokenizer.Tokenizer, opt Options, typ Type) ([]metaKV, error) {
	name := opt.Name
	if name == "" {
		name = "herd"
	}
	u := func(v int) uint32 { return uint32(v) }
	kvs := []metaKV{
		{"general.architecture", "llama"},
		{"general.type", "model"},
		{"general.name", name},
		{"llama.block_count", u(cfg.NumHiddenLayers)},
		{"llama.context_length", u(cfg.MaxPositionEmbeddings)},
		{"llama.embedding_length", u(cfg.HiddenSize)},
		{"llama.feed_forward_length", u(cfg.IntermediateSize)},
		{"llama.attention.head_count", u(cfg.NumAttentionHeads)},
		{"llama.attention.head_count_kv", u(cfg.NumKeyValueHeads)},
		{"llama.rope.freq_base", float32(cfg.RopeTheta)},
		{"llama.attention.layer_norm_rms_epsilon", float32(cfg.RMSNormEps)},
		{"llama.attention.key_length", u(cfg.HeadDim)},
		{"llama.attention.value_length", u(cfg.HeadDim)},
		{"general.file_type", typ.fileType()},
		{"llama.vocab_size", u(cfg.VocabSize)},
		{"llama.rope.dimension_count", u(cfg.HeadDim)},
	}
	tk, err := tokenizerKVs(cfg, tok)
	if err != nil {
		return nil, err
	}
	kvs = append(kvs, tk...)
	kvs = append(kvs, metaKV{"general.quantization_version", uint32(2)})
	hf, err := cfg.MarshalIndent()
	if err != nil {
		return nil, err
	}
	return append(kvs, metaKV{herdKey, string(bytes.TrimSpace(hf))}), nil
}

// tokenizerKVs are the tokenizer.ggml.* keys of tok for a model of
// cfg.VocabSize tokens: ids the tokenizer lacks are "[PADn]" tokens of
// type unused, as llama.cpp's converter writes them.
func tokenizerKVs(cfg model.Config, tok *tokenizer.Tokenizer) ([]metaKV, error) {
	V := cfg.VocabSize
	tokens := make([]string, V)
	types := make([]int32, V)
	for id := range V {
		switch {
		case id >= tok.VocabSize():
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokUnused
		case tok.IsSpecial(int32(id)):
			tokens[id], types[id] = tok.HFToken(int32(id)), tokControl
		default:
			tokens[id], types[id] = tok.HFToken(int32(id)), tokNormal
		}
	}
	merges := make([]string, len(tok.Merges()))
	for i, m := range tok.Merges() {
		merges[i] = tok.HFToken(m.Left) + " " + tok.HFToken(m.Right)
	}
	kvs := []metaKV{
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", "llama-bpe"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", merges},
	}
	tc := tok.Config()
	bos, ok := tok.SpecialID(tc.BOS)
	if !ok && cfg.BOSTokenID != nil {
		bos, ok = int32(*cfg.BOSTokenID), true
	}
	if ok {
		kvs = append(kvs, metaKV{"tokenizer.ggml.bos_token_id", uint32(bos)})
	}
	eos, ok := tok.SpecialID(tc.EOS)
	if !ok {
		if ids := configIDs(cfg.EOSTokenID); len(ids) > 0 {
			eos, ok = ids[0], true
		}
	}
	if ok {
		kvs = append(kvs, metaKV{"tokenizer.ggml.eos_token_id", uint32(eos)})
	}
	if id, ok := tok.SpecialID(tokenizer.EOT); ok {
		kvs = append(kvs, metaKV{"tokenizer.ggml.eot_token_id", uint32(id)})
	}
	if id, ok := tok.SpecialID(tokenizer.EOM); ok {
		kvs = append(kvs, metaKV{"tokenizer.ggml.eom_token_id", uint32(id)})
	}
	kvs = append(kvs, metaKV{"tokenizer.ggml.add_bos_token", tc.AddBOS})
	kvs = append(kvs, metaKV{"tokenizer.chat_template", cmpOr(tc.ChatTemplate, chatTemplate)})
	return kvs, nil
}

// configIDs reads a config.json token id field: a number or a list.
func configIDs(v any) []int32 {
	switch x := v.(type) {
	case float64:
		return []int32{int32(x)}
	case int:
		return []int32{int32(x)}
	case []any:
		var out []int32
		for _, e := range x {
			out = append(out, configIDs(e)...)
		}
		return out
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return []int32{int32(n)}
		}
	}
	return nil
}
