package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

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
	// PrefixRetained keeps the message of each task that ended failed or
	// cancelled, so that it can be retried (POST /v1/tasks/{id}/retry).
	PrefixRetained = "retained/"
	// PrefixDeadLetters keeps the task messages the dead-letter sweeper
	// took from the DLQ until they are redriven.
	PrefixDeadLetters = "deadletters/"
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

// blobCallTimeout bounds each Put and Get: the AWS SDK sets no response
// deadline, and a call that never returns would stop its caller (a
// runner's worker, while its heartbeat keeps the task's lease) for good,
// with nothing logged. Far longer than a whole payload takes.
const blobCallTimeout = 5 * time.Minute

// Put writes body at key.
func (a *Archive) Put(ctx context.Context, key, contentType string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, blobCallTimeout)
	defer cancel()
	err := a.bucket.WriteAll(ctx, key, body, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("write blob %s: %w", key, err)
	}
	return nil
}

// Get reads the blob at key, at most limit bytes (0: no limit).
func (a *Archive) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, blobCallTimeout)
	defer cancel()
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

// LogKey is where an attempt's output stream ("stdout" or "stderr") is
// kept, each attempt under its own key.
func LogKey(id string, attempt int, stream string) string {
	return PrefixLogs + id + "/" + strconv.Itoa(attempt) + "/" + stream
}

// RetainedKey is where the message of a task that ended failed or
// cancelled is kept for a retry.
func RetainedKey(id string) string { return PrefixRetained + id }

// DeadLetterKey is where a dead-lettered task's message is kept until it
// is redriven.
func DeadLetterKey(id string) string { return PrefixDeadLetters + id }

// Listed is one blob of a listing.
type Listed struct {
	Key     string
	ModTime time.Time
}

// List returns up to limit blobs under prefix, in key order.
func (a *Archive) List(ctx context.Context, prefix string, limit int) ([]Listed, error) {
	it := a.bucket.List(&blob.ListOptions{Prefix: prefix})
	var out []Listed
	for len(out) < limit {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		if !o.IsDir {
			out = append(out, Listed{Key: o.Key, ModTime: o.ModTime})
		}
	}
	return out, nil
}

// PoisonKey is where an undecodable message is kept.
func PoisonKey(messageID string) string { return PrefixPoison + messageID }
