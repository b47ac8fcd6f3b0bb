package tokenizer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// parquetBytes returns rows (a slice of structs) as a Parquet file.
func parquetBytes[T any](t testing.TB, rows []T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeParquetRows writes rows (a slice of structs) as a Parquet file in a
// temporary directory and returns its path.
func writeParquetRows[T any](t testing.TB, rows []T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docs-00000.parquet")
	if err := os.WriteFile(path, parquetBytes(t, rows), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestParquetCorpusColumnTypes checks that the training reader accepts
// only a non-repeated string (BYTE_ARRAY) column "text" and names the
// file and the actual type otherwise, instead of reinterpreting numbers as
// bytes (an INT64 column used to panic).
func TestParquetCorpusColumnTypes(t *testing.T) {
	type int64Text struct {
		Text int64 `parquet:"text"`
	}
	type int32Text struct {
		Text int32 `parquet:"text"`
	}
	type boolText struct {
		Text bool `parquet:"text"`
	}
	type doubleText struct {
		Text float64 `parquet:"text"`
	}
	type listText struct {
		Text []string `parquet:"text"`
	}
	type groupText struct {
		Text struct {
			A string `parquet:"a"`
		} `parquet:"text"`
	}
	type optText struct {
		Text *string `parquet:"text,optional"`
	}
	type bytesText struct {
		Text []byte `parquet:"text"`
	}
	hello := "hello world"
	cases := []struct {
		name string
		path string
		want string // error substring; "" means success
		text string // the concatenated texts on success
	}{
		{"int64", writeParquetRows(t, []int64Text{{1}, {1 << 40}}), "INT64", ""},
		{"int32", writeParquetRows(t, []int32Text{{7}}), "INT32", ""},
		{"boolean", writeParquetRows(t, []boolText{{true}}), "BOOLEAN", ""},
		{"double", writeParquetRows(t, []doubleText{{1.5}}), "DOUBLE", ""},
		{"repeated", writeParquetRows(t, []listText{{[]string{"a", "b"}}}), "repeated", ""},
		{"group", writeParquetRows(t, []groupText{{}}), "text", ""},
		{"optional string", writeParquetRows(t, []optText{{&hello}, {nil}}), "", hello},
		{"byte array", writeParquetRows(t, []bytesText{{[]byte("ab")}, {[]byte("cd")}}), "", "abcd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got strings.Builder
			err := parquetFile(tc.path).Each(context.Background(), func(b []byte) error {
				got.Write(b)
				return nil
			})
			if tc.want == "" {
				if err != nil || got.String() != tc.text {
					t.Fatalf("read %q, %v; want %q", got.String(), err, tc.text)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; read %q", got.String())
			}
			t.Log(err)
			if msg := err.Error(); !strings.Contains(msg, tc.path) || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not name the file and %q", msg, tc.want)
			}
		})
	}
}
