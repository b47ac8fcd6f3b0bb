package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/herdml/herd/internal/atomicfile"
)

// WriteHF writes tokenizer.json and tokenizer_config.json into dir
// (created if missing), each atomically. Hugging Face tokenizers (Rust,
// Python, transformers.js) load them and encode like this Tokenizer; note
// that they recognise special-token texts in any input, as EncodeSpecial
// does.
func (t *Tokenizer) WriteHF(dir string) error {
	tj, cj, err := t.MarshalHF()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write tokenizer: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, TokenizerFile), tj, 0o644); err != nil {
		return fmt.Errorf("write tokenizer: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), cj, 0o644); err != nil {
		return fmt.Errorf("write tokenizer: %w", err)
	}
	return nil
}

// jsonWriter accumulates JSON text; strings are written without HTML
// escaping, as Hugging Face's own files are.
type jsonWriter struct {
	bytes.Buffer
	enc *json.Encoder
	tmp bytes.Buffer
}

func newJSONWriter() *jsonWriter {
	w := &jsonWriter{}
	w.enc = json.NewEncoder(&w.tmp)
	w.enc.SetEscapeHTML(false)
	return w
}

// str writes s as a JSON string.
func (w *jsonWriter) str(s string) {
	w.tmp.Reset()
	w.enc.Encode(s) // a string always encodes
	w.Write(bytes.TrimSuffix(w.tmp.Bytes(), []byte("\n")))
}

// addedToken writes the Hugging Face AddedToken object of a special token.
func (w *jsonWriter) addedToken(content string, id int, withID bool) {
	w.WriteString("{")
	if withID {
		fmt.Fprintf(w, `"id": %d, `, id)
	}
	w.WriteString(`"content": `)
	w.str(content)
	w.WriteString(`, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}`)
}

// addedTokens writes the special tokens, one per line: as a list of
// AddedToken objects with ids (tokenizer.json) or, keyed, as an object from
// id to AddedToken (tokenizer_config.json's added_tokens_decoder).
func (w *jsonWriter) addedTokens(t *Tokenizer, keyed bool) {
	first := true
	for id, sp := range t.special {
		if !sp {
			continue
		}
		if !first {
			w.WriteString(",")
		}
		first = false
		w.WriteString("\n    ")
		if keyed {
			fmt.Fprintf(w, "\"%d\": ", id)
		}
		w.addedToken(string(t.tokens[id]), id, !keyed)
	}
}

// MarshalHF returns the contents of tokenizer.json and
// tokenizer_config.json.
func (t *Tokenizer) MarshalHF() (tokenizerJSON, configJSON []byte, err error) {
	w := newJSONWriter()
	w.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	w.addedTokens(t, false)
	w.WriteString("\n  ],\n  \"normalizer\": null,\n")
	w.WriteString(`  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": `)
	w.str(Pattern)
	w.WriteString(`}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},` + "\n")
	byteLevelPost := `{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}`
	if t.cfg.AddBOS && t.cfg.BOS != "" {
		bosID, ok := t.SpecialID(t.cfg.BOS)
		if !ok {
			return nil, nil, fmt.Errorf("write tokenizer: BOS %q is not a special token", t.cfg.BOS)
		}
		w.WriteString(`  "post_processor": {"type": "Sequence", "processors": [` + byteLevelPost + `, {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": `)
		w.str(t.cfg.BOS)
		w.WriteString(`, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [{"SpecialToken": {"id": `)
		w.str(t.cfg.BOS)
		w.WriteString(`, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": `)
		w.str(t.cfg.BOS)
		w.WriteString(`, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {`)
		w.str(t.cfg.BOS)
		w.WriteString(`: {"id": `)
		w.str(t.cfg.BOS)
		fmt.Fprintf(w, `, "ids": [%d], "tokens": [`, bosID)
		w.str(t.cfg.BOS)
		w.WriteString("]}}}]},\n")
	} else {
		w.WriteString(`  "post_processor": ` + byteLevelPost + ",\n")
	}
	w.WriteString(`  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},` + "\n")
	fmt.Fprintf(w, `  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": %v,`+"\n", t.ignoreMerges)
	w.WriteString("    \"vocab\": {")
	for id := 0; id < t.numBPE; id++ {
		if id > 0 {
			w.WriteString(",")
		}
		w.WriteString("\n      ")
		w.str(byteLevelEncode(t.tokens[id]))
		w.WriteString(": ")
		w.WriteString(strconv.Itoa(id))
	}
	w.WriteString("\n    },\n    \"merges\": [")
	for i, m := range t.merges {
		if i > 0 {
			w.WriteString(",")
		}
		w.WriteString("\n      ")
		w.str(byteLevelEncode(t.tokens[m.Left]) + " " + byteLevelEncode(t.tokens[m.Right]))
	}
	w.WriteString("\n    ]\n  }\n}\n")
	tokenizerJSON = append([]byte(nil), w.Bytes()...)

	w.Reset()
	w.WriteString("{\n  \"added_tokens_decoder\": {")
	w.addedTokens(t, true)
	w.WriteString("\n  },\n")
	if t.cfg.BOS != "" {
		w.WriteString(`  "bos_token": `)
		w.str(t.cfg.BOS)
		w.WriteString(",\n")
	}
	if t.cfg.ChatTemplate != "" {
		w.WriteString(`  "chat_template": `)
		w.str(t.cfg.ChatTemplate)
		w.WriteString(",\n")
	}
	fmt.Fprintf(w, "  \"clean_up_tokenization_spaces\": %v,\n", t.cfg.CleanUpSpaces)
	if t.cfg.EOS != "" {
		w.WriteString(`  "eos_token": `)
		w.str(t.cfg.EOS)
		w.WriteString(",\n")
	}
	w.WriteString(`  "model_input_names": ["input_ids", "attention_mask"],` + "\n")
	if t.cfg.ModelMaxLength > 0 {
		fmt.Fprintf(w, "  \"model_max_length\": %d,\n", t.cfg.ModelMaxLength)
	}
	w.WriteString(`  "tokenizer_class": "PreTrainedTokenizerFast"` + "\n}\n")
	return tokenizerJSON, append([]byte(nil), w.Bytes()...), nil
}
