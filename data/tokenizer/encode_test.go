package tokenizer

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// The reference tokenizer is loaded once per test binary (it takes a
// fraction of a second); it is immutable, so tests may share it.
var (
	refOnce sync.Once
	refTok  *Tokenizer
	refErr  error
)

func loadRef(t testing.TB) *Tokenizer {
	t.Helper()
	needRef(t)
	refOnce.Do(func() { refTok, refErr = Load(refDir) })
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refTok
}

func TestLoadReference(t *testing.T) {
	tok := loadRef(t)
	if tok.VocabSize() != 128256 || tok.NumBPE() != 128000 {
		t.Fatalf("vocab %d, bpe %d; want 128256, 128000", tok.VocabSize(), tok.NumBPE())
	}
	want := LlamaSpecials()
	got := tok.Specials()
	if len(got) != len(want) {
		t.Fatalf("%d specials, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("special %d = %q, want %q", 128000+i, got[i], want[i])
		}
	}
	cfg := tok.Config()
	if cfg.BOS != BeginOfText || cfg.EOS != EOT || !cfg.AddBOS || cfg.ModelMaxLength != 131072 || cfg.ChatTemplate == "" {
		t.Errorf("config = %+v", cfg)
	}
}

// TestEncodeCases checks every reference case: exact ids, and decoding
// gives the text back.
func TestEncodeCases(t *testing.T) {
	tok := loadRef(t)
	cases := loadEncodeCases(t)
	bad := 0
	for i, c := range cases {
		got := tok.Encode([]byte(c.Text))
		if !slices.Equal(got, c.IDs) {
			bad++
			if bad <= 5 {
				t.Errorf("case %d %q:\n got %v\nwant %v", i, clipStr(c.Text), got, c.IDs)
			}
		}
		dec, err := tok.Decode(got)
		if err != nil || string(dec) != c.Text {
			t.Errorf("case %d: decode = %q, %v", i, clipStr(string(dec)), err)
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d cases differ", bad, len(cases))
	}
	t.Logf("%d of %d cases exact", len(cases), len(cases))
}

func clipStr(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func TestSpecialOnlyWhenAllowed(t *testing.T) {
	tok := loadRef(t)
	text := []byte("a<|eot_id|>b<|start_header_id|>")
	plain := tok.Encode(text)
	for _, id := range plain {
		if tok.IsSpecial(id) {
			t.Fatalf("Encode produced special id %d: %v", id, plain)
		}
	}
	sp := tok.EncodeSpecial(text)
	want := []int32{64, 128009, 65, 128006}
	if !slices.Equal(sp, want) {
		t.Fatalf("EncodeSpecial = %v, want %v", sp, want)
	}
	for _, ids := range [][]int32{plain, sp} {
		if dec, _ := tok.Decode(ids); !bytes.Equal(dec, text) {
			t.Fatalf("decode %v = %q", ids, dec)
		}
	}
}

func TestRoundTripRandomBytes(t *testing.T) {
	tok := loadRef(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		for _, special := range []bool{false, true} {
			ids := tok.AppendEncode(nil, b, special)
			dec, err := tok.Decode(ids)
			if err != nil || !bytes.Equal(dec, b) {
				t.Fatalf("round trip of %q failed: %q, %v", b, dec, err)
			}
		}
	}
	// A long piece takes the heap path; it must agree with the linear path.
	long := bytes.Repeat([]byte("abcdefghij"), 100)
	sc := newScratch().(*scratch)
	a := tok.mergeLinear(nil, long, sc)
	h := tok.mergeHeap(nil, long, sc)
	if !slices.Equal(a, h) {
		t.Fatalf("heap merge %v != linear merge %v", h, a)
	}
}

func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"Hello, world!", "<|eot_id|>x", "\xff\xfe\x00", "  \n\n\tfoo'S", "東京 123456"} {
		f.Add([]byte(s), false)
	}
	tok := loadRef(f)
	f.Fuzz(func(t *testing.T, b []byte, special bool) {
		ids := tok.AppendEncode(nil, b, special)
		dec, err := tok.Decode(ids)
		if err != nil || !bytes.Equal(dec, b) {
			t.Fatalf("round trip of %q: %q, %v", b, dec, err)
		}
	})
}
