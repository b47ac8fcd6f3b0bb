package jsonpos

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestWrap(t *testing.T) {
	cases := []struct {
		in   string
		want string
	}{
		{"{\n  \"a\": 1,\n  \"b\": x\n}", "line 3, column "},
		{"[1, 2,", "line 1, column "},
		{"{\"a\": \"s\"}", "line 1, column "}, // type error
	}
	for _, tc := range cases {
		var v struct{ A int }
		err := Wrap([]byte(tc.in), json.Unmarshal([]byte(tc.in), &v))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want prefix %q", tc.in, err, tc.want)
		}
	}
	other := errors.New("x")
	if Wrap(nil, other) != other {
		t.Error("non-JSON error changed")
	}
	// The column of the bad token on line 3: `  "b": x` → x is column 8.
	var v map[string]int
	in := "{\n  \"a\": 1,\n  \"b\": x\n}"
	if err := Wrap([]byte(in), json.Unmarshal([]byte(in), &v)); !strings.HasPrefix(err.Error(), "line 3, column 8") {
		t.Errorf("got %v", err)
	}
}
