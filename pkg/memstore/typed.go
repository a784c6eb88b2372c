package memstore

import (
	"encoding/binary"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"gocloud.dev/docstore/driver"
)

// The typed representation: a document of a flat struct type is packed
// into one []byte, and read back into the same type by writing its fields
// in place. A struct type is flat when every field docstore sees is a
// string, bool, number, time.Time, []byte or []string (or a named type of
// one), without omitempty, plus at most one interface field: the revision
// field, whose value the store keeps beside the packed bytes. Anything
// else takes the generic path (codec.go), so the two agree on what a
// document holds.
//
// The bytes hold no pointers, so the garbage collector marks a stored
// document without scanning it: a store of 100 000 statuses was most of
// what every mark phase scanned when each was a copy of the struct
// (strings and time.Time locations are pointers). The layout: one 8-byte
// slot per field (two for a time), then the strings' and slices' bytes,
// which slots address as offset and length. Strings read back point into
// the bytes, which are never written again once stored, so a read
// allocates only for []byte and []string fields (the reader gets its own).

// typeInfo describes a flat struct type, or says it is not one.
type typeInfo struct {
	flat   bool
	typ    reflect.Type
	fields []typedField
	byName map[string]int // field name → index in fields
	rev    []int          // index path of the revision field, nil if none
	slots  int            // 8-byte slots at the head of a packed document
	// sorted lists the fields in the order of their names, the revision
	// field (the collection's, whether or not the type has one) as -1:
	// the order in which the journal encodes a document (appendPacked).
	sorted []int
}

type typedField struct {
	name string
	off  uintptr // offset in the struct (embedded structs are inline)
	slot int
	kind reflect.Kind
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
	ti := &typeInfo{typ: t, byName: map[string]int{}}
	if !collectFields(t, nil, 0, ti, revField) {
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
	ti.sorted = make([]int, 0, len(ti.fields)+1)
	for i := range ti.fields {
		ti.sorted = append(ti.sorted, i)
	}
	ti.sorted = append(ti.sorted, -1)
	name := func(i int) string {
		if i < 0 {
			return revField
		}
		return ti.fields[i].name
	}
	slices.SortFunc(ti.sorted, func(a, b int) int { return strings.Compare(name(a), name(b)) })
	return ti
}

func collectFields(t reflect.Type, prefix []int, base uintptr, ti *typeInfo, revField string) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("docstore")
		name, opts, _ := strings.Cut(tag, ",")
		if tag == "-" {
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
			if !collectFields(f.Type, index, base+f.Offset, ti, revField) {
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
		tf := typedField{name: name, off: base + f.Offset, slot: ti.slots, kind: f.Type.Kind()}
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
		ti.slots++
		if tf.isTime {
			ti.slots++ // seconds, then nanoseconds and location
		}
		ti.byName[name] = len(ti.fields)
		ti.fields = append(ti.fields, tf)
	}
	return true
}

// Time slots: seconds since the epoch, then nanoseconds with the location
// above them. Only UTC and Local times pack; a document holding a time in
// another location is kept generic, as it was given.
const timeLocal = 1 << 32

// nilSlice marks a nil []byte or []string slot (an empty one has length 0).
const nilSlice = ^uint64(0)

// pack returns the packed form of the struct at p, or false if one of its
// times is in a location other than UTC and Local.
func (ti *typeInfo) pack(p unsafe.Pointer) ([]byte, bool) {
	n := ti.slots * 8
	for i := range ti.fields {
		f := &ti.fields[i]
		fp := unsafe.Add(p, f.off)
		switch {
		case f.isTime:
			if loc := (*time.Time)(fp).Location(); loc != time.UTC && loc != time.Local {
				return nil, false
			}
		case f.isBytes:
			n += len(*(*[]byte)(fp))
		case f.isStrings:
			for _, x := range *(*[]string)(fp) {
				n += 4 + len(x)
			}
		case f.kind == reflect.String:
			n += len(*(*string)(fp))
		}
	}
	buf := make([]byte, n)
	tail := ti.slots * 8
	put := func(slot int, v uint64) { binary.LittleEndian.PutUint64(buf[slot*8:], v) }
	span := func(off, n int) uint64 { return uint64(off) | uint64(n)<<32 }
	for i := range ti.fields {
		f := &ti.fields[i]
		fp := unsafe.Add(p, f.off)
		switch {
		case f.isTime:
			t := *(*time.Time)(fp)
			put(f.slot, uint64(t.Unix()))
			x := uint64(t.Nanosecond())
			if t.Location() == time.Local {
				x |= timeLocal
			}
			put(f.slot+1, x)
		case f.isBytes:
			b := *(*[]byte)(fp)
			if b == nil {
				put(f.slot, nilSlice)
				continue
			}
			put(f.slot, span(tail, len(b)))
			tail += copy(buf[tail:], b)
		case f.isStrings:
			ss := *(*[]string)(fp)
			if ss == nil {
				put(f.slot, nilSlice)
				continue
			}
			put(f.slot, span(tail, len(ss)))
			for _, x := range ss {
				binary.LittleEndian.PutUint32(buf[tail:], uint32(len(x)))
				tail += 4 + copy(buf[tail+4:], x)
			}
		case f.kind == reflect.String:
			x := *(*string)(fp)
			put(f.slot, span(tail, len(x)))
			tail += copy(buf[tail:], x)
		default:
			put(f.slot, f.bits(fp))
		}
	}
	return buf, true
}

// bits returns a scalar field (not a string) as its slot holds it.
func (f *typedField) bits(p unsafe.Pointer) uint64 {
	switch f.kind {
	case reflect.Bool:
		if *(*bool)(p) {
			return 1
		}
		return 0
	case reflect.Int:
		return uint64(*(*int)(p))
	case reflect.Int8:
		return uint64(*(*int8)(p))
	case reflect.Int16:
		return uint64(*(*int16)(p))
	case reflect.Int32:
		return uint64(*(*int32)(p))
	case reflect.Int64:
		return uint64(*(*int64)(p))
	case reflect.Uint:
		return uint64(*(*uint)(p))
	case reflect.Uint8:
		return uint64(*(*uint8)(p))
	case reflect.Uint16:
		return uint64(*(*uint16)(p))
	case reflect.Uint32:
		return uint64(*(*uint32)(p))
	case reflect.Uint64:
		return *(*uint64)(p)
	case reflect.Float32:
		return math.Float64bits(float64(*(*float32)(p)))
	case reflect.Float64:
		return math.Float64bits(*(*float64)(p))
	}
	return 0
}

// setBits writes a scalar field (not a string) from its slot.
func (f *typedField) setBits(p unsafe.Pointer, v uint64) {
	switch f.kind {
	case reflect.Bool:
		*(*bool)(p) = v != 0
	case reflect.Int:
		*(*int)(p) = int(v)
	case reflect.Int8:
		*(*int8)(p) = int8(v)
	case reflect.Int16:
		*(*int16)(p) = int16(v)
	case reflect.Int32:
		*(*int32)(p) = int32(v)
	case reflect.Int64:
		*(*int64)(p) = int64(v)
	case reflect.Uint:
		*(*uint)(p) = uint(v)
	case reflect.Uint8:
		*(*uint8)(p) = uint8(v)
	case reflect.Uint16:
		*(*uint16)(p) = uint16(v)
	case reflect.Uint32:
		*(*uint32)(p) = uint32(v)
	case reflect.Uint64:
		*(*uint64)(p) = v
	case reflect.Float32:
		*(*float32)(p) = float32(math.Float64frombits(v))
	case reflect.Float64:
		*(*float64)(p) = math.Float64frombits(v)
	}
}

func slot(buf []byte, i int) uint64 { return binary.LittleEndian.Uint64(buf[i*8:]) }

// str returns the string at a span of buf, pointing into buf.
func str(buf []byte, off, n int) string {
	if n == 0 {
		return ""
	}
	return unsafe.String(&buf[off], n)
}

func unspan(v uint64) (off, n int) { return int(uint32(v)), int(v >> 32) }

func (f *typedField) time(buf []byte) time.Time {
	x := slot(buf, f.slot+1)
	t := time.Unix(int64(slot(buf, f.slot)), int64(uint32(x)))
	if x&timeLocal == 0 {
		t = t.UTC()
	}
	return t
}

func (f *typedField) strings(buf []byte) []string {
	v := slot(buf, f.slot)
	if v == nilSlice {
		return nil
	}
	off, n := unspan(v)
	out := make([]string, n)
	for i := range out {
		l := int(binary.LittleEndian.Uint32(buf[off:]))
		out[i] = str(buf, off+4, l)
		off += 4 + l
	}
	return out
}

func (f *typedField) bytes(buf []byte) []byte {
	v := slot(buf, f.slot)
	if v == nilSlice {
		return nil
	}
	off, n := unspan(v)
	return append([]byte{}, buf[off:off+n]...)
}

// unpack writes field f of the packed document buf into the struct at p.
func (f *typedField) unpack(buf []byte, p unsafe.Pointer) {
	fp := unsafe.Add(p, f.off)
	switch {
	case f.isTime:
		*(*time.Time)(fp) = f.time(buf)
	case f.isBytes:
		*(*[]byte)(fp) = f.bytes(buf)
	case f.isStrings:
		*(*[]string)(fp) = f.strings(buf)
	case f.kind == reflect.String:
		off, n := unspan(slot(buf, f.slot))
		*(*string)(fp) = str(buf, off, n)
	default:
		f.setBits(fp, slot(buf, f.slot))
	}
}

// value returns field f of the packed document buf in the generic
// encoding (what memdocstore would have stored), for filters, ordering
// and the file.
func (f *typedField) value(buf []byte) any {
	switch {
	case f.isTime:
		return f.time(buf)
	case f.isBytes:
		if b := f.bytes(buf); b != nil {
			return b
		}
		return nil
	case f.isStrings:
		ss := f.strings(buf)
		if ss == nil {
			return nil
		}
		out := make([]any, len(ss))
		for i, x := range ss {
			out[i] = x
		}
		return out
	}
	v := slot(buf, f.slot)
	switch f.kind {
	case reflect.String:
		off, n := unspan(v)
		return str(buf, off, n)
	case reflect.Bool:
		return v != 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(v) // signed kinds are stored sign-extended
	case reflect.Float32, reflect.Float64:
		return math.Float64frombits(v)
	}
	return nil
}

// toMap returns the packed document buf in the generic encoding, with the
// revision if any.
func (ti *typeInfo) toMap(buf []byte, revField string, rev int64, hasRev bool) map[string]any {
	m := make(map[string]any, len(ti.fields)+1)
	for i := range ti.fields {
		f := &ti.fields[i]
		m[f.name] = f.value(buf)
	}
	if hasRev {
		m[revField] = rev
	}
	return m
}

// appendPacked appends the journal's encoding (appendValue) of the packed
// document buf in its generic form, with the revision if hasRev: the
// bytes appendValue(b, ti.toMap(buf, revField, rev, hasRev)) appends,
// without building the map or sorting its keys.
func (ti *typeInfo) appendPacked(b, buf []byte, revField string, rev int64, hasRev bool) []byte {
	n := len(ti.fields)
	if hasRev {
		n++
	}
	b = binary.AppendUvarint(append(b, tagMap), uint64(n))
	key := func(k string) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	for _, i := range ti.sorted {
		if i < 0 {
			if hasRev {
				key(revField)
				b = binary.AppendVarint(append(b, tagInt), rev)
			}
			continue
		}
		f := &ti.fields[i]
		key(f.name)
		b = f.appendValue(b, buf)
	}
	return b
}

// appendValue appends the journal's encoding of f.value(buf).
func (f *typedField) appendValue(b, buf []byte) []byte {
	switch {
	case f.isTime:
		var scratch [16]byte
		tb, err := f.time(buf).AppendBinary(scratch[:0])
		if err != nil { // cannot happen: packed times are UTC or Local
			panic(err)
		}
		b = binary.AppendUvarint(append(b, tagTime), uint64(len(tb)))
		return append(b, tb...)
	case f.isBytes, f.isStrings, f.kind == reflect.String:
		v := slot(buf, f.slot)
		if v == nilSlice && !(f.kind == reflect.String) {
			return append(b, tagNil)
		}
		off, n := unspan(v)
		switch {
		case f.isBytes:
			b = binary.AppendUvarint(append(b, tagBytes), uint64(n))
			return append(b, buf[off:off+n]...)
		case f.isStrings:
			b = binary.AppendUvarint(append(b, tagList), uint64(n))
			for range n {
				l := int(binary.LittleEndian.Uint32(buf[off:]))
				b = binary.AppendUvarint(append(b, tagString), uint64(l))
				b = append(b, buf[off+4:off+4+l]...)
				off += 4 + l
			}
			return b
		}
		b = binary.AppendUvarint(append(b, tagString), uint64(n))
		return append(b, buf[off:off+n]...)
	}
	v := slot(buf, f.slot)
	switch f.kind {
	case reflect.Bool:
		if v != 0 {
			return append(b, tagTrue)
		}
		return append(b, tagFalse)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return binary.AppendVarint(append(b, tagInt), int64(v))
	case reflect.Float32, reflect.Float64:
		return binary.BigEndian.AppendUint64(append(b, tagFloat), v)
	}
	return append(b, tagNil)
}

// unpackJournal returns the packed form of a document journaled by
// appendPacked (or by appendValue of a generic document holding exactly
// ti's fields, with values of their kinds), and its revision (0: none):
// the stored form the document had when it was written, without building
// its generic map. It returns false for anything else (another type's
// document, a value of another kind, a time in another location), which
// the caller loads generic.
func (ti *typeInfo) unpackJournal(v []byte, revField string, sc *unpackScratch) (packed []byte, rev int64, ok bool) {
	if len(v) == 0 || v[0] != tagMap {
		return nil, 0, false
	}
	v = v[1:]
	uvarint := func() (int, bool) {
		n, w := binary.Uvarint(v)
		if w <= 0 || n > uint64(len(v)) {
			return 0, false
		}
		v = v[w:]
		return int(n), true
	}
	bytesOf := func() ([]byte, bool) {
		n, ok := uvarint()
		if !ok || n > len(v) {
			return nil, false
		}
		b := v[:n]
		v = v[n:]
		return b, true
	}
	count, ok := uvarint()
	if !ok || (count != len(ti.fields) && count != len(ti.fields)+1) {
		return nil, 0, false
	}
	hasRev := count == len(ti.fields)+1
	// Values are read in name order; strings and slices go to tail in
	// that order, and then to the packed bytes in field order, as pack
	// lays them out. segs[i] is field i's bytes in tail, and its length
	// (bytes, or strings for a []string).
	slots := resize(sc.slots, ti.slots)
	segs := resize(sc.segs, len(ti.fields))
	tail := sc.tail[:0]
	defer func() { sc.slots, sc.segs, sc.tail = slots, segs, tail }()
	begin := func(i, n int) { segs[i] = [3]int{len(tail), 0, n} }
	for _, i := range ti.sorted {
		if i < 0 {
			if !hasRev {
				continue
			}
			k, ok := bytesOf()
			if !ok || string(k) != revField || len(v) == 0 || v[0] != tagInt {
				return nil, 0, false
			}
			r, w := binary.Varint(v[1:])
			if w <= 0 || r == 0 { // a stored revision is never 0
				return nil, 0, false
			}
			v, rev = v[1+w:], r
			continue
		}
		f := &ti.fields[i]
		k, ok := bytesOf()
		if !ok || string(k) != f.name || len(v) == 0 {
			return nil, 0, false
		}
		tag := v[0]
		v = v[1:]
		switch {
		case f.isTime:
			b, ok := bytesOf()
			var t time.Time
			if tag != tagTime || !ok || t.UnmarshalBinary(b) != nil {
				return nil, 0, false
			}
			x := uint64(t.Nanosecond())
			switch t.Location() {
			case time.UTC:
			case time.Local:
				x |= timeLocal
			default:
				return nil, 0, false
			}
			slots[f.slot], slots[f.slot+1] = uint64(t.Unix()), x
		case (f.isBytes || f.isStrings) && tag == tagNil:
			slots[f.slot] = nilSlice
		case f.isBytes:
			b, ok := bytesOf()
			if tag != tagBytes || !ok {
				return nil, 0, false
			}
			begin(i, len(b))
			tail = append(tail, b...)
			segs[i][1] = len(tail)
		case f.isStrings:
			n, ok := uvarint()
			if tag != tagList || !ok {
				return nil, 0, false
			}
			begin(i, n)
			for range n {
				if len(v) == 0 || v[0] != tagString {
					return nil, 0, false
				}
				v = v[1:]
				s, ok := bytesOf()
				if !ok {
					return nil, 0, false
				}
				tail = binary.LittleEndian.AppendUint32(tail, uint32(len(s)))
				tail = append(tail, s...)
			}
			segs[i][1] = len(tail)
		case f.kind == reflect.String:
			s, ok := bytesOf()
			if tag != tagString || !ok {
				return nil, 0, false
			}
			begin(i, len(s))
			tail = append(tail, s...)
			segs[i][1] = len(tail)
		case f.kind == reflect.Bool:
			if tag != tagTrue && tag != tagFalse {
				return nil, 0, false
			}
			if tag == tagTrue {
				slots[f.slot] = 1
			}
		case f.kind == reflect.Float32 || f.kind == reflect.Float64:
			if tag != tagFloat || len(v) < 8 {
				return nil, 0, false
			}
			bits := binary.BigEndian.Uint64(v)
			v = v[8:]
			if f.kind == reflect.Float32 && math.Float64bits(float64(float32(math.Float64frombits(bits)))) != bits {
				return nil, 0, false
			}
			slots[f.slot] = bits
		default: // an integer kind
			if tag != tagInt {
				return nil, 0, false
			}
			n, w := binary.Varint(v)
			if w <= 0 || !fitsKind(n, f.kind) {
				return nil, 0, false
			}
			v = v[w:]
			slots[f.slot] = uint64(n)
		}
	}
	if len(v) != 0 {
		return nil, 0, false
	}
	base := ti.slots * 8
	packed = make([]byte, base+len(tail))
	off := base
	for i := range ti.fields {
		f := &ti.fields[i]
		if !(f.isBytes || f.isStrings || f.kind == reflect.String) || slots[f.slot] == nilSlice {
			continue
		}
		sg := segs[i]
		slots[f.slot] = uint64(off) | uint64(sg[2])<<32
		off += copy(packed[off:], tail[sg[0]:sg[1]])
	}
	for i, x := range slots {
		binary.LittleEndian.PutUint64(packed[i*8:], x)
	}
	return packed, rev, true
}

// unpackScratch is what unpackJournal works in, reused from one document
// to the next.
type unpackScratch struct {
	slots []uint64
	segs  [][3]int
	tail  []byte
}

// resize returns s with n zero elements, reusing its array if it can.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// fitsKind reports whether the generic integer n is a value of an integer
// field of kind k, as its slot holds it (uint64 values are held as their
// int64 bits).
func fitsKind(n int64, k reflect.Kind) bool {
	switch k {
	case reflect.Int8:
		return n == int64(int8(n))
	case reflect.Int16:
		return n == int64(int16(n))
	case reflect.Int32:
		return n == int64(int32(n))
	case reflect.Uint8:
		return n == int64(uint8(n))
	case reflect.Uint16:
		return n == int64(uint16(n))
	case reflect.Uint32:
		return n == int64(uint32(n))
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return true
	}
	return false
}
