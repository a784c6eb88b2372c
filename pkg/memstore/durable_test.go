package memstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"gocloud.dev/docstore"

	"github.com/droverhq/drover/pkg/durable"
	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

type durDoc struct {
	ID               string
	N                int64
	F                float64
	B                []byte
	At               time.Time
	Tags             []string
	ExpiresAt        int64 `docstore:"expires_at"`
	DocstoreRevision any
}

func openDurable(t *testing.T, dir string) *docstore.Collection {
	t.Helper()
	eng, err := durable.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenCollection("ID", &Options{Engine: eng, Name: "docs", ExpiryField: "expires_at"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDurableReopen: what was written (typed and generic documents,
// replaced, updated, deleted, expired) is what a reopened collection
// holds, revisions included.
func TestDurableReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c := openDurable(t, dir)
	at := time.Date(2026, 12, 1, 20, 0, 0, 123, time.UTC)
	a := &durDoc{ID: "a", N: -7, F: 1.5, B: []byte{0, 1}, At: at, Tags: []string{"x", "y"}}
	if err := c.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.N = 8
	if err := c.Replace(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, map[string]any{"ID": "m", "nested": map[string]any{"k": []any{int64(1), "s", nil, true}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Actions().Update(&durDoc{ID: "m"}, docstore.Mods{"extra": "yes"}).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &durDoc{ID: "gone"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &durDoc{ID: "gone"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &durDoc{ID: "expired", ExpiresAt: time.Now().Unix() - 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // the sweep runs every second
	// No Close: reopen as after a crash, from the journal alone.
	Crash(c)
	c = openDurable(t, dir)
	defer c.Close()

	got := &durDoc{ID: "a"}
	if err := c.Get(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.N != 8 || got.F != 1.5 || string(got.B) != "\x00\x01" || !got.At.Equal(at) || len(got.Tags) != 2 || got.DocstoreRevision != a.DocstoreRevision {
		t.Errorf("reloaded %+v, want %+v", got, a)
	}
	m := map[string]any{"ID": "m"}
	if err := c.Get(ctx, m); err != nil {
		t.Fatal(err)
	}
	if m["extra"] != "yes" || m["nested"].(map[string]any)["k"].([]any)[1] != "s" {
		t.Errorf("reloaded generic document %v", m)
	}
	for _, id := range []string{"gone", "expired"} {
		if err := c.Get(ctx, &durDoc{ID: id}); err == nil {
			t.Errorf("document %s came back", id)
		}
	}
	// Revisions keep rising past the reloaded ones.
	old := got.DocstoreRevision
	if err := c.Replace(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.DocstoreRevision.(int64) <= old.(int64) {
		t.Errorf("revision %v after reload not above %v", got.DocstoreRevision, old)
	}
}

// TestDurableConcurrentBatches: writers racing on the same documents
// through WriteDirect (each call journaled in batches) leave on disk
// exactly what memory holds: the log has every document's changes in the
// order memory took them, whatever the interleaving of the batches.
func TestDurableConcurrentBatches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	coll := openDurable(t, dir)
	var c *collection
	if !coll.As(&c) {
		t.Fatal("not a memstore collection")
	}
	const n = 600 // more than journalBatch: calls span several batches
	ids := make([]string, n)
	docs, create := make([]any, n), make([]bool, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("doc-%04d", i)
		docs[i], create[i] = &durDoc{ID: ids[i]}, true
	}
	if errs, err := c.WriteDirect(ctx, docs, create); err != nil || errs != nil {
		t.Fatal(err, errs)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for round := range 60 {
				var batch []any
				for _, i := range r.Perm(n)[:1+r.IntN(n)] {
					batch = append(batch, &durDoc{ID: ids[i]})
				}
				for _, d := range batch {
					d := d.(*durDoc)
					d.N, d.Tags = int64(w*1000+round), []string{fmt.Sprint(w)}
				}
				// Without a revision, a replace always wins: the last
				// writer in memory must be the last on disk.
				if _, err := c.WriteDirect(ctx, batch, make([]bool, len(batch))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := make([]any, n)
	for i := range want {
		want[i] = &durDoc{ID: ids[i]}
	}
	if errs, err := c.GetDirect(ctx, want); err != nil || errs != nil {
		t.Fatal(err, errs)
	}
	if err := coll.Close(); err != nil {
		t.Fatal(err)
	}
	coll = openDurable(t, dir)
	defer coll.Close()
	for _, w := range want {
		w := w.(*durDoc)
		got := &durDoc{ID: w.ID}
		if err := coll.Get(ctx, got); err != nil {
			t.Fatal(err)
		}
		if got.N != w.N || got.DocstoreRevision != w.DocstoreRevision || !slices.Equal(got.Tags, w.Tags) {
			t.Fatalf("%s reopened: N %d rev %v tags %v; memory had N %d rev %v tags %v", w.ID, got.N, got.DocstoreRevision, got.Tags, w.N, w.DocstoreRevision, w.Tags)
		}
	}
}

// TestDurableLoadsTyped: at open, the documents of a registered type
// load packed (no generic map: restart with a million statuses was
// mostly building maps and collecting them), byte for byte what they were
// when written; a generic document with the type's key stays generic.
func TestDurableLoadsTyped(t *testing.T) {
	taskdriver.RegisterDocumentType(reflect.TypeFor[durDoc]())
	ctx := context.Background()
	dir := t.TempDir()
	coll := openDurable(t, dir)
	at := time.Date(2026, 12, 2, 5, 0, 0, 7, time.UTC)
	docs := []*durDoc{
		{ID: "a", N: -3, F: 2.5, B: []byte("b"), At: at, Tags: []string{"t"}, ExpiresAt: time.Now().Unix() + 3600},
		{ID: "empty"},
		{ID: "local", At: at.Local(), Tags: []string{}, B: []byte{}},
	}
	for _, d := range docs {
		if err := coll.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := coll.Create(ctx, map[string]any{"ID": "g", "N": "not a number"}); err != nil {
		t.Fatal(err)
	}
	var c *collection
	coll.As(&c)
	want := map[string][]byte{}
	for _, d := range docs {
		sh := c.shardOf(d.ID)
		want[d.ID] = sh.docs[d.ID].packed
	}
	Crash(coll)
	coll = openDurable(t, dir)
	defer coll.Close()
	coll.As(&c)
	for _, d := range docs {
		s := c.shardOf(d.ID).docs[d.ID]
		if s.ti == nil || !bytes.Equal(s.packed, want[d.ID]) || s.rev != d.DocstoreRevision.(int64) {
			t.Errorf("%s loaded as %+v, want packed %x rev %v", d.ID, s, want[d.ID], d.DocstoreRevision)
		}
		got := &durDoc{ID: d.ID}
		if err := coll.Get(ctx, got); err != nil {
			t.Fatal(err)
		}
		if got.N != d.N || !got.At.Equal(d.At) || got.At.Location() != d.At.Location() || !slices.Equal(got.Tags, d.Tags) ||
			!bytes.Equal(got.B, d.B) || (got.B == nil) != (d.B == nil) || (got.Tags == nil) != (d.Tags == nil) {
			t.Errorf("%s read back %+v, want %+v", d.ID, got, d)
		}
	}
	if s := c.shardOf("g").docs["g"]; s.m == nil {
		t.Errorf("generic document loaded as %+v", s)
	}
	if c.exp.count != 1 {
		t.Errorf("%d documents indexed for expiry, want 1", c.exp.count)
	}
}

// TestDurableCapBoundsJournal: the documents the cap and the expiry drop
// are deleted from the engine too, so that what a restart loads (and the
// data dir holds, once compacted) stays bounded by the cap, however many
// documents were written: 5,000 written under a cap of 100, 100 load.
func TestDurableCapBoundsJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*docstore.Collection, *collection) {
		eng, err := durable.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		coll, err := OpenCollection("ID", &Options{Engine: eng, Name: "docs", ExpiryField: "expires_at", Cap: 100})
		if err != nil {
			t.Fatal(err)
		}
		var c *collection
		coll.As(&c)
		return coll, c
	}
	coll, _ := open()
	exp := time.Now().Add(time.Hour).Unix()
	for b := range 10 { // an action list syncs once
		al := coll.Actions()
		for i := b * 500; i < (b+1)*500; i++ {
			al.Create(&durDoc{ID: fmt.Sprintf("d%05d", i), ExpiresAt: exp + int64(i)})
		}
		if err := al.Do(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := coll.Create(ctx, &durDoc{ID: "old", ExpiresAt: time.Now().Unix() - 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // the sweep runs every second
	Crash(coll)
	coll, c := open()
	defer coll.Close()
	if c.loaded != 100 {
		t.Errorf("%d documents loaded after 5,001 writes under a cap of 100, want 100", c.loaded)
	}
	if err := coll.Get(ctx, &durDoc{ID: "d04999"}); err != nil {
		t.Errorf("the last document written: %v", err)
	}
	if err := coll.Get(ctx, &durDoc{ID: "d00000"}); err == nil {
		t.Error("the first document written (expiring soonest) was kept")
	}
}
