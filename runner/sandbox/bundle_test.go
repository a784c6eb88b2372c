package sandbox

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract feeds Extract tar streams (gzipped here, since random bytes
// are seldom a gzip stream) and checks that whatever it accepts or
// refuses, nothing lands outside the work dir, nothing but regular files
// and directories lands inside, no file has set-id bits, the caps hold,
// and an accepted bundle has an executable start. Seeds:
// testdata/fuzz/FuzzExtract.
func FuzzExtract(f *testing.F) {
	const maxEntries, maxBytes = 64, 1 << 20
	f.Fuzz(func(t *testing.T, tarball []byte) {
		var gz bytes.Buffer
		// Stored blocks: compressing in each run starves the fuzzer.
		w, _ := gzip.NewWriterLevel(&gz, gzip.NoCompression)
		w.Write(tarball)
		w.Close()

		parent, err := os.MkdirTemp("", "fuzz-extract-*")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		dir := filepath.Join(parent, "work")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		err = Extract(bytes.NewReader(gz.Bytes()), root, maxEntries, maxBytes)
		root.Close()
		var be *BundleError
		if err != nil && !errors.As(err, &be) {
			t.Fatalf("error not a BundleError: %v", err)
		}

		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Fatalf("Extract wrote beside the work dir: %v", ents)
		}
		var entries int
		var size int64
		filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
			if err != nil || name == dir {
				return err
			}
			entries++
			info, err := d.Info()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0:
				t.Errorf("%s: mode %v has set-id bits", name, info.Mode())
			case info.Mode().IsRegular():
				size += info.Size()
			case !info.IsDir():
				t.Errorf("%s: mode %v is neither a file nor a directory", name, info.Mode())
			}
			return nil
		})
		if entries > 2*maxEntries || size > maxBytes {
			t.Errorf("extracted %d entries, %d bytes; caps %d, %d", entries, size, maxEntries, maxBytes)
		}
		if err == nil {
			info, serr := os.Lstat(filepath.Join(dir, "start"))
			if serr != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o100 == 0 {
				t.Errorf("accepted without an executable start: %v %v", info, serr)
			}
		}
	})
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestExtractBlame checks who is blamed for a failed extraction: a
// truncated or malformed bundle is a *BundleError (not retried), a
// failing source (the bucket, the pipe) is not.
func TestExtractBlame(t *testing.T) {
	whole := tgz(t, map[string]string{"start": "#!/bin/sh\n" + string(bytes.Repeat([]byte("# padding\n"), 5000))})
	lost := errors.New("connection reset")
	for _, tt := range []struct {
		name   string
		r      io.Reader
		bundle bool
	}{
		{"truncated", bytes.NewReader(whole[:len(whole)/2]), true},
		{"corrupt", bytes.NewReader(append(whole[:len(whole)/2:len(whole)/2], bytes.Repeat([]byte{0xff}, len(whole))...)), true},
		{"source fails", &failingReader{data: whole[:len(whole)/2], err: lost}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root, err := os.OpenRoot(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			err = Extract(tt.r, root, 10, 1<<20)
			var be *BundleError
			if err == nil || errors.As(err, &be) != tt.bundle {
				t.Errorf("err = %v (%T), want a bundle error: %v", err, err, tt.bundle)
			}
			if !tt.bundle && !errors.Is(err, lost) {
				t.Errorf("err = %v, want it to wrap the source's error", err)
			}
		})
	}
}
