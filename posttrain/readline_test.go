package posttrain

import (
	"bufio"
	"strings"
	"testing"
)

// TestReadLineLimit checks the line limit counts content bytes only,
// whatever the line ending and whether the last line has one.
func TestReadLineLimit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		line    string
		tooLong bool
	}{
		{"abcde\n", "abcde", false},
		{"abcde\r\n", "abcde", false},
		{"abcde", "abcde", false},
		{"abcdef", "", true},
		{"abcdef\n", "", true},
		{"abcdef\r\n", "", true},
		{"abc\r", "abc", false},
	} {
		// A 16-byte buffer makes long lines arrive in fragments.
		in := tc.in
		if strings.HasSuffix(in, "\n") {
			in += "next\n"
		}
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		line, tooLong, err := readLine(br, nil, 5)
		if err != nil && !strings.HasSuffix(in, "next\n") {
			err = nil // the last line ends at EOF
		}
		if err != nil || string(line) != tc.line || tooLong != tc.tooLong {
			t.Errorf("%q: got %q tooLong %v err %v, want %q %v", tc.in, line, tooLong, err, tc.line, tc.tooLong)
		}
		if tc.in[len(tc.in)-1] == '\n' {
			if next, _, _ := readLine(br, nil, 5); string(next) != "next" {
				t.Errorf("%q: the next line reads %q", tc.in, next)
			}
		}
	}
}
