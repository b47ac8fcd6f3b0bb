package recipes

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// docKey drops list indexes from a key.
func docKey(key string) string {
	parts := strings.Split(key, ".")
	out := parts[:0]
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err == nil {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ".")
}

// Explain describes key of tool's recipe: every key equal to it or below
// it, one per line, with its value in cfg (the resolved recipe; list
// elements' keys show no value) and its doc. key "" or "all" lists every
// key. An unknown key is an error that suggests near ones.
func Explain(tool string, cfg any, key string) (string, error) {
	table := docTable(tool)
	if table == nil {
		return "", fmt.Errorf("no recipe documentation for tool %q", tool)
	}
	k := docKey(key)
	if k == "all" {
		k = ""
	}
	var keys []string
	for name := range table {
		if k == "" || name == k || strings.HasPrefix(name, k+".") {
			keys = append(keys, name)
		}
	}
	if len(keys) == 0 {
		var near []string
		last := k[strings.LastIndexByte(k, '.')+1:]
		for name := range table {
			if strings.Contains(name, last) {
				near = append(near, name)
			}
		}
		slices.Sort(near)
		msg := fmt.Sprintf("%s has no recipe key %q", tool, key)
		if len(near) > 0 {
			msg += "; did you mean " + strings.Join(near[:min(len(near), 8)], ", ")
		}
		return "", fmt.Errorf("%s (-explain all lists every key)", msg)
	}
	slices.Sort(keys)
	var b strings.Builder
	root := reflect.ValueOf(cfg)
	for _, name := range keys {
		b.WriteString(name)
		if v, ok := valueAt(root, name); ok {
			b.WriteString(" = " + v)
		}
		b.WriteString("\n    " + table[name] + "\n")
	}
	return b.String(), nil
}

// valueAt renders the value at the dotted key below v, when the key holds
// a scalar or a list of scalars and no list of structs lies on the way.
func valueAt(v reflect.Value, key string) (string, bool) {
	for _, name := range strings.Split(key, ".") {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return "null", true
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return "", false
		}
		f, ok := fieldByYAMLName(v, name)
		if !ok {
			return "", false
		}
		v = f
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "null", true
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		return "", false
	case reflect.Slice, reflect.Map:
		if t := v.Type().Elem(); t.Kind() == reflect.Struct || t.Kind() == reflect.Pointer {
			return "", false
		}
	}
	b, err := yaml.MarshalWithOptions(v.Interface(), yaml.Flow(true), yaml.CustomMarshaler[float64](marshalFloat))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// MarshalDocumented is Marshal with each key's doc (tool's, see Doc) as a
// comment above it, so a printed recipe explains itself.
func MarshalDocumented(tool string, v any) ([]byte, error) {
	table := docTable(tool)
	cm := yaml.CommentMap{}
	var walk func(rv reflect.Value, path, key string)
	walk = func(rv reflect.Value, path, key string) {
		for rv.Kind() == reflect.Pointer {
			if rv.IsNil() {
				return
			}
			rv = rv.Elem()
		}
		switch rv.Kind() {
		case reflect.Struct:
			t := rv.Type()
			for i := range t.NumField() {
				name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
				if name == "" || name == "-" || !t.Field(i).IsExported() {
					continue
				}
				k := name
				if key != "" {
					k = key + "." + name
				}
				p := path + "." + name
				if d := table[k]; d != "" {
					cm[p] = []*yaml.Comment{yaml.HeadComment(" " + d)}
				}
				walk(rv.Field(i), p, k)
			}
		case reflect.Slice, reflect.Array:
			for i := range rv.Len() {
				walk(rv.Index(i), fmt.Sprintf("%s[%d]", path, i), key)
			}
		}
	}
	walk(reflect.ValueOf(v), "$", "")
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf, yaml.Indent(2), yaml.IndentSequence(true), yaml.CustomMarshaler[float64](marshalFloat), yaml.WithComment(cm))
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode recipe: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode recipe: %w", err)
	}
	return buf.Bytes(), nil
}
