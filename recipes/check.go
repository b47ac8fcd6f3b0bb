package recipes

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

var durationType = reflect.TypeFor[time.Duration]()

// posError formats a message at the position of node's token.
func posError(node ast.Node, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if node != nil {
		if tk := node.GetToken(); tk != nil && tk.Position != nil {
			return fmt.Errorf("[%d:%d] %s", tk.Position.Line, tk.Position.Column, msg)
		}
	}
	return fmt.Errorf("%s", msg)
}

// check walks node against type t and reports the first key or value that
// strict decoding must reject. where is the dotted key path, for messages.
func check(node ast.Node, t reflect.Type, where string) error {
	for t.Kind() == reflect.Pointer {
		if _, ok := node.(*ast.NullNode); ok {
			return nil
		}
		t = t.Elem()
	}
	switch n := node.(type) {
	case *ast.AnchorNode, *ast.AliasNode, *ast.MergeKeyNode:
		return posError(node, "anchors, aliases and merge keys are not allowed in recipes (at %s); write the values out", label(where))
	case *ast.TagNode:
		return posError(node, "YAML tags are not allowed in recipes (at %s)", label(where))
	case *ast.CommentGroupNode:
		return nil
	case *ast.MappingValueNode:
		return check(&ast.MappingNode{BaseNode: n.BaseNode, Values: []*ast.MappingValueNode{n}}, t, where)
	}
	if t == durationType {
		switch node.(type) {
		case *ast.StringNode, *ast.IntegerNode:
			return nil
		}
		return posError(node, "%s wants a duration such as 90s or 5m, got %s", label(where), describe(node))
	}
	if t.Kind() == reflect.Interface {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := node.(*ast.MappingNode)
		if !ok {
			return posError(node, "%s wants a mapping of keys, got %s", label(where), describe(node))
		}
		return eachKey(m, func(key string, mv *ast.MappingValueNode) error {
			f, ok := structField(t, key)
			if !ok {
				return posError(mv.Key, "unknown field %q", key)
			}
			return check(mv.Value, f.Type, join(where, key))
		})
	case reflect.Map:
		if _, ok := node.(*ast.NullNode); ok {
			return nil
		}
		m, ok := node.(*ast.MappingNode)
		if !ok {
			return posError(node, "%s wants a mapping, got %s", label(where), describe(node))
		}
		return eachKey(m, func(key string, mv *ast.MappingValueNode) error {
			if t.Key().Kind() != reflect.String {
				return posError(mv.Key, "%s: only string map keys are supported", label(where))
			}
			return check(mv.Value, t.Elem(), join(where, key))
		})
	case reflect.Slice, reflect.Array:
		if _, ok := node.(*ast.NullNode); ok && t.Kind() == reflect.Slice {
			return nil
		}
		s, ok := node.(*ast.SequenceNode)
		if !ok {
			return posError(node, "%s wants a list, got %s", label(where), describe(node))
		}
		if t.Kind() == reflect.Array && len(s.Values) != t.Len() {
			return posError(node, "%s wants exactly %d items, got %d", label(where), t.Len(), len(s.Values))
		}
		for i, v := range s.Values {
			if err := check(v, t.Elem(), fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Bool:
		if _, ok := node.(*ast.BoolNode); !ok {
			return posError(node, "%s wants true or false, got %s", label(where), describe(node))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := node.(*ast.IntegerNode)
		if !ok {
			return posError(node, "%s wants an integer, got %s", label(where), describe(node))
		}
		if !fitsInt(n.Value, t) {
			return posError(node, "%s: %v does not fit in %s", label(where), n.Value, t)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := node.(*ast.IntegerNode)
		if !ok {
			return posError(node, "%s wants a non-negative integer, got %s", label(where), describe(node))
		}
		if !fitsUint(n.Value, t) {
			return posError(node, "%s: %v does not fit in %s", label(where), n.Value, t)
		}
	case reflect.Float32, reflect.Float64:
		switch n := node.(type) {
		case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		case *ast.StringNode:
			// YAML 1.1 reads an exponent without a decimal point (1e-3)
			// as a string; accept it unquoted, as YAML 1.2 does.
			if _, err := strconv.ParseFloat(n.Value, 64); err != nil || n.Token == nil || n.Token.Type != token.StringType {
				return posError(node, "%s wants a number, got %s", label(where), describe(node))
			}
		default:
			return posError(node, "%s wants a number, got %s", label(where), describe(node))
		}
	case reflect.String:
		switch node.(type) {
		case *ast.StringNode, *ast.LiteralNode:
		default:
			return posError(node, "%s wants a string, got %s; quote it (\"...\") if it is meant as text", label(where), describe(node))
		}
	default:
		return posError(node, "%s has type %s, which recipes do not support", label(where), t)
	}
	return nil
}

func fitsInt(v any, t reflect.Type) bool {
	switch x := v.(type) {
	case int64:
		return !reflect.Zero(t).OverflowInt(x)
	case uint64:
		return x <= 1<<63-1 && !reflect.Zero(t).OverflowInt(int64(x))
	}
	return false
}

func fitsUint(v any, t reflect.Type) bool {
	switch x := v.(type) {
	case int64:
		return x >= 0 && !reflect.Zero(t).OverflowUint(uint64(x))
	case uint64:
		return !reflect.Zero(t).OverflowUint(x)
	}
	return false
}

func describe(node ast.Node) string {
	switch n := node.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.NullNode:
		return "null"
	case *ast.BoolNode:
		return fmt.Sprintf("the boolean %v", n.Value)
	case *ast.IntegerNode:
		return fmt.Sprintf("the integer %v", n.Value)
	case *ast.FloatNode:
		return fmt.Sprintf("the number %v", n.Value)
	case *ast.StringNode:
		return fmt.Sprintf("the string %q", n.Value)
	}
	return strings.ToLower(node.Type().String())
}

func label(where string) string {
	if where == "" {
		return "the recipe"
	}
	return fmt.Sprintf("%q", where)
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

func keyString(k ast.MapKeyNode) string {
	if s, ok := k.(ast.ScalarNode); ok {
		return fmt.Sprint(s.GetValue())
	}
	return k.String()
}

// yamlName returns the key a struct field is decoded from, and whether it
// is inlined or skipped.
func yamlName(f reflect.StructField) (name string, inline, skip bool) {
	if !f.IsExported() {
		return "", false, true
	}
	tag := f.Tag.Get("yaml")
	if tag == "-" {
		return "", false, true
	}
	parts := strings.Split(tag, ",")
	for _, p := range parts[1:] {
		if p == "inline" {
			return "", true, false
		}
	}
	if parts[0] != "" {
		return parts[0], false, false
	}
	return strings.ToLower(f.Name), false, false
}

// structField finds the field of t decoded from key, looking into inlined
// structs.
func structField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline, skip := yamlName(f)
		if skip {
			continue
		}
		if inline {
			if g, ok := structField(f.Type, key); ok {
				return g, true
			}
			continue
		}
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldByYAMLName(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline, skip := yamlName(f)
		if skip {
			continue
		}
		if inline {
			if g, ok := fieldByYAMLName(v.Field(i), key); ok {
				return g, true
			}
			continue
		}
		if name == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, inline, skip := yamlName(f)
		switch {
		case skip:
		case inline:
			names = append(names, fieldNames(f.Type)...)
		default:
			names = append(names, name)
		}
	}
	return names
}

// eachKey calls fn for every key of a mapping in order, rejecting a key
// that appears twice.
func eachKey(m *ast.MappingNode, fn func(key string, mv *ast.MappingValueNode) error) error {
	seen := map[string]bool{}
	for _, mv := range m.Values {
		key := keyString(mv.Key)
		if seen[key] {
			return posError(mv.Key, "mapping key %q defined twice", key)
		}
		seen[key] = true
		if err := fn(key, mv); err != nil {
			return err
		}
	}
	return nil
}
