// Package recipes loads recipe files: strict YAML decoded onto a struct that
// already holds every default, followed by `key=value` overrides, plus the
// shipped recipes embedded in the binary so tools can use them by name.
//
// The loader is generic over any struct type with `yaml` field tags, so the
// curation, pretraining and post-training tools share it. Strictness means:
// unknown keys, duplicate keys, values of the wrong type (a float for an
// integer field, a number for a string field, a scalar for a list) and
// multi-document files are errors that name the line and column, such as
//
//	web.yaml: [7:3] unknown field "lerning_rate"
//
// A key missing from the file keeps its default, so a recipe only lists what
// it changes.
package recipes

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

//go:embed *.yaml
var shipped embed.FS

// allShipped lists the names (without .yaml) of the recipes embedded in the
// binary, sorted.
func allShipped() []string {
	entries, err := fs.ReadDir(shipped, ".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	slices.Sort(names)
	return names
}

// ReadShipped returns the text of a shipped recipe, by name with or without
// the .yaml suffix.
func ReadShipped(name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".yaml")
	data, err := shipped.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no shipped recipe %q (shipped: %s)", name, strings.Join(allShipped(), ", "))
	}
	return data, nil
}

// resolveRecipe returns the text of a recipe and a name for messages: nameOrPath is
// read from disk when such a file exists, otherwise it names a shipped recipe.
func resolveRecipe(nameOrPath string) (data []byte, source string, err error) {
	if data, err := readRecipeFile(nameOrPath); err == nil {
		return data, nameOrPath, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("read recipe: %w", err)
	}
	if strings.ContainsRune(nameOrPath, os.PathSeparator) {
		return nil, "", fmt.Errorf("recipe file %s does not exist (shipped recipes: %s)", nameOrPath, strings.Join(allShipped(), ", "))
	}
	data, err = ReadShipped(path.Base(nameOrPath))
	if err != nil {
		return nil, "", fmt.Errorf("recipe %q is neither a file nor a shipped recipe: %w", nameOrPath, err)
	}
	return data, "shipped:" + strings.TrimSuffix(path.Base(nameOrPath), ".yaml"), nil
}

// Load returns defaults with the recipe nameOrPath (a file, or a shipped
// recipe's name; empty for none) decoded onto it and then each `key=value`
// override applied in order.
func Load[T any](nameOrPath string, defaults T, overrides []string) (T, error) {
	cfg := defaults
	if nameOrPath != "" {
		data, source, err := resolveRecipe(nameOrPath)
		if err != nil {
			return cfg, err
		}
		if err := Decode(data, source, &cfg); err != nil {
			return cfg, err
		}
	}
	for _, o := range overrides {
		if err := Override(&cfg, o); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// Decode strictly decodes the YAML document data onto the struct that dst
// points to. Keys absent from data keep the value dst already has. source
// names the document in errors. Documents larger than maxRecipeBytes or
// nested deeper than maxDepth are refused before parsing.
func Decode(data []byte, source string, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("recipes.Decode: destination must be a non-nil pointer, got %T", dst)
	}
	if err := checkSize(data, maxRecipeBytes); err != nil {
		return fmt.Errorf("%s: the recipe is %w", source, err)
	}
	if err := checkDepth(data, maxDepth); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return fmt.Errorf("%s: %s", source, yaml.FormatError(err, false, false))
	}
	var body ast.Node
	for i, doc := range file.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			return fmt.Errorf("%s: document %d: a recipe holds exactly one YAML document; remove the extra '---' section", source, i+1)
		}
		body = doc.Body
	}
	if body == nil {
		return nil // empty recipe: all defaults
	}
	if err := check(body, rv.Elem().Type(), ""); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	if err := yaml.NodeToValue(body, dst, yaml.Strict()); err != nil {
		return fmt.Errorf("%s: %s", source, yaml.FormatError(err, false, false))
	}
	return nil
}

// Override applies one `dotted.key=value` assignment to the struct dst
// points to. Keys are the YAML names (`filters.gopher.min_words=20`); map
// entries are addressed by their key and list elements by their index from
// 0 (`stages.0.steps=10`, `data.sources.1.weight=0.5`); an index past the
// end is an error that names the list's length (replace the whole list to
// grow it: `langs=[en, fr]`). The first '=' separates the key from the
// value, so a value may hold more ('rounds.sft.2=optim.lr=1e-3' sets a
// string element to "optim.lr=1e-3"). The value is YAML (`langs=[en, fr]`,
// `name="007"`) and must have the field's type. Values larger than
// maxOverrideBytes or nested deeper than maxDepth are refused before
// parsing.
func Override(dst any, assignment string) error {
	key, value, ok := strings.Cut(assignment, "=")
	if !ok || key == "" {
		return fmt.Errorf("override %q: want key=value, e.g. %s", shorten(assignment), exampleOverride(dst))
	}
	if err := checkSize([]byte(value), maxOverrideBytes); err != nil {
		return fmt.Errorf("override %s=…: the value is %w; put large settings in a recipe file", key, err)
	}
	if err := checkDepth([]byte(value), maxDepth); err != nil {
		return fmt.Errorf("override %q: %w", shorten(assignment), err)
	}
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("recipes.Override: destination must be a non-nil pointer, got %T", dst)
	}
	field, setMap, err := lookup(rv.Elem(), strings.Split(key, "."), key)
	if err != nil {
		return fmt.Errorf("override %q: %w", assignment, err)
	}
	file, err := parser.ParseBytes([]byte(value), 0)
	if err != nil {
		return fmt.Errorf("override %q: value is not valid YAML: %s", assignment, yaml.FormatError(err, false, false))
	}
	var node ast.Node
	if len(file.Docs) == 1 && file.Docs[0] != nil {
		node = file.Docs[0].Body
	}
	if node == nil {
		return fmt.Errorf("override %q: empty value; write key=null to clear a list or map, key=\"\" for an empty string", assignment)
	}
	if err := check(node, field.Type(), key); err != nil {
		return fmt.Errorf("override %q: %w", assignment, err)
	}
	result := reflect.Zero(field.Type()) // key=null clears the field
	if _, null := node.(*ast.NullNode); !null {
		// Anything else decodes onto a copy of the field's value (through
		// a pointer field: a copy of what it points to, or a new value).
		ptr := field.Kind() == reflect.Pointer
		vt := field.Type()
		if ptr {
			vt = vt.Elem()
		}
		target := reflect.New(vt)
		if !ptr {
			target.Elem().Set(field)
		} else if !field.IsNil() {
			target.Elem().Set(field.Elem())
		}
		if err := yaml.NodeToValue(node, target.Interface(), yaml.Strict()); err != nil {
			return fmt.Errorf("override %q: %s", assignment, yaml.FormatError(err, false, false))
		}
		result = target.Elem()
		if ptr {
			result = target
		}
	}
	if setMap != nil {
		setMap(result)
	} else {
		field.Set(result)
	}
	return nil
}

// exampleOverride is an override of a key of the recipe dst points to,
// with its current value, for messages: optim.lr when it has one, else
// the first scalar key inside a section.
func exampleOverride(dst any) string {
	v := reflect.ValueOf(dst)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return "section.key=value"
	}
	for _, key := range []string{"optim.lr", "filters.gopher.min_words"} {
		if val, ok := valueAt(v, key); ok {
			return key + "=" + val
		}
	}
	for i := range v.NumField() {
		sec, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		if sec == "" || sec == "-" || f.Kind() != reflect.Struct {
			continue
		}
		for j := range f.NumField() {
			name, _, _ := strings.Cut(f.Type().Field(j).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if val, ok := valueAt(v, sec+"."+name); ok {
				return sec + "." + name + "=" + val
			}
		}
	}
	return "section.key=value"
}

// shorten abbreviates an override for error messages.
func shorten(assignment string) string {
	const max = 60
	if len(assignment) <= max {
		return assignment
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(assignment[cut]) {
		cut--
	}
	return assignment[:cut] + "…"
}

// lookup finds the settable value named by path below v. For a map entry it
// returns a copy and a function that stores the new value into the map.
func lookup(v reflect.Value, path []string, full string) (reflect.Value, func(reflect.Value), error) {
	for i, name := range path {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.Struct:
			f, ok := fieldByYAMLName(v, name)
			if !ok {
				return reflect.Value{}, nil, fmt.Errorf("unknown field %q in %q (known: %s)", name, full, strings.Join(fieldNames(v.Type()), ", "))
			}
			v = f
		case reflect.Map:
			if v.Type().Key().Kind() != reflect.String {
				return reflect.Value{}, nil, fmt.Errorf("%q: map keys are not strings", full)
			}
			if v.IsNil() {
				v.Set(reflect.MakeMap(v.Type()))
			}
			m, k := v, reflect.ValueOf(name).Convert(v.Type().Key())
			cur := reflect.New(v.Type().Elem()).Elem()
			if old := m.MapIndex(k); old.IsValid() {
				cur.Set(old)
			}
			if i == len(path)-1 {
				return cur, func(nv reflect.Value) { m.SetMapIndex(k, nv) }, nil
			}
			// Nested below a map entry: edit a copy, then store it back.
			inner, set, err := lookup(cur, path[i+1:], full)
			if err != nil {
				return reflect.Value{}, nil, err
			}
			return inner, func(nv reflect.Value) {
				if set != nil {
					set(nv)
				} else {
					inner.Set(nv)
				}
				m.SetMapIndex(k, cur)
			}, nil
		case reflect.Slice, reflect.Array:
			// The list's own key: full up to this element (path may be
			// the tail of full below a map entry).
			parts := strings.Split(full, ".")
			list := strings.Join(parts[:len(parts)-len(path)+i], ".")
			idx, err := strconv.Atoi(name)
			if err != nil || idx < 0 {
				return reflect.Value{}, nil, fmt.Errorf("%q: %s is a list; address an element by its index from 0 (%s.0), not %q", full, list, list, name)
			}
			if idx >= v.Len() {
				switch v.Len() {
				case 0:
					return reflect.Value{}, nil, fmt.Errorf("%q: index %d is out of range: %s is empty; set the whole list (%s=[...])", full, idx, list, list)
				case 1:
					return reflect.Value{}, nil, fmt.Errorf("%q: index %d is out of range: %s has 1 element (index 0); set the whole list (%s=[...]) to add more", full, idx, list, list)
				}
				return reflect.Value{}, nil, fmt.Errorf("%q: index %d is out of range: %s has %d elements (indexes 0 to %d); set the whole list (%s=[...]) to add more", full, idx, list, v.Len(), v.Len()-1, list)
			}
			if v.Kind() == reflect.Slice && v.CanSet() {
				// Copy before writing, so a list shared with another value
				// (the defaults handed to Load) keeps its elements.
				c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
				reflect.Copy(c, v)
				v.Set(c)
			}
			v = v.Index(idx)
		default:
			return reflect.Value{}, nil, fmt.Errorf("%q: %q is not a field of a mapping (it has type %s)", full, name, v.Type())
		}
	}
	return v, nil, nil
}

// Marshal renders a recipe struct as YAML (for saving the resolved recipe
// with a run). Decoding the result gives the same struct back.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf, yaml.Indent(2), yaml.IndentSequence(true), yaml.CustomMarshaler[float64](marshalFloat))
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode recipe: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode recipe: %w", err)
	}
	return buf.Bytes(), nil
}

// marshalFloat writes a float so that the YAML parser reads it back as a
// number: exponent forms get a decimal point ("1.0e-05", not "1e-05",
// which YAML 1.1 parsers read as a string).
func marshalFloat(v float64) ([]byte, error) {
	switch {
	case math.IsInf(v, 1):
		return []byte(".inf"), nil
	case math.IsInf(v, -1):
		return []byte("-.inf"), nil
	case math.IsNaN(v):
		return []byte(".nan"), nil
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	mant, exp, hasExp := strings.Cut(s, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	if hasExp {
		return []byte(mant + "e" + exp), nil
	}
	return []byte(mant), nil
}
