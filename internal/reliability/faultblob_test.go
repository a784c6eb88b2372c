package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/gcerrors"
)

// faultConfig says which blob calls fail: a share of writes under
// WritePrefix and of reads under ReadPrefix, half of those failures as
// errors and half as timeouts (a delay, then DeadlineExceeded).
type faultConfig struct {
	WritePrefix, ReadPrefix string
	Rate                    float64
	Delay                   time.Duration

	mu       sync.Mutex
	rng      *rand.Rand
	errors   atomic.Int64
	timeouts atomic.Int64
}

var (
	errInjected = errors.New("injected blob fault")
	errTimeout  = errors.New("injected blob timeout")
)

// fault decides whether a call on key fails, and how.
func (c *faultConfig) fault(ctx context.Context, key, prefix string) error {
	if prefix == "" || !strings.HasPrefix(key, prefix) {
		return nil
	}
	c.mu.Lock()
	if c.rng == nil {
		c.rng = rand.New(rand.NewPCG(1, 2))
	}
	hit, timeout := c.rng.Float64() < c.Rate, c.rng.IntN(2) == 0
	c.mu.Unlock()
	if !hit {
		return nil
	}
	if timeout {
		c.timeouts.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(c.Delay):
		}
		return fmt.Errorf("%s: %w", key, errTimeout)
	}
	c.errors.Add(1)
	return fmt.Errorf("%s: %w", key, errInjected)
}

// faultBucket is a blob driver over another bucket that injects faults.
type faultBucket struct {
	inner *blob.Bucket
	cfg   *faultConfig
}

var _ driver.Bucket = (*faultBucket)(nil)

func (b *faultBucket) ErrorCode(err error) gcerrors.ErrorCode {
	switch {
	case errors.Is(err, errTimeout):
		return gcerrors.DeadlineExceeded
	case errors.Is(err, errInjected):
		return gcerrors.Internal
	}
	return gcerrors.Code(err)
}

func (b *faultBucket) As(any) bool             { return false }
func (b *faultBucket) ErrorAs(error, any) bool { return false }
func (b *faultBucket) Close() error            { return b.inner.Close() }

func (b *faultBucket) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	a, err := b.inner.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return &driver.Attributes{CacheControl: a.CacheControl, ContentDisposition: a.ContentDisposition,
		ContentEncoding: a.ContentEncoding, ContentLanguage: a.ContentLanguage, ContentType: a.ContentType,
		Metadata: a.Metadata, CreateTime: a.CreateTime, ModTime: a.ModTime, Size: a.Size, MD5: a.MD5, ETag: a.ETag}, nil
}

func (b *faultBucket) ListPaged(ctx context.Context, o *driver.ListOptions) (*driver.ListPage, error) {
	token, size := o.PageToken, o.PageSize
	if token == nil {
		token = blob.FirstPageToken
	}
	if size <= 0 {
		size = 1000
	}
	objs, next, err := b.inner.ListPage(ctx, token, size, &blob.ListOptions{Prefix: o.Prefix, Delimiter: o.Delimiter})
	if err != nil {
		return nil, err
	}
	page := &driver.ListPage{NextPageToken: next}
	for _, x := range objs {
		page.Objects = append(page.Objects, &driver.ListObject{Key: x.Key, ModTime: x.ModTime, Size: x.Size, MD5: x.MD5, IsDir: x.IsDir})
	}
	return page, nil
}

type faultReader struct {
	*blob.Reader
}

func (r faultReader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{ContentType: r.ContentType(), ModTime: r.ModTime(), Size: r.Size()}
}
func (r faultReader) As(any) bool { return false }

func (b *faultBucket) NewRangeReader(ctx context.Context, key string, offset, length int64, _ *driver.ReaderOptions) (driver.Reader, error) {
	if err := b.cfg.fault(ctx, key, b.cfg.ReadPrefix); err != nil {
		return nil, err
	}
	r, err := b.inner.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, err
	}
	return faultReader{r}, nil
}

// failingWriter takes the bytes and fails at Close, storing nothing.
type failingWriter struct {
	buf bytes.Buffer
	err error
}

func (w *failingWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *failingWriter) Close() error                { return w.err }

func (b *faultBucket) NewTypedWriter(ctx context.Context, key, contentType string, _ *driver.WriterOptions) (driver.Writer, error) {
	if err := b.cfg.fault(ctx, key, b.cfg.WritePrefix); err != nil {
		return &failingWriter{err: err}, nil
	}
	w, err := b.inner.NewWriter(ctx, key, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (b *faultBucket) Copy(ctx context.Context, dst, src string, _ *driver.CopyOptions) error {
	return b.inner.Copy(ctx, dst, src, nil)
}

func (b *faultBucket) Delete(ctx context.Context, key string, _ *driver.DeleteOptions) error {
	return b.inner.Delete(ctx, key)
}

func (b *faultBucket) SignedURL(context.Context, string, *driver.SignedURLOptions) (string, error) {
	return "", errors.New("faultBucket: no signed URLs")
}

var _ io.WriteCloser = (*failingWriter)(nil)
