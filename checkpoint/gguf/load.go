package gguf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
)

// Model is a GGUF file read into herd.
type Model struct {
	Config    model.Config
	Params    *model.Params // nil when only the header was read
	Tokenizer *tokenizer.Tokenizer
	Name      string // general.name
	// Types is the file's type of each tensor of Params, by herd's
	// (Hugging Face) name; nil when only the header was read.
	Types map[string]Type
}

// Load reads a Llama GGUF file (tensors F32, F16, BF16 or Q8_0) into
// herd's configuration, parameters (q and k rows permuted back to Hugging
// Face's rotate-half layout, a missing output.weight read as a tied head)
// and tokenizer. Every problem is an error naming the file and what is
// wrong; no count or size read from the file allocates more than the file
// could hold.
func Load(path string) (*Model, error) {
	return open(path, true)
}

// LoadTokenizer reads only the configuration and tokenizer of a GGUF
// file (Params is nil).
func LoadTokenizer(path string) (*Model, error) {
	return open(path, false)
}

func open(path string, weights bool) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load GGUF: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load GGUF: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("load GGUF %s: not a regular file", path)
	}
	m, err := Read(f, st.Size(), weights)
	if err != nil {
		return nil, fmt.Errorf("load GGUF %s: %w", path, err)
	}
	return m, nil
}

// Read reads a GGUF file of the given size from r; with weights false only
// the configuration and tokenizer.
func Read(r io.ReaderAt, size int64, weights bool) (*Model, error) {
	hd, err := readHeader(r, size)
	if err != nil {
		return nil, err
	}
	cfg, err := hd.config(r)
	if err != nil {
		return nil, err
	}
	tok, err := hd.tokenizer(cfg)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Tokenizer: tok}
	m.Name, _ = hd.str("general.name")
	if !weights {
		return m, nil
	}
	if m.Params, m.Types, err = hd.params(r, cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// config builds herd's configuration from the llama.* keys.
func (hd *header) config(r io.ReaderAt) (model.Config, error) {
	arch, err := hd.str("general.architecture")
	if err != nil {
		return model.Config{}, err
	}
	if arch != "llama" {
		return model.Config{}, fmt.Errorf("general.architecture is %q; herd runs only \"llama\" models", arch)
	}
	var errs []error
	// Keys of llama-architecture variants herd does not implement: refuse
	// them rather than run a different model.
	if st, err := hd.str("llama.rope.scaling.type"); err == nil && st != "none" {
		errs = append(errs, fmt.Errorf("llama.rope.scaling.type is %q; herd implements only Llama 3.1's llama3 scaling (rope_freqs.weight)", st))
	}
	if n, err := hd.uint("llama.expert_count"); err == nil && n > 0 {
		errs = append(errs, fmt.Errorf("llama.expert_count is %d; herd's Llama has no mixture of experts", n))
	}
	get := func(key string, def int) int {
		v, err := hd.uint("llama." + key)
		switch {
		case errors.Is(err, errMissing) && def >= 0:
			return def
		case err != nil:
			errs = append(errs, err)
			return 0
		case v > 1<<24:
			errs = append(errs, fmt.Errorf("llama.%s = %d is beyond herd's limit %d", key, v, 1<<24))
			return 0
		}
		return int(v)
	}
	getf := func(key string, def float64) float64 {
		v, err := hd.float("llama." + key)
		if errors.Is(err, errMissing) && def > 0 {
			return def
		}
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	var c model.Config
	c.NumHiddenLayers = get("block_count", -1)
	c.MaxPositionEmbeddings = get("context_length", -1)
	c.HiddenSize = get("embedding_length", -1)
	c.IntermediateSize = get("feed_forward_length", -1)
	c.NumAttentionHeads = get("attention.head_count", -1)
	c.NumKeyValueHeads = get("attention.head_count_kv", c.NumAttentionHeads)
	c.RMSNormEps = getf("attention.layer_norm_rms_epsilon", -1)
	c.RopeTheta = getf("rope.freq_base", 10000)
	hdDefault := 0
	if c.NumAttentionHeads > 0 {
		hdDefault = c.HiddenSize / c.NumAttentionHeads
	}
	c.HeadDim = get("attention.key_length", hdDefault)
	if v := get("attention.value_length", c.HeadDim); v != c.HeadDim {
		errs = append(errs, fmt.Errorf("llama.attention.value_length %d differs from key_length %d; herd's Llama has one head size", v, c.HeadDim))
	}
	if v := get("rope.dimension_count", c.HeadDim); v != c.HeadDim {
		errs = append(errs, fmt.Errorf("llama.rope.dimension_count %d differs from the head size %d; herd rotates whole heads", v, c.HeadDim))
	}
	tokens, err := hd.strings("tokenizer.ggml.tokens")
	if err != nil {
		errs = append(errs, err)
	}
	c.VocabSize = get("vocab_size", len(tokens))
	if len(errs) > 0 {
		return model.Config{}, errors.Join(errs...)
	}
	// Every layer has 9 tensors: a block count the tensor list cannot hold
	// is refused before any layout is built for it.
	if c.NumHiddenLayers*9+2 > len(hd.tensors) {
		return model.Config{}, fmt.Errorf("llama.block_count is %d but the file has only %d tensors", c.NumHiddenLayers, len(hd.tensors))
	}
	_, hasOutput := hd.byName["output.weight"]
	c.TieWordEmbeddings = !hasOutput
	if id, err := hd.uint("tokenizer.ggml.bos_token_id"); err == nil && id < uint64(c.VocabSize) {
		b := int(id)
		c.BOSTokenID = &b
	}
	if id, err := hd.uint("tokenizer.ggml.eos_token_id"); err == nil && id < uint64(c.VocabSize) {
		c.EOSTokenID = int(id)
	}
	if _, ok := hd.byName[ropeFreqsName]; ok {
		// The parameters come from herd's config or inferRopeScaling.
		c.RopeScaling = &model.RopeScaling{RopeType: "llama3"}
	}
	c.Normalize()
	if hf, err := hd.str(herdKey); err == nil {
		hc, err := model.ParseConfig([]byte(hf))
		if err != nil {
			return model.Config{}, fmt.Errorf("%s: %w", herdKey, err)
		}
		if err := sameArchitecture(c, hc); err != nil {
			return model.Config{}, fmt.Errorf("the llama.* keys and %s disagree (the file was edited?): %w", herdKey, err)
		}
		c = hc
	}
	if c.RopeScaling != nil && c.RopeScaling.RopeType == "llama3" && c.RopeScaling.Factor == 0 {
		rs, err := hd.inferRopeScaling(r, c)
		if err != nil {
			return model.Config{}, err
		}
		c.RopeScaling = rs
	}
	if err := c.Validate(); err != nil {
		return model.Config{}, fmt.Errorf("invalid model configuration: %w", err)
	}
	return c, nil
}

// sameArchitecture reports the first field in which the configurations
// differ in a way that changes the model.
func sameArchitecture(a, b model.Config) error {
	type arch struct {
		V, C, F, L, H, KV, HD, Ctx int
		Tie                        bool
		Eps, Theta                 float32
	}
	key := func(c model.Config) arch {
		return arch{c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads,
			c.HeadDim, c.MaxPositionEmbeddings, c.TieWordEmbeddings, float32(c.RMSNormEps), float32(c.RopeTheta)}
	}
	if ka, kb := key(a), key(b); ka != kb {
		return fmt.Errorf("GGUF keys give %+v, config.json %+v", ka, kb)
	}
	if (a.RopeScaling != nil) != (b.RopeScaling != nil && b.RopeScaling.RopeType == "llama3") {
		return errors.New("rope_freqs.weight and the RoPE scaling of config.json disagree")
	}
	return nil
}

// inferRopeScaling recovers Llama 3.1 RoPE scaling parameters from
// rope_freqs.weight of a file without herd's config: Meta's low/high
// frequency factors 1 and 4, the largest divisor as the factor, and the
// original context from llama.rope.scaling.original_context_length or
// Meta's 8192. The tensor must be what those parameters give.
func (hd *header) inferRopeScaling(r io.ReaderAt, c model.Config) (*model.RopeScaling, error) {
	ti := hd.tensors[hd.byName[ropeFreqsName]]
	if len(ti.Dims) != 1 || ti.Dims[0] != uint64(c.HeadDim/2) {
		return nil, fmt.Errorf("%s has dims %v, head_dim %d needs [%d]", ropeFreqsName, ti.Dims, c.HeadDim, c.HeadDim/2)
	}
	fr := make([]float32, c.HeadDim/2)
	if err := readTensor(r, hd, ti, fr, 1, 0); err != nil {
		return nil, err
	}
	// Candidates for the original context: the key (or Meta's 8192), then
	// the value each interpolated divisor implies (1/d = (1-s)/factor + s
	// with s = (orig/wavelen - 1)/3).
	factor := float64(slices.Max(fr))
	var origs []int
	if v, err := hd.uint("llama.rope.scaling.original_context_length"); err == nil && v > 0 && v <= 1<<24 {
		origs = append(origs, int(v))
	} else {
		origs = append(origs, 8192)
	}
	inv := model.InvFreq(model.Config{HeadDim: c.HeadDim, RopeTheta: c.RopeTheta})
	for i, d := range fr {
		if d > 1 && float64(d) < factor {
			s := (1/float64(d) - 1/factor) / (1 - 1/factor)
			origs = append(origs, int(math.Round(2*math.Pi/inv[i]*(1+3*s))))
		}
	}
	var err error
	for _, orig := range origs {
		rs := &model.RopeScaling{RopeType: "llama3", Factor: factor, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: orig}
		c.RopeScaling = rs
		if err = c.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", ropeFreqsName, err)
		}
		if err = checkRopeFactors(c, fr); err == nil {
			return rs, nil
		}
	}
	return nil, fmt.Errorf("herd represents RoPE scaling by Hugging Face's llama3 parameters (low_freq_factor 1, high_freq_factor 4 assumed) and found none that give %s: %w", ropeFreqsName, err)
}

// tokenizer builds herd's tokenizer from the tokenizer.ggml.* keys by
// writing the equivalent Hugging Face tokenizer.json.
func (hd *header) tokenizer(cfg model.Config) (*tokenizer.Tokenizer, error) {
	mdl, err := hd.str("tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	if mdl != "gpt2" {
		return nil, fmt.Errorf("tokenizer.ggml.model is %q; herd's tokenizer is byte-level BPE (\"gpt2\")", mdl)
	}
	pre, err := hd.str("tokenizer.ggml.pre")
	if err != nil && !errors.Is(err, errMissing) {
		return nil, err
	}
	if pre != "llama-bpe" && pre != "llama3" && pre != "llama-v3" {
		return nil, fmt.Errorf("tokenizer.ggml.pre is %q; herd implements only the Llama 3 pre-tokenizer (\"llama-bpe\")", pre)
	}
	tokens, err := hd.strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	if len(tokens) != cfg.VocabSize {
		return nil, fmt.Errorf("tokenizer.ggml.tokens has %d tokens, llama.vocab_size is %d", len(tokens), cfg.VocabSize)
	}
	types, err := hd.ints("tokenizer.ggml.token_type")
	if errors.Is(err, errMissing) {
		types = make([]int64, len(tokens))
		for i := range types {
			types[i] = int64(tokNormal)
		}
	} else if err != nil {
		return nil, err
	}
	if len(types) != len(tokens) {
		return nil, fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens", len(types), len(tokens))
	}
	merges, err := hd.strings("tokenizer.ggml.merges")
	if err != nil {
		return nil, err
	}
	// The BPE vocabulary comes first, then special tokens, then unused
	// padding ids (which herd's tokenizer leaves out).
	nBPE, nTok := len(tokens), len(tokens)
	for i, t := range types {
		switch int32(t) {
		case tokNormal, tokByte:
			if nBPE < i {
				return nil, fmt.Errorf("token %d (%q) is a normal token after the special token %d (%q); herd needs the special tokens after the BPE vocabulary", i, tokens[i], nBPE, tokens[nBPE])
			}
		case tokControl, tokUserDefined:
			nBPE = min(nBPE, i)
			if nTok < i {
				return nil, fmt.Errorf("token %d (%q) follows the unused padding token %d; herd needs padding at the end", i, tokens[i], nTok)
			}
		case tokUnused:
			nBPE, nTok = min(nBPE, i), min(nTok, i)
		default:
			return nil, fmt.Errorf("token %d (%q) has token type %d; herd reads normal (1), control (3), user-defined (4), unused (5) and byte (6) tokens", i, tokens[i], t)
		}
	}
	addBOS := true // llama.cpp's default for the Llama 3 pre-tokenizer
	if v, ok := hd.kv["tokenizer.ggml.add_bos_token"]; ok {
		b, ok := v.v.(bool)
		if !ok {
			return nil, errors.New("tokenizer.ggml.add_bos_token must be a bool")
		}
		addBOS = b
	}
	special := func(key string) string {
		id, err := hd.uint(key)
		if err != nil || id < uint64(nBPE) || id >= uint64(nTok) {
			return ""
		}
		return tokens[id]
	}
	bos, eos := special("tokenizer.ggml.bos_token_id"), special("tokenizer.ggml.eos_token_id")
	tmpl, _ := hd.str("tokenizer.chat_template")
	if tmpl == chatTemplate {
		tmpl = "" // herd's stand-in for a tokenizer without a template
	}

	var tj bytes.Buffer
	enc := json.NewEncoder(&tj)
	enc.SetEscapeHTML(false)
	str := func(s string) {
		enc.Encode(s) // a string always encodes
		tj.Truncate(tj.Len() - 1)
	}
	tj.WriteString(`{"added_tokens": [`)
	for id := nBPE; id < nTok; id++ {
		if id > nBPE {
			tj.WriteByte(',')
		}
		fmt.Fprintf(&tj, `{"id": %d, "content": `, id)
		str(tokens[id])
		tj.WriteString(`, "special": true}`)
	}
	tj.WriteString(`], "normalizer": null, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": `)
	str(tokenizer.Pattern)
	tj.WriteString(`}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}, "post_processor": `)
	if addBOS && bos != "" {
		tj.WriteString(`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": `)
		str(bos)
		tj.WriteString(`}}, {"Sequence": {"id": "A"}}]}`)
	} else {
		tj.WriteString(`{"type": "ByteLevel"}`)
	}
	// llama.cpp looks a whole pre-token up before merging for the Llama 3
	// pre-tokenizer (ignore_merges), as Hugging Face's Llama 3 file does.
	tj.WriteString(`, "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "ignore_merges": true, "vocab": {`)
	for id := range nBPE {
		if id > 0 {
			tj.WriteByte(',')
		}
		str(tokens[id])
		fmt.Fprintf(&tj, ":%d", id)
	}
	tj.WriteString(`}, "merges": [`)
	for i, m := range merges {
		if i > 0 {
			tj.WriteByte(',')
		}
		str(m)
	}
	tj.WriteString("]}}")

	tc := map[string]any{"clean_up_tokenization_spaces": false}
	if bos != "" {
		tc["bos_token"] = bos
	}
	if eos != "" {
		tc["eos_token"] = eos
	}
	if tmpl != "" {
		tc["chat_template"] = tmpl
	}
	cj, err := json.Marshal(tc)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.ParseHF(tj.Bytes(), cj)
	if err != nil {
		return nil, fmt.Errorf("the tokenizer.ggml.* vocabulary is not one herd can use: %s", strings.TrimPrefix(err.Error(), tokenizer.TokenizerFile+": "))
	}
	return tok, nil
}

// params reads the tensors into herd's layout.
func (hd *header) params(r io.ReaderAt, cfg model.Config) (*model.Params, map[string]Type, error) {
	layout := model.NewLayout(cfg)
	var problems []string
	used := map[string]bool{}
	for _, t := range layout.Tensors {
		name := ggufName(t.Name)
		i, ok := hd.byName[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing tensor %s (%s)", name, t.Name))
			continue
		}
		used[name] = true
		ti := hd.tensors[i]
		want := make([]uint64, len(t.Shape))
		for k, d := range t.Shape {
			want[len(want)-1-k] = uint64(d)
		}
		if !slices.Equal(ti.Dims, want) {
			problems = append(problems, fmt.Sprintf("tensor %s has dims %v, the configuration needs %v", name, ti.Dims, want))
		}
	}
	for _, t := range hd.tensors {
		if !used[t.Name] && t.Name != ropeFreqsName {
			problems = append(problems, fmt.Sprintf("unexpected tensor %s (herd's Llama has no such parameter)", t.Name))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		return nil, nil, fmt.Errorf("the tensors do not match the llama.* configuration (%d problems):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	// Every tensor the layout needs is in the file with its dims, so the
	// allocation below is bounded by the file's size.
	p := model.NewParams(layout)
	types := make(map[string]Type, len(layout.Tensors))
	for _, t := range layout.Tensors {
		ti := hd.tensors[hd.byName[ggufName(t.Name)]]
		types[t.Name] = ti.Type
		rows := 1
		if len(t.Shape) > 1 {
			rows = t.Shape[0]
		}
		if err := readTensor(r, hd, ti, p.Get(t.Name), rows, ropeHeads(cfg, t.Name)); err != nil {
			return nil, nil, err
		}
	}
	if i, ok := hd.byName[ropeFreqsName]; ok {
		ti := hd.tensors[i]
		if len(ti.Dims) != 1 || ti.Dims[0] != uint64(cfg.HeadDim/2) {
			return nil, nil, fmt.Errorf("%s has dims %v, head_dim %d needs [%d]", ropeFreqsName, ti.Dims, cfg.HeadDim, cfg.HeadDim/2)
		}
		fr := make([]float32, cfg.HeadDim/2)
		if err := readTensor(r, hd, ti, fr, 1, 0); err != nil {
			return nil, nil, err
		}
		if err := checkRopeFactors(cfg, fr); err != nil {
			return nil, nil, err
		}
	}
	return p, types, nil
}
