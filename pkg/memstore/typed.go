package memstore

import (
	"reflect"
	"strings"
	"sync"
	"time"

	"gocloud.dev/docstore/driver"
)

// The typed representation: a document of a flat struct type is kept as a
// copy of the struct, and read back into the same type by copying fields.
// A struct type is flat when every field docstore sees is a string, bool,
// number, time.Time, []byte or []string (or a named type of one), without
// omitempty, plus at most one interface field: the revision field, whose
// value the store keeps beside the copy. Anything else takes the generic
// path (codec.go), so the two agree on what a document holds.

// typeInfo describes a flat struct type, or says it is not one.
type typeInfo struct {
	flat   bool
	typ    reflect.Type
	fields []typedField
	byName map[string]int // field name → index in fields
	rev    []int          // index path of the revision field, nil if none
	// whole: every field of the type can be set through reflection (no
	// unexported ones), so a document is copied in one step and then
	// fixed up: hidden (exported fields docstore does not see) and the
	// revision zeroed, the slices (indexes into fields) copied.
	whole  bool
	hidden [][]int
	slices []int
}

type typedField struct {
	name  string
	index []int
	kind  reflect.Kind
	isTime,
	isBytes,
	isStrings bool
}

var (
	typeOfTime    = reflect.TypeFor[time.Time]()
	typeOfStrings = reflect.TypeFor[[]string]()
)

// typeCache maps (reflect.Type, revision field) to *typeInfo.
var typeCache sync.Map

type typeKey struct {
	t   reflect.Type
	rev string
}

// typeOf returns the typeInfo of the struct behind doc (a driver.Document
// of a *struct), computing it once per type and revision field.
func typeOf(doc driver.Document, revField string) *typeInfo {
	t := reflect.TypeOf(doc.Origin).Elem()
	k := typeKey{t, revField}
	if ti, ok := typeCache.Load(k); ok {
		return ti.(*typeInfo)
	}
	ti := buildType(t, revField, doc.FieldNames())
	v, _ := typeCache.LoadOrStore(k, ti)
	return v.(*typeInfo)
}

// buildType lists t's fields as docstore names them. It handles plain
// fields, "-", renames and untagged embedded structs; whatever it does not
// handle, or any disagreement with docstore's own field list (names),
// makes the type not flat.
func buildType(t reflect.Type, revField string, names []string) *typeInfo {
	ti := &typeInfo{typ: t, byName: map[string]int{}, whole: true}
	if !collectFields(t, nil, ti, revField) {
		return &typeInfo{typ: t}
	}
	all := len(ti.fields)
	if ti.rev != nil {
		all++
	}
	if all != len(names) {
		return &typeInfo{typ: t}
	}
	for _, n := range names {
		if _, ok := ti.byName[n]; !ok && !(n == revField && ti.rev != nil) {
			return &typeInfo{typ: t}
		}
	}
	ti.flat = true
	return ti
}

func collectFields(t reflect.Type, prefix []int, ti *typeInfo, revField string) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("docstore")
		name, opts, _ := strings.Cut(tag, ",")
		if !f.IsExported() {
			ti.whole = false // reflection cannot set it, nor anything under it
		}
		if tag == "-" {
			if f.IsExported() {
				ti.hidden = append(ti.hidden, append(append([]int(nil), prefix...), i))
			}
			continue
		}
		if opts != "" {
			return false // omitempty and friends: leave to the generic path
		}
		index := append(append([]int(nil), prefix...), i)
		if f.Anonymous {
			if name != "" || f.Type.Kind() != reflect.Struct {
				return false
			}
			if !collectFields(f.Type, index, ti, revField) {
				return false
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if !hasTag || name == "" {
			name = f.Name
		}
		if _, dup := ti.byName[name]; dup {
			return false
		}
		if name == revField {
			if f.Type.Kind() != reflect.Interface || f.Type.NumMethod() != 0 || ti.rev != nil {
				return false
			}
			ti.rev = index
			continue
		}
		tf := typedField{name: name, index: index, kind: f.Type.Kind()}
		switch {
		case f.Type == typeOfTime:
			tf.isTime = true
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Uint8:
			tf.isBytes = true
		case f.Type == typeOfStrings:
			tf.isStrings = true
		default:
			switch f.Type.Kind() {
			case reflect.String, reflect.Bool,
				reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
				reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
				reflect.Float32, reflect.Float64:
			default:
				return false
			}
		}
		if tf.isBytes || tf.isStrings {
			ti.slices = append(ti.slices, len(ti.fields))
		}
		ti.byName[name] = len(ti.fields)
		ti.fields = append(ti.fields, tf)
	}
	return true
}

// copyField copies field f from src to dst (both addressable struct
// values of the type), giving dst its own slices.
func copyField(dst, src reflect.Value, f *typedField) {
	sv := src.FieldByIndex(f.index)
	dv := dst.FieldByIndex(f.index)
	switch {
	case f.isBytes:
		if sv.IsNil() {
			dv.SetZero()
		} else {
			dv.SetBytes(append([]byte{}, sv.Bytes()...))
		}
	case f.isStrings:
		if sv.IsNil() {
			dv.SetZero()
		} else {
			s := sv.Interface().([]string)
			dv.Set(reflect.ValueOf(append([]string{}, s...)))
		}
	default:
		dv.Set(sv)
	}
}

// snapshot copies the fields of the struct s into a new value of its type;
// the fields docstore does not see, and the revision, stay zero.
func (ti *typeInfo) snapshot(s reflect.Value) reflect.Value {
	v := reflect.New(ti.typ).Elem()
	if ti.whole {
		v.Set(s)
		for _, h := range ti.hidden {
			v.FieldByIndex(h).SetZero()
		}
		if ti.rev != nil {
			v.FieldByIndex(ti.rev).SetZero()
		}
		ti.ownSlices(v, s)
		return v
	}
	for i := range ti.fields {
		copyField(v, s, &ti.fields[i])
	}
	return v
}

// ownSlices gives dst copies of src's slices, after a whole-struct copy.
func (ti *typeInfo) ownSlices(dst, src reflect.Value) {
	for _, i := range ti.slices {
		copyField(dst, src, &ti.fields[i])
	}
}

// copiesWhole reports whether a stored document can be read into dst in
// one copy: the type allows it, and dst's fields that docstore does not
// see (left as they are by a read) and its revision are zero, as they are
// in a stored copy.
func (ti *typeInfo) copiesWhole(dst reflect.Value) bool {
	if !ti.whole {
		return false
	}
	for _, h := range ti.hidden {
		if !dst.FieldByIndex(h).IsZero() {
			return false
		}
	}
	return ti.rev == nil || dst.FieldByIndex(ti.rev).IsZero()
}

// value returns field f of rec in the generic encoding (what memdocstore
// would have stored), for filters and ordering.
func (f *typedField) value(rec reflect.Value) any {
	v := rec.FieldByIndex(f.index)
	switch {
	case f.isTime:
		return v.Interface()
	case f.isBytes:
		if v.IsNil() {
			return nil
		}
		return v.Bytes()
	case f.isStrings:
		if v.IsNil() {
			return nil
		}
		s := v.Interface().([]string)
		out := make([]any, len(s))
		for i, x := range s {
			out[i] = x
		}
		return out
	}
	switch f.kind {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(v.Uint())
	case reflect.Float32, reflect.Float64:
		return v.Float()
	}
	return nil
}

// toMap returns rec in the generic encoding, with the revision if any.
func (ti *typeInfo) toMap(rec reflect.Value, revField string, rev int64, hasRev bool) map[string]any {
	m := make(map[string]any, len(ti.fields)+1)
	for i := range ti.fields {
		f := &ti.fields[i]
		m[f.name] = f.value(rec)
	}
	if hasRev {
		m[revField] = rev
	}
	return m
}
