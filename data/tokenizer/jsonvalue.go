package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a JSON Value.
type Kind uint8

// JSON value kinds.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

// Value is a JSON value that keeps the order of object keys, as Python
// dicts do, so that chat rendering can reproduce the template's
// json.dumps output byte for byte.
type Value struct {
	Kind   Kind
	Bool   bool
	Num    string // the number as written in the JSON text
	Str    string
	Elems  []Value  // Array
	Keys   []string // Object keys, in order
	Fields []Value  // Object values, parallel to Keys
}

// Get returns the field of an object, or nil.
func (v *Value) Get(key string) *Value {
	if v == nil || v.Kind != Object {
		return nil
	}
	for i, k := range v.Keys {
		if k == key {
			return &v.Fields[i]
		}
	}
	return nil
}

// stringValue returns a String value.
func stringValue(s string) Value { return Value{Kind: String, Str: s} }

// UnmarshalJSON parses any JSON value, keeping key order.
func (v *Value) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	x, err := decodeValue(dec, 0)
	if err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	*v = x
	return nil
}

// MarshalJSON writes the value compactly, keys in order, numbers as
// written in the input.
func (v Value) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	v.dump(&b, -1, 0, false)
	return []byte(b.String()), nil
}

const maxJSONDepth = 200

func decodeValue(dec *json.Decoder, depth int) (Value, error) {
	if depth > maxJSONDepth {
		return Value{}, fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return Value{}, err
	}
	switch t := tok.(type) {
	case nil:
		return Value{Kind: Null}, nil
	case bool:
		return Value{Kind: Bool, Bool: t}, nil
	case json.Number:
		return Value{Kind: Number, Num: string(t)}, nil
	case string:
		return Value{Kind: String, Str: t}, nil
	case json.Delim:
		switch t {
		case '[':
			v := Value{Kind: Array}
			for dec.More() {
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return Value{}, err
				}
				v.Elems = append(v.Elems, e)
			}
			_, err := dec.Token()
			return v, err
		case '{':
			v := Value{Kind: Object}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return Value{}, err
				}
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return Value{}, err
				}
				// Python dicts keep the last value of a repeated key at
				// the first key's position.
				if old := v.Get(kt.(string)); old != nil {
					*old = e
					continue
				}
				v.Keys = append(v.Keys, kt.(string))
				v.Fields = append(v.Fields, e)
			}
			_, err := dec.Token()
			return v, err
		}
	}
	return Value{}, fmt.Errorf("unexpected JSON token %v", tok)
}

// pyDump writes v as Python's json.dumps(v, ensure_ascii=False,
// indent=indent) does (indent < 0: None, the compact ", " / ": " form).
func (v *Value) pyDump(b *strings.Builder, indent, level int) { v.dump(b, indent, level, true) }

// dump writes v in json.dumps layout; py formats numbers as Python would
// print the int or float json.loads makes of them, otherwise numbers are
// written as they were read.
func (v *Value) dump(b *strings.Builder, indent, level int, py bool) {
	switch v.Kind {
	case Null:
		b.WriteString("null")
	case Bool:
		if v.Bool {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case Number:
		if py {
			b.WriteString(pyNumber(v.Num, true))
		} else {
			b.WriteString(v.Num)
		}
	case String:
		pyQuote(b, v.Str)
	case Array, Object:
		n := len(v.Elems)
		open, close := "[", "]"
		if v.Kind == Object {
			n, open, close = len(v.Keys), "{", "}"
		}
		if n == 0 {
			b.WriteString(open + close)
			return
		}
		b.WriteString(open)
		for i := range n {
			if i > 0 {
				if indent >= 0 {
					b.WriteString(",")
				} else {
					b.WriteString(", ")
				}
			}
			if indent >= 0 {
				b.WriteString("\n" + strings.Repeat(" ", indent*(level+1)))
			}
			if v.Kind == Object {
				pyQuote(b, v.Keys[i])
				b.WriteString(": ")
				v.Fields[i].dump(b, indent, level+1, py)
			} else {
				v.Elems[i].dump(b, indent, level+1, py)
			}
		}
		if indent >= 0 {
			b.WriteString("\n" + strings.Repeat(" ", indent*level))
		}
		b.WriteString(close)
	}
}

// pyStr is Python's str() of the value, what {{ value }} prints for
// scalars.
func (v *Value) pyStr() string {
	switch v.Kind {
	case Null:
		return "None"
	case Bool:
		if v.Bool {
			return "True"
		}
		return "False"
	case Number:
		return pyNumber(v.Num, false)
	case String:
		return v.Str
	}
	var b strings.Builder
	v.pyDump(&b, -1, 0)
	return b.String()
}

// pyQuote writes s as a JSON string the way Python's json module does with
// ensure_ascii=False: only '"', '\\' and control characters are escaped.
func pyQuote(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// pyNumber formats a JSON number literal as Python prints the int or float
// that json.loads makes of it: integers exactly, floats as repr() (json
// writes infinities as Infinity, str() as inf).
func pyNumber(lit string, forJSON bool) string {
	if !strings.ContainsAny(lit, ".eE") {
		if lit == "-0" {
			return "0"
		}
		return lit
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !math.IsInf(f, 0) {
		return lit
	}
	if math.IsInf(f, 0) {
		s := "inf"
		if forJSON {
			s = "Infinity"
		}
		if f < 0 {
			return "-" + s
		}
		return s
	}
	return pyFloatRepr(f)
}

// pyFloatRepr is Python's repr(float): the shortest round-tripping digits,
// positional notation for decimal exponents -4..15 (with ".0" when
// integral), scientific notation otherwise.
func pyFloatRepr(f float64) string {
	e := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	if exp < -4 || exp >= 16 {
		return sign + e
	}
	digits := strings.Replace(mant, ".", "", 1)
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}
