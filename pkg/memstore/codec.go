// Portions of this file are adapted from gocloud.dev/docstore/memdocstore
// (codec.go, mem.go, query.go):
//
// Copyright 2019 The Go Cloud Development Kit Authors
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     https://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package memstore

// The generic representation: a document as a map of encoded values
// (int64, float64, string, bool, []byte, time.Time, nil, []any,
// map[string]any), exactly as memdocstore keeps it.

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"gocloud.dev/docstore/driver"
	"gocloud.dev/gcerrors"

	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// encodeDoc encodes a driver.Document as a storedDoc.
func encodeDoc(doc driver.Document) (map[string]any, error) {
	var e encoder
	if err := doc.Encode(&e); err != nil {
		return nil, err
	}
	return e.val.(map[string]any), nil
}

func encodeValue(v any) (any, error) {
	var e encoder
	if err := driver.Encode(reflect.ValueOf(v), &e); err != nil {
		return nil, err
	}
	return e.val, nil
}

type encoder struct {
	val any
}

func (e *encoder) EncodeNil()            { e.val = nil }
func (e *encoder) EncodeBool(x bool)     { e.val = x }
func (e *encoder) EncodeInt(x int64)     { e.val = x }
func (e *encoder) EncodeUint(x uint64)   { e.val = int64(x) }
func (e *encoder) EncodeBytes(x []byte)  { e.val = x }
func (e *encoder) EncodeFloat(x float64) { e.val = x }
func (e *encoder) EncodeString(x string) { e.val = x }
func (e *encoder) ListIndex(int)         { panic("impossible") }
func (e *encoder) MapKey(string)         { panic("impossible") }

var typeOfGoTime = reflect.TypeFor[time.Time]()

func (e *encoder) EncodeSpecial(v reflect.Value) (bool, error) {
	if v.Type() == typeOfGoTime {
		e.val = v.Interface()
		return true, nil
	}
	return false, nil
}

func (e *encoder) EncodeList(n int) driver.Encoder {
	// All slices and arrays are encoded as []interface{}
	s := make([]any, n)
	e.val = s
	return &listEncoder{s: s}
}

type listEncoder struct {
	s []any
	encoder
}

func (e *listEncoder) ListIndex(i int) { e.s[i] = e.val }

type mapEncoder struct {
	m map[string]any
	encoder
}

func (e *encoder) EncodeMap(n int) driver.Encoder {
	m := make(map[string]any, n)
	e.val = m
	return &mapEncoder{m: m}
}

func (e *mapEncoder) MapKey(k string) { e.m[k] = e.val }

////////////////////////////////////////////////////////////////

// decodeDoc decodes m into ddoc.
func decodeDoc(m map[string]any, ddoc driver.Document, fps [][]string) error {
	var m2 map[string]any
	if len(fps) == 0 {
		m2 = m
	} else {
		// Make a document to decode from that has only the field paths.
		// (We don't need the key field because ddoc must already have it.)
		m2 = map[string]any{}
		for _, fp := range fps {
			val, err := getAtFieldPath(m, fp, false)
			if err != nil {
				if taskdriver.Code(err) == gcerrors.NotFound {
					continue
				}
				return err
			}
			if err := setAtFieldPath(m2, fp, val); err != nil {
				return err
			}
		}
	}
	return ddoc.Decode(decoder{m2})
}

type decoder struct {
	val any
}

func (d decoder) String() string {
	return fmt.Sprint(d.val)
}

func (d decoder) AsNull() bool {
	return d.val == nil
}

func (d decoder) AsBool() (bool, bool) {
	b, ok := d.val.(bool)
	return b, ok
}

func (d decoder) AsString() (string, bool) {
	s, ok := d.val.(string)
	return s, ok
}

func (d decoder) AsInt() (int64, bool) {
	i, ok := d.val.(int64)
	return i, ok
}

func (d decoder) AsUint() (uint64, bool) {
	i, ok := d.val.(int64)
	return uint64(i), ok
}

func (d decoder) AsFloat() (float64, bool) {
	f, ok := d.val.(float64)
	return f, ok
}

func (d decoder) AsBytes() ([]byte, bool) {
	bs, ok := d.val.([]byte)
	return bs, ok
}

func (d decoder) AsInterface() (any, error) {
	return d.val, nil
}

func (d decoder) ListLen() (int, bool) {
	if s, ok := d.val.([]any); ok {
		return len(s), true
	}
	return 0, false
}

func (d decoder) DecodeList(f func(i int, d2 driver.Decoder) bool) {
	for i, e := range d.val.([]any) {
		if !f(i, decoder{e}) {
			return
		}
	}
}

func (d decoder) MapLen() (int, bool) {
	if m, ok := d.val.(map[string]any); ok {
		return len(m), true
	}
	return 0, false
}

func (d decoder) DecodeMap(f func(key string, d2 driver.Decoder, _ bool) bool) {
	for k, v := range d.val.(map[string]any) {
		if !f(k, decoder{v}, true) {
			return
		}
	}
}

func (d decoder) AsSpecial(v reflect.Value) (bool, any, error) {
	if v.Type() == typeOfGoTime {
		return true, d.val, nil
	}
	return false, nil, nil
}

// Add two encoded numbers.
// Since they're encoded, they are either int64 or float64.
// Allow adding a float to an int, producing a float.
// TODO(jba): see how other drivers handle that.
func add(x, y any) (any, error) {
	if x == nil {
		return y, nil
	}
	switch x := x.(type) {
	case int64:
		switch y := y.(type) {
		case int64:
			return x + y, nil
		case float64:
			return float64(x) + y, nil
		default:
			// This shouldn't happen because it should be checked by docstore.
			return nil, taskdriver.Errorf(gcerrors.Internal, "bad increment aount type %T", y)
		}
	case float64:
		switch y := y.(type) {
		case int64:
			return x + float64(y), nil
		case float64:
			return x + y, nil
		default:
			// This shouldn't happen because it should be checked by docstore.
			return nil, taskdriver.Errorf(gcerrors.Internal, "bad increment aount type %T", y)
		}
	default:
		return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "value %v being incremented not int64 or float64", x)
	}
}

// getAtFieldPath gets the value of m at fp. It returns an error if fp is invalid.
// If nested is true compare against all elements of a slice, see AllowNestedSliceQueries
// (see getParentMap).
func getAtFieldPath(m map[string]any, fp []string, nested bool) (result any, err error) {
	var get func(m any, name string) any
	get = func(m any, name string) any {
		switch m := m.(type) {
		case map[string]any:
			return m[name]
		case []any:
			if !nested {
				return nil
			}
			var result []any
			for _, e := range m {
				next := get(e, name)
				// If we have slices within slices the compare function does not see the nested slices.
				// Changing the compare function to be recursive would be more effort than flattening the slices here.
				sliced, ok := next.([]any)
				if ok {
					result = append(result, sliced...)
				} else {
					result = append(result, next)
				}
			}
			return result
		}
		return nil
	}
	result = m
	for _, k := range fp {
		next := get(result, k)
		if next == nil {
			return nil, taskdriver.Errorf(gcerrors.NotFound, "field %s not found", strings.Join(fp, "."))
		}
		result = next
	}
	return result, nil
}

// setAtFieldPath sets m's value at fp to val. It creates intermediate maps as
// needed. It returns an error if a non-final component of fp does not denote a map.
func setAtFieldPath(m map[string]any, fp []string, val any) error {
	m2, err := getParentMap(m, fp, true)
	if err != nil {
		return err
	}
	m2[fp[len(fp)-1]] = val
	return nil
}

// getParentMap returns the map that directly contains the given field path;
// that is, the value of m at the field path that excludes the last component
// of fp. If a non-map is encountered along the way, an InvalidArgument error is
// returned. If nil is encountered, nil is returned unless create is true, in
// which case a map is added at that point.
func getParentMap(m map[string]any, fp []string, create bool) (map[string]any, error) {
	var ok bool
	for _, k := range fp[:len(fp)-1] {
		if m[k] == nil {
			if !create {
				return nil, nil
			}
			m[k] = map[string]any{}
		}
		m, ok = m[k].(map[string]any)
		if !ok {
			return nil, taskdriver.Errorf(gcerrors.InvalidArgument, "invalid field path %q at %q", strings.Join(fp, "."), k)
		}
	}
	return m, nil
}

// op is one of the permitted docstore operators ("=", "<", etc.)
// c is the result of strings.Compare or the like.
// TODO(jba): dedup from gcpfirestore/query?
func applyComparison(op string, c int) bool {
	switch op {
	case driver.EqualOp:
		return c == 0
	case ">":
		return c > 0
	case "<":
		return c < 0
	case ">=":
		return c >= 0
	case "<=":
		return c <= 0
	case "in":
		return c == 0
	case "not-in":
		return c != 0
	default:
		panic("bad op")
	}
}

func compare(x1, x2 any, op string) (int, bool) {
	v1 := reflect.ValueOf(x1)
	v2 := reflect.ValueOf(x2)
	// For in/not-in queries. Otherwise this should only be reached with AllowNestedSliceQueries set.
	// Return 0 if x1 is in slice x2, -1 if not.
	if v2.Kind() == reflect.Slice {
		for i := range v2.Len() {
			if c, ok := compare(x1, v2.Index(i).Interface(), op); ok {
				if c == 0 {
					return 0, true
				}
				if op != "in" && op != "not-in" {
					return c, true
				}
			}
		}
		return -1, true
	}
	// See Options.AllowNestedSliceQueries
	// When querying for x2 in the document and x1 is a list of values we only need one value to match
	// the comparison value depends on the operator.
	if v1.Kind() == reflect.Slice {
		v2Greater := false
		v2Less := false
		for i := range v1.Len() {
			if c, ok := compare(x2, v1.Index(i).Interface(), op); ok {
				if c == 0 {
					return 0, true
				}
				v2Greater = v2Greater || c > 0
				v2Less = v2Less || c < 0
			}
		}
		if op[0] == '>' && v2Less {
			return 1, true
		} else if op[0] == '<' && v2Greater {
			return -1, true
		}
		return 0, false
	}
	if v1.Kind() == reflect.String && v2.Kind() == reflect.String {
		return strings.Compare(v1.String(), v2.String()), true
	}
	if cmp, err := driver.CompareNumbers(v1, v2); err == nil {
		return cmp, true
	}
	if t1, ok := x1.(time.Time); ok {
		if t2, ok := x2.(time.Time); ok {
			return driver.CompareTimes(t1, t2), true
		}
	}
	if v1.Kind() == reflect.Bool && v2.Kind() == reflect.Bool {
		if v1.Bool() == v2.Bool() {
			return 0, true
		}
		return -1, true
	}
	return 0, false
}
