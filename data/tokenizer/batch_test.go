package tokenizer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEncodeJSONL(t *testing.T) {
	tok := loadRef(t)
	cases := loadEncodeCases(t)
	var in bytes.Buffer
	for range 10 { // several batches' worth of lines
		for _, c := range cases {
			b, _ := json.Marshal(map[string]string{"text": c.Text})
			in.Write(b)
			in.WriteByte('\n')
		}
	}
	var out bytes.Buffer
	if err := tok.EncodeJSONL(context.Background(), &in, &out, EncodeOptions{}, LineOptions{Workers: 3}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 10*len(cases) {
		t.Fatalf("%d output lines for %d inputs", len(lines), 10*len(cases))
	}
	for i, l := range lines {
		var got struct{ IDs []int32 }
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.IDs, cases[i%len(cases)].IDs) {
			t.Fatalf("line %d: ids differ", i+1)
		}
	}
	// Errors name the line.
	bad := "{\"text\": \"ok\"}\n{\"txt\": 1}\n"
	if err := tok.EncodeJSONL(context.Background(), strings.NewReader(bad), &out, EncodeOptions{}, LineOptions{Workers: 2}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v, want one naming line 2", err)
	}
}

func TestChatAndDecodeJSONL(t *testing.T) {
	tok := loadRef(t)
	needRef(t)
	data, err := os.ReadFile(filepath.Join(refDir, "chat_cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tok.ChatJSONL(context.Background(), bytes.NewReader(data), &out, true, LineOptions{Workers: 2}); err != nil {
		t.Fatal(err)
	}
	cases := loadChatCases(t)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("%d lines", len(lines))
	}
	var idLines bytes.Buffer
	for i, l := range lines {
		var got struct {
			IDs            []int32
			Target, Format []int
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.IDs, cases[i].IDs) || len(got.Target) != len(got.IDs) || len(got.Format) != len(got.IDs) {
			t.Fatalf("case %d differs", i)
		}
		fmt.Fprintf(&idLines, "{\"ids\": %s}\n", appendIDs(nil, got.IDs))
	}
	out.Reset()
	if err := tok.DecodeJSONL(context.Background(), &idLines, &out, LineOptions{Workers: 2}); err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var got struct{ Text string }
		if err := json.Unmarshal([]byte(l), &got); err != nil || got.Text != cases[i].Text {
			t.Fatalf("decoded case %d: %q, %v", i, got.Text, err)
		}
	}
}

// TestReadLine reads lines around the buffer size and the limit: lines up
// to the limit come back whole, longer ones are errors giving their full
// length, and the next line is read normally after either.
func TestReadLine(t *testing.T) {
	const limit = 40
	for _, n := range []int{0, 1, 15, 16, 17, 39, 40, 41, 100} {
		for _, last := range []bool{false, true} {
			line := strings.Repeat("x", n)
			in := line + "\nnext"
			if last {
				in = line
			}
			br := bufio.NewReaderSize(strings.NewReader(in), 16)
			got, ok, err := readLine(br, []byte("prefix"), limit)
			switch {
			case n > limit:
				if !errors.Is(err, ErrTooLong) || !ok || string(got) != "prefix" || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes, limit %d", n, limit)) {
					t.Fatalf("n=%d last=%v: %q, %v, %v", n, last, got, ok, err)
				}
			case last && n == 0:
				if ok || err != io.EOF {
					t.Fatalf("empty input: ok %v, err %v", ok, err)
				}
				continue
			case last:
				if err != io.EOF || !ok || string(got) != "prefix"+line {
					t.Fatalf("n=%d last: %q, %v, %v", n, got, ok, err)
				}
			default:
				if err != nil || !ok || string(got) != "prefix"+line {
					t.Fatalf("n=%d: %q, %v, %v", n, got, ok, err)
				}
			}
			if !last {
				if next, ok, err := readLine(br, nil, limit); string(next) != "next" || !ok || err != io.EOF {
					t.Fatalf("n=%d: next line %q, %v, %v", n, next, ok, err)
				}
			}
		}
	}
}

// TestJSONLLimits: a line over MaxLine is an error naming the line and its
// length after the outputs of the lines before it; many batches pass the
// in-flight budget in order; out-of-range settings are errors.
func TestJSONLLimits(t *testing.T) {
	tok := loadRef(t)
	var in bytes.Buffer
	const n = 9000 // several batches of batchLines
	for i := range n {
		fmt.Fprintf(&in, "{\"text\": \"line %d\"}\n", i)
	}
	var out bytes.Buffer
	if err := tok.EncodeJSONL(context.Background(), bytes.NewReader(in.Bytes()), &out, EncodeOptions{}, LineOptions{Workers: 2, MaxLine: 100}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines out for %d in", len(lines), n)
	}
	for _, i := range []int{0, 1023, 1024, 5000, n - 1} {
		want := fmt.Sprintf("{\"ids\":%s}", appendIDs(nil, tok.Encode(fmt.Appendf(nil, "line %d", i))))
		if lines[i] != want {
			t.Fatalf("line %d = %s, want %s", i+1, lines[i], want)
		}
	}

	long := "{\"text\": \"" + strings.Repeat("a", 200) + "\"}"
	bad := "{\"text\": \"a\"}\n{\"text\": \"b\"}\n" + long + "\n{\"text\": \"c\"}\n"
	out.Reset()
	err := tok.EncodeJSONL(context.Background(), strings.NewReader(bad), &out, EncodeOptions{}, LineOptions{MaxLine: 100})
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), fmt.Sprintf("line 3: too long: %d bytes, limit 100", len(long))) {
		t.Fatalf("long line: %v", err)
	}
	if strings.Count(out.String(), "\n") != 2 {
		t.Fatalf("output before the long line: %q", out.String())
	}
	for _, o := range []LineOptions{{Workers: -1}, {Workers: MaxWorkers + 1}, {MaxLine: -1}, {MaxLine: MaxLimit + 1}} {
		if err := tok.EncodeJSONL(context.Background(), strings.NewReader(""), io.Discard, EncodeOptions{}, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := tok.EncodeBatch(context.Background(), nil, false, -1); err == nil {
		t.Error("EncodeBatch accepted -1 workers")
	}
}
