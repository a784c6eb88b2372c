package memstore

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"gocloud.dev/docstore/driver"
)

// TestAppendPackedMatchesGeneric: the journal encodes a packed document
// straight from its bytes (appendPacked) into exactly what encoding its
// generic form (appendValue of toMap) gives, so that what loads from the
// engine is the same whichever path wrote it: every kind, extremes, nil
// and empty slices, UTC, Local and zero times, with and without a
// revision, and random documents.
func TestAppendPackedMatchesGeneric(t *testing.T) {
	check := func(t *testing.T, in *kinds, rev int64) {
		t.Helper()
		d, err := driver.NewDocument(in)
		if err != nil {
			t.Fatal(err)
		}
		ti := typeOf(d, "DocstoreRevision")
		if !ti.flat {
			t.Fatal("kinds is not flat")
		}
		buf, ok := ti.pack(reflect.ValueOf(in).UnsafePointer())
		if !ok {
			t.Fatal("not packed")
		}
		for _, hasRev := range []bool{false, true} {
			want, err := appendValue([]byte("prefix"), ti.toMap(buf, "DocstoreRevision", rev, hasRev))
			if err != nil {
				t.Fatal(err)
			}
			got := ti.appendPacked([]byte("prefix"), buf, "DocstoreRevision", rev, hasRev)
			if !bytes.Equal(got, want) {
				t.Fatalf("hasRev %v: appendPacked\n%x\nwant (appendValue of toMap)\n%x", hasRev, got, want)
			}
			// Loading it gives back the packed document it was.
			wantRev := int64(0)
			if hasRev {
				wantRev = rev
			}
			back, gotRev, ok := ti.unpackJournal(got[len("prefix"):], "DocstoreRevision", &unpackScratch{})
			if !ok || !bytes.Equal(back, buf) || gotRev != wantRev {
				t.Fatalf("hasRev %v: unpackJournal: ok %v rev %d (want %d)\n%x\nwant\n%x", hasRev, ok, gotRev, wantRev, back, buf)
			}
		}
	}
	check(t, &kinds{}, 1)
	check(t, &kinds{
		ID: "k", I8: -128, I16: -32768, I32: -1 << 31, I: -1 << 62,
		U8: 255, U16: 65535, U32: 1<<32 - 1, U64: 1<<64 - 1, U: 1 << 63,
		F32: -1.5e-7, F64: math.Inf(-1), B: true,
		Raw: []byte("raw"), Nil: []byte{}, Emp: []string{}, SS: []string{"", "é", "long string"},
		At:    time.Date(2026, 12, 1, 1, 2, 3, 999999999, time.UTC),
		Loc:   time.Date(1950, 1, 2, 3, 4, 5, 6, time.Local),
		inner: inner{Name: "embedded", Named: "queued"},
	}, math.MaxInt64)
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
	for range 500 {
		in := &kinds{
			ID: str(), I8: int8(r.Int()), I16: int16(r.Int()), I32: r.Int32(), I: r.Int() - r.Int(),
			U8: uint8(r.Uint32()), U16: uint16(r.Uint32()), U32: r.Uint32(), U64: r.Uint64(), U: uint(r.Uint64()),
			F32: float32(r.NormFloat64()), F64: r.NormFloat64() * 1e300, B: r.IntN(2) == 0,
			At:    time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)).UTC(),
			Loc:   time.Unix(r.Int64N(1<<33), r.Int64N(1e9)),
			inner: inner{Name: str(), Named: State(str())},
		}
		if r.IntN(3) > 0 {
			in.Raw = []byte(str())
		}
		if r.IntN(3) > 0 {
			in.SS = make([]string, r.IntN(4))
			for i := range in.SS {
				in.SS[i] = str()
			}
		}
		check(t, in, r.Int64())
	}
}

// TestUnpackJournalRefuses: a journaled document that is not exactly one
// of the type's (a field missing, extra or renamed, a value of another
// kind or out of its field's range, a time in another location, bytes
// cut short) is not packed: it loads generic, as it was written.
func TestUnpackJournalRefuses(t *testing.T) {
	d, err := driver.NewDocument(&kinds{})
	if err != nil {
		t.Fatal(err)
	}
	ti := typeOf(d, "DocstoreRevision")
	buf, _ := ti.pack(reflect.ValueOf(&kinds{ID: "x", At: time.Unix(5, 0).UTC()}).UnsafePointer())
	base := ti.toMap(buf, "DocstoreRevision", 3, true)
	if _, _, ok := ti.unpackJournal(mustAppend(t, base), "DocstoreRevision", &unpackScratch{}); !ok {
		t.Fatal("the type's own document is refused")
	}
	change := map[string]func(m map[string]any){
		"missing field":   func(m map[string]any) { delete(m, "I8") },
		"extra field":     func(m map[string]any) { m["extra"] = "x" },
		"renamed field":   func(m map[string]any) { m["I9"] = m["I8"]; delete(m, "I8") },
		"int out of int8": func(m map[string]any) { m["I8"] = int64(300) },
		"negative uint8":  func(m map[string]any) { m["U8"] = int64(-1) },
		"string for int":  func(m map[string]any) { m["I"] = "1" },
		"int for string":  func(m map[string]any) { m["ID"] = int64(1) },
		"float32 range":   func(m map[string]any) { m["F32"] = 0.1 },
		"fixed zone":      func(m map[string]any) { m["At"] = time.Unix(5, 0).In(time.FixedZone("X", 3600)) },
		"nil string":      func(m map[string]any) { m["ID"] = nil },
		"zero revision":   func(m map[string]any) { m["DocstoreRevision"] = int64(0) },
		"float revision":  func(m map[string]any) { m["DocstoreRevision"] = 1.0 },
		"list of ints":    func(m map[string]any) { m["SS"] = []any{int64(1)} },
	}
	for name, f := range change {
		t.Run(name, func(t *testing.T) {
			m := ti.toMap(buf, "DocstoreRevision", 3, true)
			f(m)
			if _, _, ok := ti.unpackJournal(mustAppend(t, m), "DocstoreRevision", &unpackScratch{}); ok {
				t.Errorf("packed")
			}
		})
	}
	whole := mustAppend(t, base)
	for n := range len(whole) {
		if _, _, ok := ti.unpackJournal(whole[:n], "DocstoreRevision", &unpackScratch{}); ok {
			t.Fatalf("packed from %d of %d bytes", n, len(whole))
		}
	}
	if _, _, ok := ti.unpackJournal(append(whole, 0), "DocstoreRevision", &unpackScratch{}); ok {
		t.Fatal("packed with a trailing byte")
	}
}

func mustAppend(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := appendValue(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
