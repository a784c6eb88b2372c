package memstore

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/docstore"
)

// FuzzLoad feeds arbitrary bytes to a collection as its file, as a
// damaged or hostile .drover/ file would be: opening either fails with an
// error naming the file, or gives a collection whose every document can
// be read, that takes a write, and that saves a file which loads again
// with the same documents. It never panics.
func FuzzLoad(f *testing.F) {
	for _, seed := range loadSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		file := filepath.Join(t.TempDir(), "status.gob")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		opts := &Options{Filename: file, ExpiryField: "expires_at", Cap: 1000, CapField: "kind", CapValue: "task"}
		coll, err := OpenCollection("id", opts)
		if err != nil {
			if !strings.Contains(err.Error(), file) {
				t.Fatalf("open error %q does not name the file", err)
			}
			return
		}
		n := countDocs(t, coll)
		probe := map[string]any{"id": "fuzz-probe"}
		exists := coll.Get(ctx, map[string]any{"id": "fuzz-probe"}) == nil
		if err := coll.Put(ctx, map[string]any{"id": "fuzz-probe", "kind": "task", "n": int64(1)}); err != nil {
			t.Fatalf("Put on a loaded collection: %v", err)
		}
		if !exists {
			n++
		}
		if err := coll.Close(); err != nil {
			t.Fatalf("Close (saving) a loaded collection: %v", err)
		}
		again, err := OpenCollection("id", opts)
		if err != nil {
			t.Fatalf("reopen the file the collection saved: %v", err)
		}
		defer again.Close()
		if m := countDocs(t, again); m != n {
			t.Fatalf("reloaded %d documents, want %d", m, n)
		}
		if err := again.Get(ctx, probe); err != nil || probe["n"] != int64(1) {
			t.Fatalf("reloaded probe = %v, %v", probe, err)
		}
	})
}

// countDocs reads every document of coll and counts them.
func countDocs(t *testing.T, coll *docstore.Collection) int {
	t.Helper()
	it := coll.Query().Get(context.Background())
	defer it.Stop()
	n := 0
	for {
		m := map[string]any{}
		err := it.Next(context.Background(), m)
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("read document %d of a loaded collection: %v", n, err)
		}
		n++
	}
}

// loadSeeds returns files a collection saved (typed and generic
// documents, revisions, expiries), their truncations, and an empty file.
func loadSeeds(tb testing.TB) [][]byte {
	ctx := context.Background()
	file := filepath.Join(tb.TempDir(), "seed.gob")
	coll, err := OpenCollection("id", &Options{Filename: file, ExpiryField: "expires_at"})
	if err != nil {
		tb.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := coll.Put(ctx, &doc{ID: "a", Kind: "task", N: 1, At: at, Tags: []string{"x"}, Expires: at.Unix()}); err != nil {
		tb.Fatal(err)
	}
	if err := coll.Put(ctx, map[string]any{"id": "b", "nested": map[string]any{"l": []any{int64(1), "s", true, nil}}}); err != nil {
		tb.Fatal(err)
	}
	if err := coll.Close(); err != nil {
		tb.Fatal(err)
	}
	saved, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var empty bytes.Buffer
	if err := gob.NewEncoder(&empty).Encode(fileDocs{}); err != nil {
		tb.Fatal(err)
	}
	return [][]byte{saved, saved[:len(saved)/2], empty.Bytes(), nil}
}
