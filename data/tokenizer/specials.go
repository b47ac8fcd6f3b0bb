package tokenizer

import "fmt"

// Names of the Llama 3.1 special tokens that the chat format uses.
const (
	BeginOfText = "<|begin_of_text|>"
	EndOfText   = "<|end_of_text|>"
	StartHeader = "<|start_header_id|>"
	EndHeader   = "<|end_header_id|>"
	EOM         = "<|eom_id|>"
	EOT         = "<|eot_id|>"
	PythonTag   = "<|python_tag|>"
	FinetunePad = "<|finetune_right_pad_id|>"
)

// NumSpecial is the number of special tokens in the Llama 3 layout.
const NumSpecial = 256

// LlamaSpecials returns the 256 special-token names of Llama 3.1 in id
// order: begin/end of text, reserved 0 and 1, finetune right pad, reserved
// 2, start/end header, eom, eot, python tag, then reserved 3..247. Trained
// vocabularies put them at ids NumBPE..NumBPE+255, so the chat format works
// with any vocabulary.
func LlamaSpecials() []string {
	names := []string{
		BeginOfText, EndOfText,
		"<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
		FinetunePad, "<|reserved_special_token_2|>",
		StartHeader, EndHeader, EOM, EOT, PythonTag,
	}
	for i := 3; len(names) < NumSpecial; i++ {
		names = append(names, fmt.Sprintf("<|reserved_special_token_%d|>", i))
	}
	return names
}
