package sandbox

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
)

// BundleError says why a bundle was refused. It is the bundle's fault, so
// running it again would fail again.
type BundleError struct{ Msg string }

func (e *BundleError) Error() string { return e.Msg }

// Extract extracts the .tar.gz stream r into root, refusing anything that
// could land outside it (absolute or escaping paths, links, devices,
// fifos) and bundles of more than maxEntries entries or maxBytes bytes. It
// requires a regular executable file start at the root. Files keep their
// exec bits but never set-id bits. Errors due to the bundle are
// *BundleError; a full file system is reported as one too, since the
// bundle is what filled it.
func Extract(r io.Reader, root *os.Root, maxEntries int, maxBytes int64) error {
	bad := func(format string, a ...any) error {
		return &BundleError{Msg: fmt.Sprintf(format, a...)}
	}
	// An error of r itself (a network error, a closed pipe) is not the
	// bundle's fault; any other read error is: it is truncated or
	// malformed.
	src := &sourceReader{r: r}
	readErr := func(err error, format string, a ...any) error {
		if src.err != nil {
			return fmt.Errorf("read bundle: %w", src.err)
		}
		return bad("%s: %v", fmt.Sprintf(format, a...), err)
	}
	gz, err := gzip.NewReader(src)
	if err != nil {
		return readErr(err, "not a gzip stream")
	}
	// One member only: r may be a pipe that stays open after the bundle.
	gz.Multistream(false)
	tr := tar.NewReader(gz)
	var entries int
	var size int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return readErr(err, "after %d entries", entries)
		}
		if entries++; entries > maxEntries {
			return bad("more than %d entries", maxEntries)
		}
		name := hdr.Name
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if !filepath.IsLocal(name) {
			return bad("entry %q: absolute path or path outside the work dir", name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			if size += hdr.Size; size > maxBytes {
				return bad("entry %q: bundle extracts to more than %d bytes", name, maxBytes)
			}
			body := &sourceReader{r: tr}
			err = extractFile(root, name, hdr.FileInfo().Mode().Perm(), body)
			if body.err != nil {
				return readErr(body.err, "entry %q", name)
			}
		case tar.TypeSymlink:
			return bad("entry %q: symlink to %q not allowed", name, hdr.Linkname)
		case tar.TypeLink:
			return bad("entry %q: hard link to %q not allowed", name, hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return bad("entry %q: device or fifo not allowed", name)
		default:
			return bad("entry %q: unsupported type %q", name, hdr.Typeflag)
		}
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return bad("entry %q: the work dir is full: %v", name, err)
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) && (errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.EISDIR)) {
				return bad("entry %q: %v", name, err)
			}
			return fmt.Errorf("extract entry %q: %w", name, err)
		}
	}
	// Check the gzip trailer.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return readErr(err, "after %d entries", entries)
	}
	info, err := root.Lstat("start")
	if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o100 == 0 {
		return bad("no regular executable file start at its root")
	}
	return nil
}

// sourceReader keeps the first error other than io.EOF that r returned.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// extractFile writes the contents of r to name in root, with its exec bits
// kept but no set-id bits, readable and writable by the owner.
func extractFile(root *os.Root, name string, perm fs.FileMode, r io.Reader) error {
	if err := root.MkdirAll(path.Dir(filepath.ToSlash(name)), 0o755); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm&0o755|0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ResultSize walks the result/ directory under root and returns how many
// entries and file bytes it holds, counting regular files and directories
// only (what Pack packs), without following links. It stops early once
// either exceeds its cap.
func ResultSize(root *os.Root, maxEntries int, maxBytes int64) (entries int, bytes int64, err error) {
	err = fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == "." {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		entries++
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			bytes += info.Size()
		}
		if entries > maxEntries || bytes > maxBytes {
			return fs.SkipAll
		}
		return nil
	})
	return entries, bytes, err
}

// Pack writes the directory root as a tar.gz to w: regular files and
// directories only, links not followed, owners dropped.
func Pack(root *os.Root, w io.Writer) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == "." {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = name
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Mode &= 0o777
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	return errors.Join(err, tw.Close(), gz.Close())
}
