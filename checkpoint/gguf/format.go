// Package gguf writes and reads GGUF files, the single-file model format of
// llama.cpp, Ollama and LM Studio, for herd's Llama models.
//
// Export lays a model out as llama.cpp's convert_hf_to_gguf.py does for a
// LlamaForCausalLM (build b4747): tensor names token_embd / blk.N.* /
// output_norm / output, dims listed fastest first (the Hugging Face shape
// reversed), q and k rows permuted per head from Hugging Face's rotate-half
// RoPE to llama.cpp's adjacent pairs, a rope_freqs.weight tensor for Llama
// 3.1 "llama3" RoPE scaling, no output.weight when the head is tied, every
// llama.* hyperparameter, and the byte-level BPE tokenizer (tokenizer.ggml.*
// keys). Weights are stored as F32, F16, BF16 or Q8_0; norms stay F32.
//
// Load reads such a file (from herd or another converter, F32/F16/BF16/Q8_0
// tensors) back into herd's model.Config, model.Params and tokenizer, so a
// GGUF model can be run, evaluated and fine-tuned by herd.
//
// No maintained Go library writes GGUF (github.com/gpustack/gguf-parser-go
// only reads it, and pulls in a large dependency tree for remote files), so
// the writer and the reader here are herd's own, written from the GGUF
// specification in ggml's docs/gguf.md; the tests check them against files
// made by llama.cpp's converter and against a real llama.cpp.
package gguf

import (
	"fmt"
)

// ggufMagic is the first four bytes of a GGUF file.
const ggufMagic = "GGUF"

// ggufVersion is the GGUF version herd writes (and the only one it reads).
const ggufVersion = 3

// ggufAlignment is the default general.alignment: the data section and every
// tensor in it start at a multiple of it.
const ggufAlignment = 32

// Type is a ggml tensor type.
type Type uint32

// The ggml tensor types herd writes and reads.
const (
	F32  Type = 0
	F16  Type = 1
	Q8_0 Type = 8
	BF16 Type = 30
)

// String names the type as ggml does.
func (t Type) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case Q8_0:
		return "Q8_0"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// ParseType reads a type name as the -type flag gives it: f32, f16, bf16
// or q8_0 (any case).
func ParseType(s string) (Type, error) {
	switch s {
	case "f32", "F32":
		return F32, nil
	case "f16", "F16":
		return F16, nil
	case "bf16", "BF16":
		return BF16, nil
	case "q8_0", "Q8_0":
		return Q8_0, nil
	}
	return 0, fmt.Errorf("unknown GGUF tensor type %q (use f32, f16, bf16 or q8_0)", s)
}

// blockSize is the number of values in one block of a type (1 for the
// float types), and blockBytes the bytes one block takes.
func (t Type) blockSize() int {
	if t == Q8_0 {
		return qk8
	}
	return 1
}

func (t Type) blockBytes() int {
	switch t {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case Q8_0:
		return 2 + qk8
	}
	return 0
}

// known reports whether herd reads and writes the type.
func (t Type) known() bool { return t.blockBytes() > 0 }

// fileType is general.file_type for a model whose matrices are of type t
// (llama.cpp's LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16).
func (t Type) fileType() uint32 {
	switch t {
	case F16:
		return 1
	case Q8_0:
		return 7
	case BF16:
		return 32
	}
	return 0
}

// Value types of GGUF metadata.
const (
	tUint8   uint32 = 0
	tInt8    uint32 = 1
	tUint16  uint32 = 2
	tInt16   uint32 = 3
	tUint32  uint32 = 4
	tInt32   uint32 = 5
	tFloat32 uint32 = 6
	tBool    uint32 = 7
	tString  uint32 = 8
	tArray   uint32 = 9
	tUint64  uint32 = 10
	tInt64   uint32 = 11
	tFloat64 uint32 = 12
)

// scalarSize is the encoded size of a fixed-size value type, 0 for
// strings and arrays, -1 for an unknown type.
func scalarSize(vt uint32) int {
	switch vt {
	case tUint8, tInt8, tBool:
		return 1
	case tUint16, tInt16:
		return 2
	case tUint32, tInt32, tFloat32:
		return 4
	case tUint64, tInt64, tFloat64:
		return 8
	case tString, tArray:
		return 0
	}
	return -1
}

// metaKV is one metadata key/value pair. Value is one of uint8, int8, uint16,
// int16, uint32, int32, float32, bool, string, uint64, int64, float64, or
// a slice of one of those ([]string, []int32, []float32, …).
type metaKV struct {
	Key   string
	Value any
}

// tensorInfo describes one tensor of a GGUF file.
type tensorInfo struct {
	Name string
	// Dims in ggml order: the fastest-varying dimension first, i.e. the
	// Hugging Face shape reversed.
	Dims []uint64
	Type Type
	// Offset of the data from the start of the data section.
	Offset uint64
}

// elems is the number of values of the tensor.
func (t *tensorInfo) elems() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// bytes is the size of the tensor's data.
func (t *tensorInfo) bytes() uint64 {
	return t.elems() / uint64(t.Type.blockSize()) * uint64(t.Type.blockBytes())
}

// align rounds n up to a multiple of a.
func align(n, a uint64) uint64 { return (n + a - 1) / a * a }
