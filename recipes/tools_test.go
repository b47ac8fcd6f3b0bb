package recipes

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestShippedFor(t *testing.T) {
	all := allShipped()
	var union []string
	for _, tool := range toolList {
		names := tool.Shipped()
		if len(names) == 0 {
			t.Errorf("%s has no shipped recipes", tool.Name)
		}
		for _, n := range names {
			if ownerOf(n) != tool.Name {
				t.Errorf("%s lists %s, owned by %q", tool.Name, n, ownerOf(n))
			}
		}
		union = append(union, names...)
	}
	slices.Sort(union)
	if !slices.Equal(union, all) {
		t.Errorf("every shipped recipe belongs to exactly one tool: tools list %v, shipped %v", union, all)
	}
	cases := []struct {
		prefixes []string
		want     []string
	}{
		{[]string{"curate_"}, []string{"curate_gosrc", "curate_web"}},
		{[]string{"pretrain_"}, []string{"pretrain_llama3_8b", "pretrain_tiny"}},
		{[]string{"rm_", "nothing_"}, []string{"rm_tiny"}},
		{[]string{"zzz_"}, nil},
		{nil, nil},
	}
	for _, c := range cases {
		if got := shippedFor(c.prefixes...); !slices.Equal(got, c.want) {
			t.Errorf("ShippedFor(%v) = %v, want %v", c.prefixes, got, c.want)
		}
	}
}

func TestOwnerOf(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"curate_web", "curate"},
		{"pretrain_tiny", "pretrain"},
		{"dpo_tiny", "posttrain"},
		{"rounds_x.yaml", "posttrain"},
		{"rs_tiny", "posttrain"},
		{"posttrain_tiny", "posttrain"},
		{"dir/sft_mine.yaml", "posttrain"},
		{"my.yaml", ""},
		{"", ""},
	} {
		if got := ownerOf(c.name); got != c.want {
			t.Errorf("OwnerOf(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

type pretrainish struct {
	Train struct {
		Steps int `yaml:"steps"`
	} `yaml:"train"`
}

// TestLoadFor: another tool's shipped recipe, or a file named like one,
// fails naming the tool it belongs to.
func TestLoadFor(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "dpo_mine.yaml")
	os.WriteFile(foreign, []byte("dpo:\n  beta: 0.1\n"), 0o644)
	own := filepath.Join(dir, "dpo_named_oddly.yaml")
	os.WriteFile(own, []byte("train:\n  steps: 3\n"), 0o644)
	pre := ToolNamed("pretrain")
	cases := []struct {
		name      string
		recipe    string
		overrides []string
		want      string // "" = success
	}{
		{"own shipped", "pretrain_tiny", nil, `unknown field`}, // pretrainish lacks most fields; not a tool error
		{"other shipped", "dpo_tiny", nil, "recipe \"dpo_tiny\" is a posttrain recipe: run `posttrain -recipe dpo_tiny`; pretrain's shipped recipes are pretrain_llama3_8b, pretrain_tiny"},
		{"other tool's file", "curate_web.yaml", nil, "curate_web.yaml looks like a curate recipe"}, // a file here, in recipes/
		{"file of another tool", foreign, nil, "looks like a posttrain recipe, by its name"},
		{"file named oddly but fine", own, nil, ""},
		{"bad override on odd name", own, []string{"dpo.beta=1"}, `unknown field "dpo"`},
		{"no recipe", "", []string{"train.steps=2"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadFor(pre, c.recipe, pretrainish{}, c.overrides)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if c.name == "own shipped" && strings.Contains(err.Error(), "recipe, by its name") {
				t.Fatalf("own recipe blamed on another tool: %v", err)
			}
			if c.name == "bad override on odd name" && strings.Contains(err.Error(), "looks like") {
				t.Fatalf("override error blamed on the file name: %v", err)
			}
		})
	}
	if got := ToolNamed("posttrain").Shipped(); !slices.Contains(got, "dpo_tiny") || slices.Contains(got, "pretrain_tiny") {
		t.Errorf("posttrain's shipped recipes: %v", got)
	}
}
