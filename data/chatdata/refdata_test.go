package chatdata

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/internal/testenv"
)

// refDir is the shared Llama 3 tokenizer with its chat cases.
var refDir = filepath.Join("..", "..", "..", "shared", "testdata", "tokenizer", "llama3")

// TestLlama3ChatCases encodes every reference conversation that has an
// assistant reply and no generation prompt as an SFT row with the real
// Llama 3 tokenizer: the ids are the reference ids and the weights are
// RenderChat's Target shifted by one.
func TestLlama3ChatCases(t *testing.T) {
	testenv.Testdata(t, refDir)
	if testing.Short() {
		t.Skip("loads the 128k-token Llama 3 tokenizer")
	}
	tok, err := tokenizer.Load(refDir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(refDir, "chat_cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	used := 0
	for n := 1; sc.Scan(); n++ {
		req, err := tokenizer.ParseChatRequest(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			IDs []int32 `json:"ids"`
		}
		json.Unmarshal(sc.Bytes(), &ref)
		if req.Options.AddGenerationPrompt || !slices.ContainsFunc(req.Messages, func(m tokenizer.Message) bool { return m.Role == "assistant" }) {
			continue
		}
		enc, err := NewEncoder(tok, EncodeOptions{SeqLen: 8192, Chat: req.Options})
		if err != nil {
			t.Fatal(err)
		}
		x, err := enc.SFT(SFTRow{Messages: req.Messages})
		if err != nil {
			t.Fatalf("case %d: %v", n, err)
		}
		c, _ := tok.RenderChat(req.Messages, req.Options)
		if !slices.Equal(x.IDs, ref.IDs) {
			t.Fatalf("case %d: ids differ from the reference", n)
		}
		for i := 0; i+1 < len(x.IDs); i++ {
			if (x.Weights[i] == 1) != c.Target[i+1] {
				t.Fatalf("case %d position %d: weight %v, Target[%d] %v", n, i, x.Weights[i], i+1, c.Target[i+1])
			}
		}
		used++
	}
	if used == 0 {
		t.Fatal("no reference case with an assistant reply")
	}
	t.Logf("%d reference conversations", used)
}
