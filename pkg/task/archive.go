package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Key prefixes in the archive bucket. Lifecycle rules (see infra/terraform)
// expire each prefix on its own schedule.
const (
	PrefixPayloads = "payloads/"
	PrefixResults  = "results/"
	PrefixLogs     = "logs/"
	PrefixPoison   = "poison/"
)

// ErrNoBlob is returned when a referenced blob does not exist.
var ErrNoBlob = errors.New("blob not found")

// Archive is the blob bucket that holds what does not fit in messages and
// documents: large payloads and results (claim checks), logs, and poison
// messages.
type Archive struct {
	bucket *blob.Bucket
}

// OpenArchive opens the bucket at a gocloud blob URL (file://, s3://, ...).
func OpenArchive(ctx context.Context, url string) (*Archive, error) {
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", redactURL(url), err)
	}
	return &Archive{bucket: b}, nil
}

// NewArchive wraps an open bucket.
func NewArchive(b *blob.Bucket) *Archive { return &Archive{bucket: b} }

// Bucket returns the underlying bucket, for functions that keep their own
// blobs there.
func (a *Archive) Bucket() *blob.Bucket { return a.bucket }

// Close closes the bucket.
func (a *Archive) Close() error { return a.bucket.Close() }

// Put writes body at key.
func (a *Archive) Put(ctx context.Context, key, contentType string, body []byte) error {
	err := a.bucket.WriteAll(ctx, key, body, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("write blob %s: %w", key, err)
	}
	return nil
}

// Get reads the blob at key, at most limit bytes (0: no limit).
func (a *Archive) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	r, err := a.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	src := io.Reader(r)
	if limit > 0 {
		src = io.LimitReader(r, limit+1)
	}
	b, err := io.ReadAll(src)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", key, err)
	}
	if limit > 0 && int64(len(b)) > limit {
		return nil, fmt.Errorf("read blob %s: larger than %d bytes", key, limit)
	}
	return b, nil
}

// Open opens the blob at key for reading.
func (a *Archive) Open(ctx context.Context, key string) (*blob.Reader, error) {
	r, err := a.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("read blob %s: %w", key, ErrNoBlob)
		}
		return nil, fmt.Errorf("read blob %s: %w", key, err)
	}
	return r, nil
}

// Delete removes the blob at key; a missing blob is not an error.
func (a *Archive) Delete(ctx context.Context, key string) error {
	err := a.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	return nil
}

// Ping checks that the bucket answers.
func (a *Archive) Ping(ctx context.Context) error {
	if _, err := a.bucket.IsAccessible(ctx); err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	return nil
}

// PayloadKey is where a task's claim-checked arguments are kept.
func PayloadKey(id string) string { return PrefixPayloads + id }

// ResultKey is where an attempt's claim-checked result is kept. Each
// attempt writes its own key, so a re-run never overwrites a result that a
// status document already points to.
func ResultKey(id string, attempt int) string {
	return PrefixResults + id + "/" + strconv.Itoa(attempt) + ".json"
}

// PoisonKey is where an undecodable message is kept.
func PoisonKey(messageID string) string { return PrefixPoison + messageID }
