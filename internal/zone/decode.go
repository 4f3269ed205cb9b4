package zone

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Meta records where a mapping and each of its fields were written, so that
// validation can point at the exact line and column of a bad value.
type Meta struct {
	At     Pos
	Path   string
	fields map[string]Pos
}

// PosOf is the position of a field's value, or of the mapping when the field is absent.
func (m *Meta) PosOf(field string) Pos {
	if p, ok := m.fields[field]; ok {
		return p
	}
	return m.At
}

// PathOf is the dotted path of a field, as printed in errors.
func (m *Meta) PathOf(field string) string {
	if m.Path == "" {
		return field
	}
	return m.Path + "." + field
}

// Has reports whether the field was written in the file.
func (m *Meta) Has(field string) bool {
	_, ok := m.fields[field]
	return ok
}

// maxNodes bounds the work one file can cause, including through YAML aliases
// (a "billion laughs" file must fail, not exhaust memory).
const maxNodes = 2_000_000

// decoder maps a yaml.Node tree onto design structs by their `yaml` tags,
// reporting every unknown key and wrong type with its position instead of
// stopping at the first. yaml.v3's own decoder gives lines but no columns and
// no field paths, which is why this walker exists.
type decoder struct {
	file  string
	errs  *problems
	nodes int
}

// nodeUnmarshaler lets a type accept several shapes (a scalar or a mapping).
type nodeUnmarshaler interface {
	unmarshalNode(d *decoder, n *yaml.Node, path string)
}

var metaType = reflect.TypeOf(Meta{})

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode; depth++ {
		if depth > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unexpected value"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = d.resolve(n)
	if n == nil {
		return
	}
	d.nodes++
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.errs.add(d.pos(n), path, "remove YAML aliases that expand recursively", "the file expands to more than %d values", maxNodes)
		}
		return
	}
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(nodeUnmarshaler); ok {
			u.unmarshalNode(d, n, path)
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.String:
		if s, ok := d.scalar(n, path, "write a single value"); ok {
			v.SetString(s)
		}
	case reflect.Int, reflect.Int64:
		if s, ok := d.scalar(n, path, "write a whole number"); ok {
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				d.errs.add(d.pos(n), path, "write a whole number", "%q is not a whole number", s)
				return
			}
			v.SetInt(i)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path, "write true or false"); ok {
			b, err := strconv.ParseBool(s)
			if err != nil {
				d.errs.add(d.pos(n), path, "write true or false", "%q is not true or false", s)
				return
			}
			v.SetBool(b)
		}
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	default:
		d.errs.add(d.pos(n), path, "", "internal: cannot decode into %s", v.Type())
	}
}

func (d *decoder) scalar(n *yaml.Node, path, fix string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errs.add(d.pos(n), path, fix, "expected a single value, found %s", kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	// A single value where a list is expected is a list of one: `classes: base`.
	if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
		v.Set(reflect.Append(v, reflect.ValueOf(n.Value).Convert(v.Type().Elem())))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errs.add(d.pos(n), path, "write a list (one `- item` per line, or [a, b])", "expected a list, found %s", kindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(out)
}

// decodeMap handles free-form maps (role parameters): their values are the user's own.
func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errs.add(d.pos(n), path, "write `key: value` pairs", "expected a mapping, found %s", kindName(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k == nil || val == nil {
			continue
		}
		if seen[k.Value] {
			d.errs.add(d.pos(k), path+"."+k.Value, "remove one of them", "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		elem := reflect.New(v.Type().Elem()).Elem()
		if v.Type().Elem().Kind() == reflect.Interface {
			var x any
			if err := val.Decode(&x); err != nil {
				d.errs.add(d.pos(val), path+"."+k.Value, "", "%v", err)
				continue
			}
			if x != nil {
				elem.Set(reflect.ValueOf(x))
			}
		} else {
			d.decode(val, elem, path+"."+k.Value)
		}
		v.SetMapIndex(reflect.ValueOf(k.Value), elem)
	}
}

type structField struct {
	key   string
	index int
	keyed bool // a mapping of name -> struct, decoded into a slice with each Name set from its key
}

func fieldsOf(t reflect.Type) (fields []structField, meta int) {
	meta = -1
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == metaType {
			meta = i
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fields = append(fields, structField{key: name, index: i, keyed: opts == "keyed"})
	}
	return fields, meta
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	fields, metaIdx := fieldsOf(v.Type())
	var meta *Meta
	if metaIdx >= 0 {
		meta = v.Field(metaIdx).Addr().Interface().(*Meta)
		meta.At = d.pos(n)
		meta.Path = path
		meta.fields = map[string]Pos{}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errs.add(d.pos(n), path, "write `key: value` pairs", "expected a mapping, found %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k == nil || val == nil {
			continue
		}
		fieldPath := k.Value
		if path != "" {
			fieldPath = path + "." + k.Value
		}
		if seen[k.Value] {
			d.errs.add(d.pos(k), fieldPath, "remove one of them", "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		var f *structField
		for j := range fields {
			if fields[j].key == k.Value {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			d.errs.add(d.pos(k), fieldPath, suggest(k.Value, fields), "unknown key %q", k.Value)
			continue
		}
		if meta != nil {
			meta.fields[k.Value] = d.pos(val)
			// Entries of free-form maps (templates, params) get positions of
			// their own, as "field.key", so that a bad entry is reported at its line.
			if v.Field(f.index).Kind() == reflect.Map && val.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(val.Content); j += 2 {
					meta.fields[k.Value+"."+val.Content[j].Value] = d.pos(val.Content[j+1])
				}
			}
		}
		if f.keyed {
			d.decodeKeyed(val, v.Field(f.index), fieldPath)
			continue
		}
		d.decode(val, v.Field(f.index), fieldPath)
	}
	// Nested sections left out of the file still need a position for their errors.
	if meta != nil {
		for _, f := range fields {
			fv := v.Field(f.index)
			if fv.Kind() != reflect.Struct {
				continue
			}
			if m := fv.FieldByName("Meta"); m.IsValid() && m.Type() == metaType {
				nested := m.Addr().Interface().(*Meta)
				if nested.At.File == "" {
					nested.At, nested.Path = meta.At, meta.PathOf(f.key)
				}
			}
		}
	}
}

// decodeKeyed reads `name: {...}` mappings into a slice of *T whose Name is the key,
// keeping the file's order (Go maps would lose it, and with it stable output).
func (d *decoder) decodeKeyed(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errs.add(d.pos(n), path, "write one `name:` entry per item", "expected a mapping of names, found %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k == nil || val == nil {
			continue
		}
		itemPath := path + "." + k.Value
		if seen[k.Value] {
			d.errs.add(d.pos(k), itemPath, "give each entry its own name", "duplicate name %q", k.Value)
			continue
		}
		seen[k.Value] = true
		elem := reflect.New(v.Type().Elem().Elem())
		d.decode(val, elem.Elem(), itemPath)
		elem.Elem().FieldByName("Name").SetString(k.Value)
		if m := elem.Elem().FieldByName("Meta"); m.IsValid() {
			meta := m.Addr().Interface().(*Meta)
			meta.At = d.pos(k)
			if meta.fields == nil {
				meta.fields = map[string]Pos{}
			}
			meta.Path = itemPath
		}
		v.Set(reflect.Append(v, elem))
	}
}

func suggest(key string, fields []structField) string {
	known := make([]string, len(fields))
	best, bestDist := "", 3
	for i, f := range fields {
		known[i] = f.key
		if dist := editDistance(key, f.key); dist < bestDist {
			best, bestDist = f.key, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	sort.Strings(known)
	return "known keys: " + strings.Join(known, ", ")
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
