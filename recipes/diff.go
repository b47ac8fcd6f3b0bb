package recipes

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Change is one field that differs between two recipes.
type Change struct {
	Key      string // recipe key path, e.g. "optim.lr" or "stages[1].steps"
	Old, New string
}

func (c Change) String() string { return fmt.Sprintf("%s: %s → %s", c.Key, c.Old, c.New) }

// Diff lists the fields of b that differ from a, by recipe key (YAML
// names joined by dots, list elements as key[i]); a and b are values of
// the same recipe struct type.
func Diff(a, b any) []Change {
	var out []Change
	diffValue("", reflect.ValueOf(a), reflect.ValueOf(b), &out)
	return out
}

func diffValue(key string, a, b reflect.Value, out *[]Change) {
	if a.Kind() == reflect.Pointer {
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				*out = append(*out, Change{Key: key, Old: show(a), New: show(b)})
			}
			return
		}
		a, b = a.Elem(), b.Elem()
	}
	switch a.Kind() {
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				name = strings.ToLower(t.Field(i).Name)
			}
			if key != "" {
				name = key + "." + name
			}
			diffValue(name, a.Field(i), b.Field(i), out)
		}
	case reflect.Slice:
		if a.Type().Elem().Kind() != reflect.Struct {
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				*out = append(*out, Change{Key: key, Old: show(a), New: show(b)})
			}
			return
		}
		for i := range max(a.Len(), b.Len()) {
			k := fmt.Sprintf("%s[%d]", key, i)
			switch {
			case i >= a.Len():
				*out = append(*out, Change{Key: k, Old: "(none)", New: show(b.Index(i))})
			case i >= b.Len():
				*out = append(*out, Change{Key: k, Old: show(a.Index(i)), New: "(none)"})
			default:
				diffValue(k, a.Index(i), b.Index(i), out)
			}
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, Change{Key: key, Old: show(a), New: show(b)})
		}
	}
}

func show(v reflect.Value) string {
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return "null"
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprint(v.Interface())
	}
	return string(b)
}
