package memstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"gocloud.dev/docstore"
	"gocloud.dev/gcerrors"
)

// doc is a flat struct: memstore keeps it typed.
type doc struct {
	ID               string    `docstore:"id"`
	Kind             string    `docstore:"kind"`
	N                int       `docstore:"n"`
	At               time.Time `docstore:"at"`
	Tags             []string  `docstore:"tags"`
	Expires          int64     `docstore:"expires_at"`
	Skip             string    `docstore:"-"`
	DocstoreRevision any
}

// kinds has a field of every kind a packed document holds, and an
// embedded struct.
type kinds struct {
	ID   string `docstore:"id"`
	I8   int8
	I16  int16
	I32  int32
	I    int
	U8   uint8
	U16  uint16
	U32  uint32
	U64  uint64
	U    uint
	F32  float32
	F64  float64
	B    bool
	Raw  []byte
	Nil  []byte
	Emp  []string
	SS   []string
	At   time.Time
	Loc  time.Time
	Zero time.Time
	inner
	DocstoreRevision any
}

type inner struct {
	Name  string
	Named State
}

type State string

// TestPackedRoundTrip: every kind reads back as written (extremes, nil
// and empty slices, UTC, Local and zero times, an embedded struct), kept
// packed; the bytes a reader gets are its own; a time in another
// location keeps the document generic, location and all.
func TestPackedRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, coll := setup(t, nil)
	in := &kinds{
		ID: "k", I8: -128, I16: -32768, I32: -1 << 31, I: -1 << 62,
		U8: 255, U16: 65535, U32: 1<<32 - 1, U64: 1<<64 - 1, U: 1 << 63,
		F32: -1.5e-7, F64: 3.141592653589793, B: true,
		Raw: []byte("raw"), Emp: []string{}, SS: []string{"", "é", "long string"},
		At:    time.Date(2026, 12, 1, 1, 2, 3, 999999999, time.UTC),
		Loc:   time.Date(1950, 1, 2, 3, 4, 5, 6, time.Local),
		inner: inner{Name: "embedded", Named: "queued"},
	}
	if err := coll.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if s := c.shardOf("k").docs["k"]; s.packed == nil || s.m != nil {
		t.Fatal("not kept packed")
	}
	out := &kinds{ID: "k"}
	if err := coll.Get(ctx, out); err != nil {
		t.Fatal(err)
	}
	want := *in
	if !reflect.DeepEqual(out, &want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, &want)
	}
	if out.Loc.Location() != time.Local || out.At.Location() != time.UTC || out.Zero != (time.Time{}) {
		t.Fatalf("locations: %v %v, zero %v", out.Loc.Location(), out.At.Location(), out.Zero)
	}
	out.Raw[0] = 'X'
	again := &kinds{ID: "k"}
	if err := coll.Get(ctx, again); err != nil {
		t.Fatal(err)
	}
	if string(again.Raw) != "raw" {
		t.Fatalf("a reader's bytes are the store's: %q", again.Raw)
	}
	// Filters read packed fields in the generic encoding.
	it := coll.Query().Where("U64", "=", int64(-1)).Where("Name", "=", "embedded").Get(ctx)
	var q kinds
	if err := it.Next(ctx, &q); err != nil || q.ID != "k" {
		t.Fatalf("query: %v %+v", err, q)
	}
	it.Stop()

	zone := time.FixedZone("X", 5*3600)
	odd := &kinds{ID: "z", At: time.Date(2026, 1, 1, 0, 0, 0, 0, zone)}
	if err := coll.Create(ctx, odd); err != nil {
		t.Fatal(err)
	}
	if s := c.shardOf("z").docs["z"]; s.packed != nil || s.m == nil {
		t.Fatal("a time in another location was packed")
	}
	gotOdd := &kinds{ID: "z"}
	if err := coll.Get(ctx, gotOdd); err != nil {
		t.Fatal(err)
	}
	if !gotOdd.At.Equal(odd.At) || gotOdd.At.Location() != zone {
		t.Fatalf("odd location: %v", gotOdd.At)
	}
}

func setup(t testing.TB, opts *Options) (*collection, *docstore.Collection) {
	t.Helper()
	c, err := newCollection("id", nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	coll := docstore.NewCollection(c)
	t.Cleanup(func() { coll.Close() })
	return c, coll
}

func TestTypedDocuments(t *testing.T) {
	ctx := context.Background()
	c, coll := setup(t, nil)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	d := &doc{ID: "a", Kind: "task", N: 7, At: at, Tags: []string{"x"}, Skip: "not stored"}
	if err := coll.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if d.DocstoreRevision == nil {
		t.Fatal("no revision after Create")
	}
	if c.shardOf("a").docs["a"].ti == nil {
		t.Fatal("flat struct not kept typed")
	}
	d.Tags[0] = "changed by caller"
	got := &doc{ID: "a", Skip: "mine"}
	if err := coll.Get(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.N != 7 || !got.At.Equal(at) || len(got.Tags) != 1 || got.Tags[0] != "x" || got.Skip != "mine" || got.DocstoreRevision != d.DocstoreRevision {
		t.Fatalf("got %+v", got)
	}
	// A fresh document: the field docstore does not see was not stored,
	// and the slices are the reader's own.
	for range 2 {
		fresh := &doc{ID: "a"}
		if err := coll.Get(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		if fresh.Skip != "" || fresh.N != 7 || len(fresh.Tags) != 1 || fresh.Tags[0] != "x" || fresh.DocstoreRevision != d.DocstoreRevision {
			t.Fatalf("fresh get %+v", fresh)
		}
		fresh.Tags[0] = "changed by reader"
	}
	// A projected Get sets only the named fields.
	part := &doc{ID: "a", N: -1}
	if err := coll.Get(ctx, part, "kind"); err != nil {
		t.Fatal(err)
	}
	if part.Kind != "task" || part.N != -1 {
		t.Fatalf("projected get %+v", part)
	}
	// Another type, or a map, reads the same document generically.
	m := map[string]any{"id": "a"}
	if err := coll.Get(ctx, m); err != nil {
		t.Fatal(err)
	}
	if m["n"] != int64(7) || m["kind"] != "task" {
		t.Fatalf("map get %v", m)
	}
	// A stale revision conflicts.
	stale := *got
	got.N = 8
	if err := coll.Replace(ctx, got); err != nil {
		t.Fatal(err)
	}
	stale.N = 9
	if err := coll.Replace(ctx, &stale); gcerrors.Code(err) != gcerrors.FailedPrecondition {
		t.Fatalf("stale replace: %v", err)
	}
	// An update turns the document generic, and keeps revisions going.
	if err := coll.Update(ctx, got, docstore.Mods{"n": 10}); err != nil {
		t.Fatal(err)
	}
	again := &doc{ID: "a"}
	if err := coll.Get(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.N != 10 || again.DocstoreRevision != got.DocstoreRevision {
		t.Fatalf("after update %+v, revision want %v", again, got.DocstoreRevision)
	}
}

func TestOrderedQuery(t *testing.T) {
	ctx := context.Background()
	_, coll := setup(t, nil)
	for i := range 1000 {
		kind := "task"
		if i%10 == 0 {
			kind = "runner"
		}
		if err := coll.Put(ctx, &doc{ID: fmt.Sprintf("%04d", i), Kind: kind, N: i % 3}); err != nil {
			t.Fatal(err)
		}
	}
	// Newest first below a cursor, filtered, limited: what Store.List asks.
	iter := coll.Query().Where("kind", "=", "task").Where("id", "<", "0500").Where("n", "=", 1).
		OrderBy("id", docstore.Descending).Limit(3).Get(ctx)
	defer iter.Stop()
	var ids []string
	for {
		var d doc
		err := iter.Next(ctx, &d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	if fmt.Sprint(ids) != "[0499 0496 0493]" {
		t.Fatalf("got %v", ids)
	}
}

func TestExpiryAndCap(t *testing.T) {
	ctx := context.Background()
	c, coll := setup(t, &Options{ExpiryField: "expires_at", Cap: 3, CapField: "kind", CapValue: "task"})
	now := time.Unix(1_000_000, 0)
	put := func(id, kind string, exp int64) {
		if err := coll.Put(ctx, &doc{ID: id, Kind: kind, Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	put("keep", "task", 0)           // never expires
	put("old", "task", now.Unix()-1) // due
	put("key", "idempotency", 2e6)   // not capped
	for i := range 5 {
		put(fmt.Sprintf("t%d", i), "task", now.Unix()+int64(10+i))
	}
	put("t0", "task", now.Unix()+100) // rewritten: now expires last
	c.sweep(now)
	var left []string
	for _, id := range []string{"keep", "old", "key", "t0", "t1", "t2", "t3", "t4"} {
		if err := coll.Get(ctx, &doc{ID: id}); err == nil {
			left = append(left, id)
		}
	}
	if fmt.Sprint(left) != "[keep key t0 t3 t4]" {
		t.Fatalf("left %v", left)
	}
}

// TestCapHeldByWrites: the write that goes over the cap drops the
// capped document that expires soonest, with no sweep in between.
func TestCapHeldByWrites(t *testing.T) {
	ctx := context.Background()
	_, coll := setup(t, &Options{ExpiryField: "expires_at", Cap: 3, CapField: "kind", CapValue: "task"})
	base := time.Now().Add(time.Hour).Unix()
	for i := range 10 {
		if err := coll.Put(ctx, &doc{ID: fmt.Sprintf("t%d", i), Kind: "task", Expires: base + int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	for i := range 10 {
		id := fmt.Sprintf("t%d", i)
		if err := coll.Get(ctx, &doc{ID: id}); err == nil {
			left = append(left, id)
		}
	}
	if fmt.Sprint(left) != "[t7 t8 t9]" {
		t.Fatalf("left %v, want the three that expire last", left)
	}
}

func TestFile(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "status.gob")
	coll, err := OpenCollection("id", &Options{Filename: file})
	if err != nil {
		t.Fatal(err)
	}
	d := &doc{ID: "a", Kind: "task", N: 1, Tags: []string{"x"}}
	if err := coll.Put(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := coll.Close(); err != nil {
		t.Fatal(err)
	}
	coll, err = OpenCollection("id", &Options{Filename: file})
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	got := &doc{ID: "a"}
	if err := coll.Get(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.N != 1 || got.Tags[0] != "x" || got.DocstoreRevision != d.DocstoreRevision {
		t.Fatalf("loaded %+v", got)
	}
	// Revisions go on from the loaded ones.
	if err := coll.Replace(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.DocstoreRevision.(int64) <= d.DocstoreRevision.(int64) {
		t.Fatalf("revision %v after %v", got.DocstoreRevision, d.DocstoreRevision)
	}
}

func TestURL(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{
		"memstore://x/id?nope=1",
		"memstore://x/id?cap=10",
		"memstore://x/id?expiry_field=e&cap=-1",
		"memstore://x/id?expiry_field=e&cap_where=kind",
	} {
		if c, err := docstore.OpenCollection(ctx, bad); err == nil {
			c.Close()
			t.Errorf("%s: no error", bad)
		}
	}
	c, err := docstore.OpenCollection(ctx, "memstore://x/id?expiry_field=expires_at&cap=10&cap_where=kind:task")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
