package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// Idempotency keys (see pkg/task/claim.go for the claim protocol): one key
// names one task for its whole window. A request that reuses a key gets
// that task's status; with a different request it is refused (422), as is
// a batch that names one key twice.

// repeatedKeys refuses a batch in which two tasks carry the same key.
func repeatedKeys(specs []task.Spec) error {
	if len(specs) < 2 {
		return nil
	}
	first := map[string]int{}
	for i, sp := range specs {
		if sp.IdempotencyKey == "" {
			continue
		}
		if j, dup := first[sp.IdempotencyKey]; dup {
			return &task.FieldError{
				Field:  fmt.Sprintf("tasks[%d].idempotency_key", i),
				Reason: fmt.Sprintf("%q is also the key of tasks[%d]; one key names one task", clip(sp.IdempotencyKey), j),
			}
		}
		first[sp.IdempotencyKey] = i
	}
	return nil
}

// fingerprint identifies a normalized spec: a hash of its canonical form
// (defaults applied, args with insignificant whitespace removed), so that
// a key reused with another request can be told from a retry.
func fingerprint(sp task.Spec) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(sp.Function))
	field([]byte(sp.Queue))
	var args bytes.Buffer
	if len(sp.Args) > 0 && json.Compact(&args, sp.Args) == nil {
		field(args.Bytes())
	} else {
		field(sp.Args)
	}
	var n [24]byte
	binary.BigEndian.PutUint64(n[0:], uint64(sp.Timeout))
	binary.BigEndian.PutUint64(n[8:], uint64(sp.MaxAttempts))
	binary.BigEndian.PutUint64(n[16:], uint64(sp.Delay))
	h.Write(n[:])
	if len(sp.Requires) > 0 {
		field([]byte("requires:" + sp.Requires.String()))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// claimKey claims sp's key for st, a task not yet enqueued. It returns the
// caller's pending claim, or, when the key already names a task, that
// task's status (held). A claim still pending (its request is enqueueing)
// is waited for, up to KeyWait; past its takeover time it is fenced off
// (task.Store.TakeOverKey) instead.
func (s *Service) claimKey(ctx context.Context, field string, sp task.Spec, st *task.Status) (mine *task.KeyClaim, held *task.Status, err error) {
	key := sp.IdempotencyKey
	terms := task.KeyTerms{Fingerprint: fingerprint(sp), Window: s.cfg.IdempotencyWindow, Takeover: s.cfg.KeyTakeover}
	c, err := s.store.ClaimKey(ctx, key, st, terms, time.Now().UTC())
	if err != nil {
		return nil, nil, fmt.Errorf("submit %s: %w", st.ID, err)
	}
	deadline := time.Now().Add(s.cfg.KeyWait)
	for wait := 5 * time.Millisecond; ; wait = min(wait*2, 250*time.Millisecond) {
		switch {
		case c == nil:
			// Released by a request that could not enqueue: claim it.
			if c, err = s.store.ClaimKey(ctx, key, st, terms, time.Now().UTC()); err != nil {
				return nil, nil, fmt.Errorf("submit %s: %w", st.ID, err)
			}
			continue
		case c.TaskID == st.ID:
			return c, nil, nil
		case c.Fingerprint != "" && c.Fingerprint != terms.Fingerprint:
			return nil, nil, &task.FieldError{Field: field, Reason: fmt.Sprintf(
				"%q was used with a different request (task %s); a key names one request: use a new key for a new request", clip(key), c.TaskID)}
		case !c.Pending:
			held, err := s.statusOf(ctx, c)
			return nil, held, err
		case time.Now().After(c.TakeoverAt):
			if c, err = s.store.TakeOverKey(ctx, c, st, terms, time.Now().UTC()); err != nil {
				return nil, nil, fmt.Errorf("submit %s: %w", st.ID, err)
			}
			continue
		case time.Now().After(deadline):
			return nil, nil, &requestError{
				status: http.StatusConflict, kind: probConflict, retryAfter: 1,
				detail: fmt.Sprintf("idempotency key %q: the request that first used it (task %s) is still enqueueing it; retry the same request", clip(key), c.TaskID),
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(wait):
		}
		if c, err = s.store.ReadKey(ctx, key); err != nil {
			return nil, nil, fmt.Errorf("submit %s: %w", st.ID, err)
		}
		if c != nil && c.Pending {
			// A document of the claimed task (written by its request
			// after enqueueing it, or by a runner starting it) proves
			// it real: commit the claim for it.
			if doc, err := s.store.Get(ctx, c.TaskID); err == nil && !task.FencedOff(doc) {
				if err := s.store.CommitKey(ctx, c); err != nil && !errors.Is(err, task.ErrKeyTaken) {
					return nil, nil, fmt.Errorf("submit %s: %w", st.ID, err)
				}
				if c, err = s.store.ReadKey(ctx, key); err != nil {
					return nil, nil, fmt.Errorf("submit %s: %w", st.ID, err)
				}
			}
		}
	}
}

// statusOf returns the status of the task claim c names: its document, or
// the status the first request was answered with once the document has
// expired or been evicted.
func (s *Service) statusOf(ctx context.Context, c *task.KeyClaim) (*task.Status, error) {
	st, err := s.store.Get(ctx, c.TaskID)
	if errors.Is(err, task.ErrNotFound) {
		return c.Accepted(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency key %q: %w", clip(c.Key), err)
	}
	return st, nil
}

// replay returns the status of the task key names now, nil if the claim is
// gone or still pending.
func (s *Service) replay(ctx context.Context, key string) (*task.Status, error) {
	c, err := s.store.ReadKey(ctx, key)
	if err != nil || c == nil || c.Pending {
		return nil, err
	}
	return s.statusOf(ctx, c)
}
