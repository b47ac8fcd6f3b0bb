package recipes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Tool is a command that runs recipes and the name prefixes of its shipped
// recipes.
type Tool struct {
	Name     string
	Prefixes []string
}

// toolList lists each tool and the prefixes its shipped recipes start with.
var toolList = []Tool{
	{Name: "curate", Prefixes: []string{"curate_"}},
	{Name: "pretrain", Prefixes: []string{"pretrain_"}},
	{Name: "posttrain", Prefixes: []string{"sft_", "rm_", "dpo_", "rs_", "rounds_", "posttrain_"}},
	{Name: "scaling", Prefixes: []string{"scaling_"}},
}

// ToolNamed returns the tool called name (the zero Tool when none is).
func ToolNamed(name string) Tool {
	for _, t := range toolList {
		if t.Name == name {
			return t
		}
	}
	return Tool{Name: name}
}

// shippedFor lists the shipped recipes whose names start with one of the
// prefixes, sorted.
func shippedFor(prefixes ...string) []string {
	var names []string
	for _, n := range allShipped() {
		if hasPrefix(n, prefixes) {
			names = append(names, n)
		}
	}
	return names
}

// Shipped lists this tool's shipped recipes.
func (t Tool) Shipped() []string { return shippedFor(t.Prefixes...) }

// ownerOf returns the tool whose recipes are named like nameOrPath (its base
// name without .yaml), or "" when the name matches none.
func ownerOf(nameOrPath string) string {
	base := strings.TrimSuffix(path.Base(filepath.ToSlash(nameOrPath)), ".yaml")
	for _, t := range toolList {
		if hasPrefix(base, t.Prefixes) {
			return t.Name
		}
	}
	return ""
}

func hasPrefix(name string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) })
}

// CheckShipped refuses a shipped recipe of another tool: nameOrPath that is
// not a file on disk but the name of a shipped recipe whose prefix belongs
// to a tool other than t. The error says which tool runs it and lists t's
// own shipped recipes.
func (t Tool) CheckShipped(nameOrPath string) error {
	if nameOrPath == "" {
		return nil
	}
	if _, err := os.Stat(nameOrPath); !errors.Is(err, fs.ErrNotExist) {
		return nil // a file (or an unreadable path, reported by Load)
	}
	name := strings.TrimSuffix(path.Base(nameOrPath), ".yaml")
	if !slices.Contains(allShipped(), name) {
		return nil
	}
	if owner := ownerOf(name); owner != "" && owner != t.Name {
		return fmt.Errorf("recipe %q is a %s recipe: run `%s -recipe %s`; %s's shipped recipes are %s",
			name, owner, owner, name, t.Name, strings.Join(t.Shipped(), ", "))
	}
	return nil
}

// ExplainLoadError adds, to an error from Load of a recipe file whose name
// marks it as another tool's (dpo_*.yaml given to pretrain), which tool it
// belongs to, since such a file fails with "unknown field".
func (t Tool) ExplainLoadError(nameOrPath string, err error) error {
	if err == nil || nameOrPath == "" || !strings.Contains(err.Error(), "unknown field") || strings.HasPrefix(err.Error(), "override ") {
		return err
	}
	if owner := ownerOf(nameOrPath); owner != "" && owner != t.Name {
		return fmt.Errorf("%w\n(%s looks like a %s recipe, by its name: run it with `%s -recipe %s`)", err, nameOrPath, owner, owner, nameOrPath)
	}
	return err
}

// LoadFor is Load for the tool t: another tool's shipped recipe is
// refused by name, and a file named like another tool's recipe that fails
// with an unknown field says which tool it belongs to.
func LoadFor[T any](t Tool, nameOrPath string, defaults T, overrides []string) (T, error) {
	if err := t.CheckShipped(nameOrPath); err != nil {
		return defaults, err
	}
	cfg, err := Load(nameOrPath, defaults, overrides)
	return cfg, t.ExplainLoadError(nameOrPath, err)
}
