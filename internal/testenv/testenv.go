// Package testenv holds the checks tests make of their environment: the
// reference data in ../shared/testdata and optional external tools. A test
// skips, saying so, when one is absent, except where the environment
// demands it: CI (.ci/run) sets HERD_REQUIRE_TESTDATA=1 and
// HERD_REQUIRE_TOOLS=1, so that the reference checks the README claims
// always run there and a missing prerequisite fails instead of passing
// silently.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Environment variables that turn a skip into a failure.
const (
	RequireTestdataEnv = "HERD_REQUIRE_TESTDATA"
	RequireToolsEnv    = "HERD_REQUIRE_TOOLS"
)

// Testdata checks that the reference data at path (a file or a folder
// under ../shared/testdata) exists; when it does not, the test is skipped,
// or fails under HERD_REQUIRE_TESTDATA=1.
func Testdata(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		absent(t, RequireTestdataEnv, fmt.Sprintf("reference data %s is absent (%v); see ../shared/testdata/README.md", path, err))
	}
}

// Tool returns the path of the first of names found on PATH; when none
// is, the test is skipped, saying why it needs one (why), or fails under
// HERD_REQUIRE_TOOLS=1.
func Tool(t testing.TB, why string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	absent(t, RequireToolsEnv, fmt.Sprintf("%s is not installed: %s", strings.Join(names, " or "), why))
	return ""
}

// absent skips t with msg, or fails it when env is set to 1.
func absent(t testing.TB, env, msg string) {
	t.Helper()
	if os.Getenv(env) == "1" {
		t.Fatalf("%s (%s=1: required here)", msg, env)
	}
	t.Skip(msg)
}
