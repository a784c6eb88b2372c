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
