package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamagedDataDir: a data directory with a file cut short or corrupt
// is recovered to its last consistent state, saying what was replayed, or
// refused with a one-line error naming the file; it is never emptied
// silently.
func TestDamagedDataDir(t *testing.T) {
	const n = 1000
	for _, tc := range []struct {
		name   string
		flush  bool // write a table first
		damage func(t *testing.T, dir string) string
		// openErr / scanErr: the damage must be refused at open / read
		// with an error naming the file; neither: recovered.
		openErr, scanErr bool
	}{
		{name: "log cut short", damage: func(t *testing.T, dir string) string { return cut(t, dir, ".log") }},
		{name: "manifest cut short", damage: func(t *testing.T, dir string) string { return cut(t, dir, "MANIFEST-") }, openErr: true},
		{name: "table cut short", flush: true, damage: func(t *testing.T, dir string) string { return cut(t, dir, ".sst") }, openErr: true},
		{name: "table corrupt", flush: true, damage: func(t *testing.T, dir string) string { return flip(t, dir, ".sst") }, scanErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				b := e.NewBatch()
				b.Set(fmt.Appendf(nil, "k%05d", i), make([]byte, 100))
				if err := e.Apply(b, true); err != nil {
					t.Fatal(err)
				}
				if tc.flush && i == n/2 {
					if err := e.db.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			file := tc.damage(t, dir)

			e, err = Open(dir, nil)
			if tc.openErr {
				if err == nil {
					e.Close()
					t.Fatalf("%s damaged, and the engine opened", file)
				}
				oneLineNaming(t, err, file)
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer e.Close()
			got := 0
			err = e.Scan([]byte("k"), func(k, _ []byte) error {
				if want := fmt.Sprintf("k%05d", got); string(k) != want {
					return fmt.Errorf("key %q where %q was due: not a prefix of what was written", k, want)
				}
				got++
				return nil
			})
			if tc.scanErr {
				if err == nil {
					t.Fatalf("%s corrupt, and every key read back", file)
				}
				oneLineNaming(t, err, file)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == 0 {
				t.Fatalf("%s cut short: the engine came back empty", file)
			}
			rec := strings.Join(e.Recovered(), "; ")
			if !strings.Contains(rec, "replayed") {
				t.Errorf("recovered %d of %d keys, and Recovered says %q", got, n, rec)
			}
			t.Logf("recovered %d of %d keys: %s", got, n, rec)
		})
	}
}

func oneLineNaming(t *testing.T, err error, file string) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, filepath.Base(file)) {
		t.Errorf("error %q: want one line naming %s", msg, filepath.Base(file))
	}
}

// pick returns the last file in dir whose name has part.
func pick(t *testing.T, dir, part string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for _, d := range ents {
		if strings.Contains(d.Name(), part) && !strings.HasPrefix(d.Name(), "marker.") {
			last = filepath.Join(dir, d.Name())
		}
	}
	if last == "" {
		t.Fatalf("no %s file in %s", part, dir)
	}
	return last
}

// cut truncates the last file with part in its name to half its size.
func cut(t *testing.T, dir, part string) string {
	f := pick(t, dir, part)
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	return f
}

// flip inverts 64 bytes near the start of the last file with part.
func flip(t *testing.T, dir, part string) string {
	f := pick(t, dir, part)
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := 64; i < 128 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
