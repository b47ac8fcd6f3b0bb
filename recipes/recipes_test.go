package recipes

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type gopher struct {
	MinWords int     `yaml:"min_words"`
	MaxRatio float64 `yaml:"max_ratio"`
}

type testRecipe struct {
	Name    string            `yaml:"name"`
	LR      float64           `yaml:"learning_rate"`
	Steps   int               `yaml:"steps"`
	Enabled bool              `yaml:"enabled"`
	Langs   []string          `yaml:"langs"`
	Lists   map[string]string `yaml:"lists"`
	Timeout time.Duration     `yaml:"timeout"`
	Seed    uint64            `yaml:"seed"`
	Filters struct {
		Gopher gopher `yaml:"gopher"`
	} `yaml:"filters"`
}

func defaults() testRecipe {
	r := testRecipe{Name: "web", LR: 0.1, Steps: 10, Langs: []string{"en"}}
	r.Filters.Gopher = gopher{MinWords: 50, MaxRatio: 0.1}
	return r
}

func TestDecodeKeepsDefaults(t *testing.T) {
	r := defaults()
	err := Decode([]byte("steps: 20\nfilters:\n  gopher:\n    max_ratio: 0.2\ntimeout: 90s\n"), "r.yaml", &r)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Steps, want.Filters.Gopher.MaxRatio, want.Timeout = 20, 0.2, 90*time.Second
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	// An empty file keeps every default.
	r = defaults()
	if err := Decode([]byte("# nothing\n"), "e.yaml", &r); err != nil || !reflect.DeepEqual(r, defaults()) {
		t.Fatalf("empty recipe: %+v %v", r, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown", "steps: 1\nfilters:\n  gopher:\n    min_words: 3\n  lerning_rate: 2\n", `r.yaml: [5:3] unknown field "lerning_rate"`},
		{"duplicate", "steps: 1\nsteps: 2\n", "r.yaml: [2:1]"},
		{"float for int", "steps: 1.5\n", `[1:8] "steps" wants an integer, got the number 1.5`},
		{"string for float", "learning_rate: fast\n", `[1:16] "learning_rate" wants a number`},
		{"number for string", "name: 12\n", `[1:7] "name" wants a string, got the integer 12; quote it`},
		{"scalar for list", "langs: en\n", `[1:8] "langs" wants a list`},
		{"list item type", "langs: [en, 3]\n", `"langs[1]" wants a string`},
		{"scalar for struct", "filters: 3\n", `"filters" wants a mapping`},
		{"negative uint", "seed: -1\n", `"seed": -1 does not fit in uint64`},
		{"bool", "enabled: yes please\n", `"enabled" wants true or false`},
		{"two documents", "steps: 1\n---\nsteps: 2\n", "exactly one YAML document"},
		{"top-level list", "- a\n", "wants a mapping"},
		{"alias", "name: &x a\nlangs: [*x]\n", "anchors, aliases"},
		{"syntax", "steps: [1\n", "r.yaml:"},
		{"overflow", "steps: 99999999999999999999\n", "r.yaml:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := defaults()
			err := Decode([]byte(c.yaml), "r.yaml", &r)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestOverride(t *testing.T) {
	r := defaults()
	for _, o := range []string{"filters.gopher.min_words=20", "langs=[en, fr]", "name=\"007\"", "lists.en=words.txt", "enabled=true", "timeout=5m", "learning_rate=0.0003"} {
		if err := Override(&r, o); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
	}
	if r.Filters.Gopher.MinWords != 20 || r.Filters.Gopher.MaxRatio != 0.1 || !reflect.DeepEqual(r.Langs, []string{"en", "fr"}) ||
		r.Name != "007" || r.Lists["en"] != "words.txt" || !r.Enabled || r.Timeout != 5*time.Minute || r.LR != 0.0003 {
		t.Fatalf("overrides not applied: %+v", r)
	}
	for _, c := range []struct{ o, want string }{
		{"filters.gopher.min_wrds=3", `unknown field "min_wrds"`},
		{"steps=abc", `wants an integer`},
		{"steps", "want key=value"},
		{"steps=", "empty value"},
		{"name.x=1", "not a field of a mapping"},
	} {
		if err := Override(&r, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Override(%q) = %v, want %q", c.o, err, c.want)
		}
	}
}

// TestOverrideNull: key=null clears a list or map.
func TestOverrideNull(t *testing.T) {
	r := defaults()
	r.Lists = map[string]string{"en": "x"}
	for _, o := range []string{"langs=null", "lists=null"} {
		if err := Override(&r, o); err != nil {
			t.Fatal(err)
		}
	}
	if r.Langs != nil || r.Lists != nil {
		t.Fatalf("null did not clear: %v %v", r.Langs, r.Lists)
	}
}

func TestLoadRoundTrip(t *testing.T) {
	r, err := Load("", defaults(), []string{"steps=7"})
	if err != nil || r.Steps != 7 {
		t.Fatalf("%+v %v", r, err)
	}
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back testRecipe
	if err := Decode(b, "marshalled", &back); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if b2, _ := Marshal(back); string(b2) != string(b) {
		t.Fatalf("round trip:\n%s\n%s", b2, b)
	}
	if _, err := Load("no-such-recipe", defaults(), nil); err == nil || !strings.Contains(err.Error(), "shipped") {
		t.Fatalf("missing recipe: %v", err)
	}
}

func TestShipped(t *testing.T) {
	names := allShipped()
	if len(names) == 0 {
		t.Fatal("no shipped recipes")
	}
	for _, n := range names {
		if _, src, err := resolveRecipe(n); err != nil || src != "shipped:"+n {
			t.Fatalf("%s: %s %v", n, src, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"steps: 1\n", "filters:\n  gopher:\n    min_words: 3\n", "langs: [a, b]\nlists: {a: b}\n",
		"name: &a x\n", "---\n---\n", "steps: 1\nsteps: 2", "timeout: 1h\n", "{", "- - -", "seed: 18446744073709551615\n",
		// The nesting pre-scan: brackets in flow, quoted, block-scalar and compact forms.
		"data: [[[[[[[[\n", "name: \"[[[[\"\n", "x: |\n  [[[[\n", "langs:\n  - - - - a\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := defaults()
		if err := Decode(data, "fuzz.yaml", &r); err != nil {
			return
		}
		b, err := Marshal(r)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back testRecipe
		back = defaults()
		if err := Decode(b, "again", &back); err != nil {
			t.Fatalf("re-decode of %q: %v\n%s", data, err, b)
		}
	})
}

// TestMarshalFloats: every float, exponent forms included, reads back as
// the same number.
func TestMarshalFloats(t *testing.T) {
	type r struct {
		X []float64 `yaml:"x"`
	}
	in := r{X: []float64{1e-05, 3e-4, 2.5, 1, 0, -7, 1e21, 123456789, 6.02e23, -1.5e-300}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out r
	var e r
	if err := Decode([]byte("x: [1e-3, 2E+5, -3e2]"), "exp", &e); err != nil || !reflect.DeepEqual(e.X, []float64{1e-3, 2e5, -300}) {
		t.Fatalf("exponents without a decimal point: %v %v", e.X, err)
	}
	if err := Decode([]byte("x: [\"1e-3\"]"), "quoted", &e); err == nil {
		t.Fatal("a quoted string was accepted as a number")
	}
	if err := Decode(b, "floats", &out); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %v → %s → %v", in.X, b, out.X)
	}
}

type listStage struct {
	Name  string   `yaml:"name"`
	Steps int      `yaml:"steps"`
	Tags  []string `yaml:"tags"`
}

type listRecipe struct {
	Stages  []listStage            `yaml:"stages"`
	Ptrs    []*listStage           `yaml:"ptrs"`
	Rounds  struct{ SFT []string } `yaml:"rounds"`
	Pair    [2]int                 `yaml:"pair"`
	ByName  map[string][]listStage `yaml:"by_name"`
	Weights []float64              `yaml:"weights"`
	Empty   []int                  `yaml:"empty"`
	Sources []struct {
		Name   string   `yaml:"name"`
		Weight *float64 `yaml:"weight"`
	} `yaml:"sources"`
	Scale *listStage `yaml:"scale"`
}

func listDefaults() listRecipe {
	r := listRecipe{
		Stages:  []listStage{{Name: "a", Steps: 1}, {Name: "b", Steps: 2, Tags: []string{"x", "y"}}},
		Ptrs:    []*listStage{{Name: "p"}},
		Pair:    [2]int{1, 2},
		ByName:  map[string][]listStage{"m": {{Name: "m0"}}},
		Weights: []float64{1, 1, 1},
	}
	r.Rounds.SFT = []string{"train.steps=1", "optim.lr=1e-4", "seed=1"}
	one := 1.0
	r.Sources = append(r.Sources, struct {
		Name   string   `yaml:"name"`
		Weight *float64 `yaml:"weight"`
	}{"a", nil}, struct {
		Name   string   `yaml:"name"`
		Weight *float64 `yaml:"weight"`
	}{"b", &one})
	return r
}

// TestOverrideIndex: list elements are addressed by their index.
func TestOverrideIndex(t *testing.T) {
	cases := []struct {
		o     string
		check func(r listRecipe) bool
	}{
		{"stages.0.steps=10", func(r listRecipe) bool { return r.Stages[0].Steps == 10 && r.Stages[1].Steps == 2 }},
		{"stages.1.name=long", func(r listRecipe) bool { return r.Stages[1].Name == "long" && r.Stages[0].Name == "a" }},
		{"stages.1.tags.1=z", func(r listRecipe) bool { return reflect.DeepEqual(r.Stages[1].Tags, []string{"x", "z"}) }},
		{"stages.1={name: c, steps: 5}", func(r listRecipe) bool {
			return reflect.DeepEqual(r.Stages[1], listStage{Name: "c", Steps: 5, Tags: []string{"x", "y"}})
		}}, // a mapping merges, as for struct fields
		{"stages.1={steps: 7}", func(r listRecipe) bool { return r.Stages[1].Name == "b" && r.Stages[1].Steps == 7 }},
		{"ptrs.0.steps=3", func(r listRecipe) bool { return r.Ptrs[0].Steps == 3 && r.Ptrs[0].Name == "p" }},
		{"rounds.sft.2=optim.lr=1e-3", func(r listRecipe) bool {
			return r.Rounds.SFT[2] == "optim.lr=1e-3" && r.Rounds.SFT[1] == "optim.lr=1e-4"
		}},
		{"pair.1=9", func(r listRecipe) bool { return r.Pair == [2]int{1, 9} }},
		{"by_name.m.0.steps=4", func(r listRecipe) bool { return r.ByName["m"][0].Steps == 4 && r.ByName["m"][0].Name == "m0" }},
		{"weights.1=0.5", func(r listRecipe) bool { return reflect.DeepEqual(r.Weights, []float64{1, 0.5, 1}) }},
		// Pointer fields: set when nil, replaced (not written through) when set.
		{"sources.1.weight=0.5", func(r listRecipe) bool { return *r.Sources[1].Weight == 0.5 && *listDefaults().Sources[1].Weight == 1 }},
		{"sources.0.weight=0.25", func(r listRecipe) bool { return r.Sources[0].Weight != nil && *r.Sources[0].Weight == 0.25 }},
		{"sources.1.weight=null", func(r listRecipe) bool { return r.Sources[1].Weight == nil }},
		{"scale={steps: 3}", func(r listRecipe) bool { return r.Scale != nil && r.Scale.Steps == 3 }},
		{"scale.name=s", func(r listRecipe) bool { return r.Scale != nil && r.Scale.Name == "s" }},
	}
	for _, c := range cases {
		t.Run(c.o, func(t *testing.T) {
			r := listDefaults()
			if err := Override(&r, c.o); err != nil {
				t.Fatal(err)
			}
			if !c.check(r) {
				t.Fatalf("not applied: %+v", r)
			}
		})
	}
	errCases := []struct{ o, want string }{
		{"stages.2.steps=1", `"stages.2.steps": index 2 is out of range: stages has 2 elements (indexes 0 to 1)`},
		{"ptrs.1.steps=1", `index 1 is out of range: ptrs has 1 element (index 0)`},
		{"empty.0=1", `index 0 is out of range: empty is empty`},
		{"by_name.m.3.steps=1", `index 3 is out of range: by_name.m has 1 element`},
		{"stages.-1.steps=1", `stages is a list; address an element by its index from 0 (stages.0), not "-1"`},
		{"stages.first.steps=1", `not "first"`},
		{"stages.0.stepz=1", `unknown field "stepz"`},
		{"stages.0.steps=many", `"stages.0.steps" wants an integer`},
		{"weights.0=[1]", `"weights.0" wants a number`},
		{"pair.2=1", `pair has 2 elements`},
		{"sources.1.weight=heavy", `"sources.1.weight" wants a number`},
	}
	for _, c := range errCases {
		t.Run(c.o, func(t *testing.T) {
			r := listDefaults()
			err := Override(&r, c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Override(%q) = %v, want %q", c.o, err, c.want)
			}
			if !reflect.DeepEqual(r, listDefaults()) {
				t.Fatalf("a failed override changed the recipe: %+v", r)
			}
		})
	}
}

// TestOverridePointerNoAlias: overriding a pointer field replaces the
// pointer, so a value shared with the defaults is left alone.
func TestOverridePointerNoAlias(t *testing.T) {
	shared := 1.0
	r := listDefaults()
	r.Sources[1].Weight = &shared
	if err := Override(&r, "sources.1.weight=0.5"); err != nil {
		t.Fatal(err)
	}
	if shared != 1 || *r.Sources[1].Weight != 0.5 {
		t.Fatalf("shared %v, field %v", shared, *r.Sources[1].Weight)
	}
}

// TestOverrideIndexNoAlias: Load's defaults keep their list elements.
func TestOverrideIndexNoAlias(t *testing.T) {
	def := listDefaults()
	r, err := Load("", def, []string{"stages.0.steps=99", "rounds.sft.0=x=1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Stages[0].Steps != 99 || r.Rounds.SFT[0] != "x=1" || def.Stages[0].Steps != 1 || def.Rounds.SFT[0] != "train.steps=1" {
		t.Fatalf("got %+v, defaults now %+v", r, def)
	}
}
