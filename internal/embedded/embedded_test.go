//go:build unix

package embedded

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	"gocloud.dev/docstore"

	_ "github.com/droverhq/drover/pkg/memstore"
)

// TestArchiveIsPrivate checks that the embedded archive's directories are
// 0700 and its files 0600, the data dir included, even where it existed
// with looser modes.
func TestArchiveIsPrivate(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := Defaults(dataDir, time.Minute, Durable)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The durable status store's engine files (StateDir) are private too.
	coll, err := docstore.OpenCollection(ctx, u.Status)
	if err != nil {
		t.Fatal(err)
	}
	if err := coll.Put(ctx, map[string]any{"id": "T1", "secret": "x"}); err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	b, err := blob.OpenBucket(ctx, u.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "results/T1/1/result.tar.gz", []byte("secret"), &blob.WriterOptions{ContentType: "application/gzip"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(dataDir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, info.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 { // data, archive, results, T1, 1, the blob (and its attributes)
		t.Errorf("walked only %d entries", n)
	}
}
