package memstore

import (
	"context"
	"testing"
	"time"

	"gocloud.dev/docstore"

	"github.com/droverhq/drover/pkg/durable"
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
