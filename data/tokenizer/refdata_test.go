package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/herdml/herd/internal/testenv"
)

// testdata is the shared reference data folder, relative to this package.
const testdata = "../../../shared/testdata"

// refDir is the reference Llama 3 tokenizer.
var refDir = filepath.Join(testdata, "tokenizer", "llama3")

// needRef skips the test when the shared reference data is absent.
func needRef(t testing.TB) {
	t.Helper()
	testenv.Testdata(t, refDir)
}

type encodeCase struct {
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func loadEncodeCases(t testing.TB) []encodeCase {
	t.Helper()
	needRef(t)
	f, err := os.Open(filepath.Join(refDir, "encode_cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []encodeCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var c encodeCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
