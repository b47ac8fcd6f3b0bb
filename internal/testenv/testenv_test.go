package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAbsent runs this test binary's helper tests under each setting of
// the variables and checks which skip and which fail, by their output.
func TestAbsent(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") != "" {
		t.Skip("helper process")
	}
	for _, c := range []struct {
		test, env, want string
	}{
		{"TestChildTestdata", "", "--- SKIP"},
		{"TestChildTestdata", requireTestdataEnv + "=1", "--- FAIL"},
		{"TestChildTool", "", "--- SKIP"},
		{"TestChildTool", requireToolsEnv + "=1", "--- FAIL"},
		{"TestChildTool", requireTestdataEnv + "=1", "--- SKIP"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^"+c.test+"$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", requireTestdataEnv+"=", requireToolsEnv+"=")
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		}
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "absent") && !strings.Contains(string(out), "not installed") {
			t.Errorf("%s with %q: want %s and the reason, got\n%s", c.test, c.env, c.want, out)
		}
	}
}

func TestChildTestdata(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "" {
		t.Skip("run by TestAbsent")
	}
	Testdata(t, filepath.Join(t.TempDir(), "no-such-reference"))
}

func TestChildTool(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "" {
		t.Skip("run by TestAbsent")
	}
	needTool(t, "the test needs it", "herd-no-such-tool-xyz")
}

// TestPresent: present data and tools neither skip nor fail.
func TestPresent(t *testing.T) {
	Testdata(t, t.TempDir())
	if p := needTool(t, "", "sh"); p == "" {
		t.Fatal("sh not found")
	}
}
