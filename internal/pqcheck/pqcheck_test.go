package pqcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestFooter(t *testing.T) {
	file := func(body string, footerLen uint32) []byte {
		var b bytes.Buffer
		b.WriteString("PAR1")
		b.WriteString(body)
		binary.Write(&b, binary.LittleEndian, footerLen)
		b.WriteString("PAR1")
		return b.Bytes()
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"ok", file("metadata", 8), ""},
		{"short", []byte("PAR1"), "too short"},
		{"no magic", append([]byte("XXXX"), file("m", 1)[4:]...), "missing PAR1"},
		{"footer beyond file", file("m", 1000), "footer of 1000 bytes"},
		{"huge footer", file("m", 0xfffffff0), "footer of"},
	}
	for _, tc := range cases {
		err := Footer("f.parquet", bytes.NewReader(tc.data), int64(len(tc.data)))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "f.parquet") {
			t.Errorf("%s: error %v, want one naming the file and containing %q", tc.name, err, tc.want)
		}
	}
}

func TestRecover(t *testing.T) {
	f := func() (err error) {
		defer Recover("x.parquet", &err)
		panic("slice bounds out of range")
	}
	if err := f(); err == nil || !strings.Contains(err.Error(), "x.parquet: corrupted") {
		t.Fatalf("got %v", err)
	}
	g := func() (err error) {
		defer Recover("x.parquet", &err)
		return errors.New("plain")
	}
	if err := g(); err.Error() != "plain" {
		t.Fatalf("got %v", err)
	}
}
