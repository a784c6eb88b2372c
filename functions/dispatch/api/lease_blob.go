package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// The archive's blobs for remote runners: GET (with Range) and HEAD read
// one, PUT writes one (its metadata in Drover-Meta-* headers), DELETE
// removes one. Every remote runner's key may read and write the archive,
// as a runner on the cloud side may.

// metaPrefix starts the headers that carry a blob's metadata.
const metaPrefix = "Drover-Meta-"

// blobTimeout bounds reading an uploaded blob's body.
const blobTimeout = 10 * time.Minute

func (s *Server) blobKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	if s.leases == nil {
		writeProblem(w, http.StatusNotFound, probNotFound, "this dispatcher serves no lease endpoints")
		return "", false
	}
	key := r.PathValue("key")
	bad := ""
	switch {
	case key == "" || len(key) > 1024:
		bad = "must be 1 to 1024 bytes"
	case !utf8.ValidString(key) || strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		bad = "must be UTF-8 text without control characters"
	case strings.HasPrefix(key, "/") || strings.Contains("/"+key+"/", "/../") || strings.Contains("/"+key+"/", "/./"):
		bad = "must be a relative path without . or .. segments"
	}
	if bad != "" {
		writeProblem(w, http.StatusBadRequest, probMalformed, "blob key %q %s", clip(key), bad)
		return "", false
	}
	return key, true
}

func (s *Server) blobFail(w http.ResponseWriter, r *http.Request, key, what string, err error) {
	if gcerrors.Code(err) == gcerrors.NotFound {
		writeProblem(w, http.StatusNotFound, probNotFound, "blob %s not found", key)
		return
	}
	s.fail(w, r, fmt.Errorf("%s blob %s: %w", what, key, err))
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	key, ok := s.blobKey(w, r)
	if !ok {
		return
	}
	b := s.archive.Bucket()
	if r.Method == http.MethodHead {
		a, err := b.Attributes(r.Context(), key)
		if err != nil {
			s.blobFail(w, r, key, "read attributes of", err)
			return
		}
		for k, v := range a.Metadata {
			w.Header().Set(metaPrefix+k, v)
		}
		w.Header().Set("Content-Type", a.ContentType)
		w.Header().Set("Content-Length", strconv.FormatInt(a.Size, 10))
		w.Header().Set("Last-Modified", a.ModTime.UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		return
	}
	offset, length := int64(0), int64(-1)
	if rg := r.Header.Get("Range"); rg != "" {
		var err error
		if offset, length, err = parseRange(rg); err != nil {
			writeProblem(w, http.StatusRequestedRangeNotSatisfiable, probMalformed, "Range %q: %v", clip(rg), err)
			return
		}
	}
	rd, err := b.NewRangeReader(r.Context(), key, offset, length, nil)
	if err != nil {
		s.blobFail(w, r, key, "read", err)
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", rd.ContentType())
	w.Header().Set("Last-Modified", rd.ModTime().UTC().Format(http.TimeFormat))
	w.Header().Set("Drover-Blob-Size", strconv.FormatInt(rd.Size(), 10))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, rd)
}

// parseRange reads "bytes=A-B" or "bytes=A-" as an offset and a length
// (-1: to the end).
func parseRange(v string) (offset, length int64, err error) {
	spec, ok := strings.CutPrefix(v, "bytes=")
	from, to, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 {
		return 0, 0, errors.New(`want "bytes=A-B" or "bytes=A-"`)
	}
	if offset, err = strconv.ParseInt(from, 10, 64); err != nil || offset < 0 {
		return 0, 0, errors.New("bad start")
	}
	if to == "" {
		return offset, -1, nil
	}
	end, err := strconv.ParseInt(to, 10, 64)
	if err != nil || end < offset {
		return 0, 0, errors.New("bad end")
	}
	return offset, end - offset + 1, nil
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	key, ok := s.blobKey(w, r)
	if !ok {
		return
	}
	limit := s.leases.cfg.MaxBlob
	if r.ContentLength > limit {
		writeProblem(closing(w), http.StatusRequestEntityTooLarge, probTooLarge, "blob %s: body is larger than the %d-byte limit (Content-Length %d)", key, limit, r.ContentLength)
		return
	}
	opts := &blob.WriterOptions{ContentType: r.Header.Get("Content-Type")}
	for k, vs := range r.Header {
		if name, ok := strings.CutPrefix(k, metaPrefix); ok && len(vs) > 0 {
			if opts.Metadata == nil {
				opts.Metadata = map[string]string{}
			}
			opts.Metadata[strings.ToLower(name)] = vs[0]
		}
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(blobTimeout))
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	bw, err := s.archive.Bucket().NewWriter(ctx, key, opts)
	if err != nil {
		s.blobFail(w, r, key, "write", err)
		return
	}
	if _, err := io.Copy(bw, http.MaxBytesReader(w, r.Body, limit)); err != nil {
		cancel() // gocloud discards a write whose context is done
		_ = bw.Close()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, http.StatusRequestEntityTooLarge, probTooLarge, "blob %s: body is larger than the %d-byte limit; nothing was written", key, limit)
			return
		}
		writeProblem(w, http.StatusBadRequest, probMalformed, "blob %s: could not read the body (%v); nothing was written", key, err)
		return
	}
	if err := bw.Close(); err != nil {
		s.blobFail(w, r, key, "write", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request) {
	key, ok := s.blobKey(w, r)
	if !ok {
		return
	}
	if err := s.archive.Delete(r.Context(), key); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
