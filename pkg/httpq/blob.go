package httpq

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"

	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// bucket is the gocloud blob driver of the archive over /v1/blobs/{key}:
// reads (whole or a range), attributes, writes (buffered, one PUT at
// Close) and deletes. Listing, copying and signing are not offered.
type bucket struct{ r *Remote }

const metaPrefix = "Drover-Meta-"

func blobPath(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/v1/blobs/" + strings.Join(segs, "/")
}

func (b *bucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	resp, err := b.r.do(ctx, http.MethodHead, blobPath(key), nil, "", nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	a := &driver.Attributes{ContentType: resp.Header.Get("Content-Type")}
	a.Size, _ = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	a.ModTime, _ = http.ParseTime(resp.Header.Get("Last-Modified"))
	for k, vs := range resp.Header {
		if name, ok := strings.CutPrefix(k, metaPrefix); ok && len(vs) > 0 {
			if a.Metadata == nil {
				a.Metadata = map[string]string{}
			}
			a.Metadata[strings.ToLower(name)] = vs[0]
		}
	}
	return a, nil
}

func (b *bucket) NewRangeReader(ctx context.Context, key string, offset, length int64, opts *driver.ReaderOptions) (driver.Reader, error) {
	if length == 0 {
		a, err := b.Attributes(ctx, key)
		if err != nil {
			return nil, err
		}
		if opts != nil && opts.BeforeRead != nil {
			if err := opts.BeforeRead(func(any) bool { return false }); err != nil {
				return nil, err
			}
		}
		return &reader{body: io.NopCloser(bytes.NewReader(nil)), attrs: driver.ReaderAttributes{ContentType: a.ContentType, ModTime: a.ModTime, Size: a.Size}}, nil
	}
	h := http.Header{}
	if offset > 0 || length > 0 {
		rg := fmt.Sprintf("bytes=%d-", offset)
		if length > 0 {
			rg += strconv.FormatInt(offset+length-1, 10)
		}
		h.Set("Range", rg)
	}
	resp, err := b.r.do(ctx, http.MethodGet, blobPath(key), nil, "", h)
	if err != nil {
		return nil, err
	}
	if opts != nil && opts.BeforeRead != nil {
		if err := opts.BeforeRead(func(any) bool { return false }); err != nil {
			resp.Body.Close()
			return nil, err
		}
	}
	rd := &reader{body: resp.Body, attrs: driver.ReaderAttributes{ContentType: resp.Header.Get("Content-Type")}}
	rd.attrs.Size, _ = strconv.ParseInt(resp.Header.Get("Drover-Blob-Size"), 10, 64)
	rd.attrs.ModTime, _ = http.ParseTime(resp.Header.Get("Last-Modified"))
	return rd, nil
}

type reader struct {
	body  io.ReadCloser
	attrs driver.ReaderAttributes
}

func (r *reader) Read(p []byte) (int, error)             { return r.body.Read(p) }
func (r *reader) Close() error                           { return r.body.Close() }
func (r *reader) Attributes() *driver.ReaderAttributes   { return &r.attrs }
func (r *reader) As(any) bool                            { return false }
func (b *bucket) As(any) bool                            { return false }
func (b *bucket) ErrorAs(error, any) bool                { return false }
func (b *bucket) ErrorCode(err error) gcerrors.ErrorCode { return errorCode(err) }
func (b *bucket) Close() error                           { return nil }
func (b *bucket) Copy(context.Context, string, string, *driver.CopyOptions) error {
	return taskdriver.Errorf(gcerrors.Unimplemented, "a remote runner's archive cannot copy blobs")
}

func (b *bucket) ListPaged(context.Context, *driver.ListOptions) (*driver.ListPage, error) {
	return nil, taskdriver.Errorf(gcerrors.Unimplemented, "a remote runner's archive cannot list blobs")
}

func (b *bucket) SignedURL(context.Context, string, *driver.SignedURLOptions) (string, error) {
	return "", taskdriver.Errorf(gcerrors.Unimplemented, "a remote runner's archive cannot sign URLs")
}

func (b *bucket) Delete(ctx context.Context, key string, opts *driver.DeleteOptions) error {
	if opts != nil && opts.BeforeDelete != nil {
		if err := opts.BeforeDelete(func(any) bool { return false }); err != nil {
			return err
		}
	}
	resp, err := b.r.do(ctx, http.MethodDelete, blobPath(key), nil, "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (b *bucket) NewTypedWriter(ctx context.Context, key, contentType string, opts *driver.WriterOptions) (driver.Writer, error) {
	if opts != nil && opts.BeforeWrite != nil {
		if err := opts.BeforeWrite(func(any) bool { return false }); err != nil {
			return nil, err
		}
	}
	h := http.Header{}
	if opts != nil {
		for k, v := range opts.Metadata {
			h.Set(metaPrefix+k, v)
		}
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	return &writer{ctx: ctx, b: b, key: key, contentType: contentType, header: h}, nil
}

// writer buffers a blob and PUTs it at Close; a write whose context is
// done by then is dropped, as gocloud's drivers do.
type writer struct {
	ctx         context.Context
	b           *bucket
	key         string
	contentType string
	header      http.Header
	buf         bytes.Buffer
}

func (w *writer) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *writer) Close() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Minute)
	defer cancel()
	return retrying(ctx, func() error {
		resp, err := w.b.r.do(ctx, http.MethodPut, blobPath(w.key), w.buf.Bytes(), w.contentType, w.header)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}
