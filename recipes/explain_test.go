package recipes_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/herdml/herd/data/curate"
	"github.com/herdml/herd/posttrain"
	"github.com/herdml/herd/pretrain"
	"github.com/herdml/herd/recipes"
)

// recipeTypes are the tools' recipe defaults.
func recipeTypes() map[string]any {
	return map[string]any{"curate": curate.Default(), "pretrain": pretrain.Default(), "posttrain": posttrain.Default()}
}

// keysOf lists every YAML key of a recipe type by reflection (list
// elements without an index), independently of the doc table's generator,
// which reads the Go source.
func keysOf(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		*out = append(*out, prefix+name)
		keysOf(f.Type, prefix+name+".", out)
	}
}

// TestEveryKeyDocumented: every key of every tool's recipe has a one-line
// doc, reachable from the CLI with -explain.
func TestEveryKeyDocumented(t *testing.T) {
	for tool, def := range recipeTypes() {
		var keys []string
		keysOf(reflect.TypeOf(def), "", &keys)
		if len(keys) < 20 {
			t.Fatalf("%s: only %d keys found", tool, len(keys))
		}
		for _, k := range keys {
			d, ok := recipes.Doc(tool, k)
			if !ok || len(d) < 5 {
				t.Errorf("%s: key %s has no doc (%q)", tool, k, d)
			}
			if strings.HasPrefix(d, "default") || strings.HasPrefix(d, "0 =") {
				t.Errorf("%s: key %s's doc %q gives a default but does not say what the field is", tool, k, d)
			}
		}
	}
}

// TestExplain: a key shows its value and doc; a section lists its keys;
// list indexes are accepted; an unknown key suggests near ones.
func TestExplain(t *testing.T) {
	r := pretrain.Default()
	for _, c := range []struct{ key, want string }{
		{"optim.lr", "optim.lr = 0.003\n    peak learning rate (default 3e-3)\n"},
		{"stages.0.steps", "stages.steps\n    optimizer steps of the stage (required)\n"},
		{"eval.prompts", "eval.prompts = []\n"},
		{"average", "average.keep = better\n"},
	} {
		got, err := recipes.Explain("pretrain", r, c.key)
		if err != nil || !strings.Contains(got, c.want) {
			t.Errorf("Explain(%s) = %q, %v; want it to contain %q", c.key, got, err, c.want)
		}
	}
	if got, _ := recipes.Explain("pretrain", r, "average"); !strings.Contains(got, "average.last = 0") {
		t.Errorf("a section lists its keys: %q", got)
	}
	_, err := recipes.Explain("pretrain", r, "optim.lerning_rate")
	if err == nil || !strings.Contains(err.Error(), `pretrain has no recipe key "optim.lerning_rate"`) {
		t.Errorf("unknown key: %v", err)
	}
	_, err = recipes.Explain("pretrain", r, "optim.min")
	if err == nil || !strings.Contains(err.Error(), "did you mean") {
		t.Errorf("near keys: %v", err)
	}
}

// TestMarshalDocumented: the printed recipe carries each key's doc as a
// comment and decodes back to the same recipe.
func TestMarshalDocumented(t *testing.T) {
	for tool, def := range recipeTypes() {
		text, err := recipes.MarshalDocumented(tool, def)
		if err != nil {
			t.Fatal(err)
		}
		if tool == "pretrain" && !strings.Contains(string(text), "# peak learning rate (default 3e-3)\n  lr: 0.003\n") {
			t.Errorf("pretrain: no doc above optim.lr:\n%s", text)
		}
		plain, err := recipes.Marshal(def)
		if err != nil {
			t.Fatal(err)
		}
		back, want := reflect.New(reflect.TypeOf(def)), reflect.New(reflect.TypeOf(def))
		if err := recipes.Decode(text, "printed", back.Interface()); err != nil {
			t.Fatalf("%s: %v\n%s", tool, err, text)
		}
		if err := recipes.Decode(plain, "plain", want.Interface()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Elem().Interface(), want.Elem().Interface()) {
			t.Errorf("%s: the documented recipe decodes to another recipe than the plain one", tool)
		}
		if uncommented := stripComments(text); uncommented != string(plain) {
			t.Errorf("%s: the documented recipe is not the plain one with comments:\n%s\nplain:\n%s", tool, uncommented, plain)
		}
	}
}

// stripComments drops the comment lines of a printed recipe.
func stripComments(text []byte) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(text), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}
