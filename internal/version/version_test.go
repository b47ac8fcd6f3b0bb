package version

import (
	"regexp"
	"testing"
)

func TestVersion(t *testing.T) {
	v, rev := moduleVersion()
	if v == "" || v[0] == '(' {
		t.Fatalf("version %q: want a plain version such as devel or v1.2.3", v)
	}
	if rev != "" && !regexp.MustCompile(`^[0-9a-f]{1,12}(-dirty)?$`).MatchString(rev) {
		t.Fatalf("revision %q: want up to 12 hex digits and an optional -dirty", rev)
	}
}
