package task

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"gocloud.dev/gcerrors"
)

// Idempotency keys. A key maps to one task for its whole window, whatever
// the order and speed of the requests that use it, and independently of
// how long the task's status is kept: the claim document records the task
// and the request itself, and carries its own expiry (the window).
//
// The protocol, all of it conditional writes (Create, or a Replace or
// Delete under the document's revision), none of it decided by a clock:
//
//  1. A request claims the key by creating its claim document, pending,
//     for the task it is about to submit. Only one Create succeeds; every
//     other request reads the claim and answers with its task.
//  2. The claimant enqueues the task, then commits the claim (pending →
//     committed). If it cannot enqueue, it deletes its pending claim.
//  3. A request that finds the claim pending waits for it to be committed
//     or released. A claim still pending past its takeover time may be
//     fenced off, but only with proof that its task never started and was
//     never recorded as enqueued: the fence creates the first task's
//     status document, cancelled. Create succeeds only if no runner
//     started the task (runners create or update that document, under its
//     revision, before they run anything: Store.Start) and the claimant
//     did not record it (it writes the document after enqueueing). If the
//     Create succeeds, runners drop the first task's message should it
//     exist, and the key passes to the new request's task; if it fails,
//     the first task is real and the claim is committed for it.
//
// Elapsed time only decides when a waiting request may ask for that
// proof, never whether the first claimant failed.

// Claim states.
const (
	claimPending   = "pending"
	claimCommitted = "committed"
)

// takeoverRunner marks a status document created by the fence of a
// takeover (step 3 above).
const takeoverRunner = "idempotency-takeover"

// FencedOff reports whether st is the document of a task fenced off by an
// idempotency takeover (it never ran, and never will).
func FencedOff(st *Status) bool { return st.State == Cancelled && st.Runner == takeoverRunner }

// ErrKeyTaken is returned by CommitKey when the claim was fenced off (its
// task cancelled) by another request with the same key.
var ErrKeyTaken = errors.New("idempotency key passed to another request")

// keyDoc is how a claim is stored.
type keyDoc struct {
	ID          string    `docstore:"id"`
	Kind        string    `docstore:"kind"`
	Key         string    `docstore:"key"`
	TaskID      string    `docstore:"task_id"`
	Fingerprint string    `docstore:"fingerprint"`
	State       string    `docstore:"state"`
	ClaimedAt   time.Time `docstore:"claimed_at"`
	TakeoverAt  time.Time `docstore:"takeover_at"`
	ExpiresAt   int64     `docstore:"expires_at"`
	// The status the first request was answered with (state queued).
	Function         string    `docstore:"function"`
	Queue            string    `docstore:"queue"`
	MaxAttempts      int       `docstore:"max_attempts"`
	CreatedAt        time.Time `docstore:"created_at"`
	DocstoreRevision any
}

// KeyClaim is an idempotency key's claim as the store holds it.
type KeyClaim struct {
	Key         string
	TaskID      string
	Fingerprint string
	// Pending: the request that claimed the key has not yet enqueued its
	// task (or died trying).
	Pending bool
	// TakeoverAt is when another request may try to fence off a claim
	// that is still pending.
	TakeoverAt time.Time
	// ExpiresAt is the end of the key's window.
	ExpiresAt time.Time
	doc       *keyDoc
}

// Accepted is the status document the first request with the key was
// answered with: what a replay returns once the task's own document has
// expired or been evicted.
func (c *KeyClaim) Accepted() *Status {
	d := c.doc
	return &Status{
		ID: d.TaskID, Function: d.Function, Queue: d.Queue, State: Queued, MaxAttempts: d.MaxAttempts,
		CreatedAt: d.CreatedAt, IdempotencyKey: c.Key,
	}
}

func (d *keyDoc) claim() *KeyClaim {
	return &KeyClaim{
		Key: d.Key, TaskID: d.TaskID, Fingerprint: d.Fingerprint,
		// Claims written before claims had states were committed.
		Pending: d.State == claimPending, TakeoverAt: d.TakeoverAt,
		ExpiresAt: time.Unix(d.ExpiresAt, 0), doc: d,
	}
}

func keyDocID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "key:" + hex.EncodeToString(sum[:])
}

// KeyTerms are what a new claim records besides the task.
type KeyTerms struct {
	// Fingerprint identifies the request (a hash of its canonical form):
	// a key reused with another request is refused by the caller.
	Fingerprint string
	// Window is how long the key maps to its task.
	Window time.Duration
	// Takeover is how long a pending claim is left to its claimant before
	// another request may try to fence it off.
	Takeover time.Duration
}

func newKeyDoc(key string, st *Status, terms KeyTerms, now time.Time) *keyDoc {
	return &keyDoc{
		ID: keyDocID(key), Kind: KindKey, Key: key, TaskID: st.ID, Fingerprint: terms.Fingerprint,
		State: claimPending, ClaimedAt: now, TakeoverAt: now.Add(terms.Takeover),
		ExpiresAt: now.Add(terms.Window).Unix(),
		Function:  st.Function, Queue: st.Queue, MaxAttempts: st.MaxAttempts, CreatedAt: st.CreatedAt,
	}
}

// ClaimKey claims key, pending, for st (the accepted status of a task not
// yet enqueued), and returns the claim the store holds: the caller's when
// its TaskID is st.ID, else the first request's. A claim whose window has
// ended is replaced.
func (s *Store) ClaimKey(ctx context.Context, key string, st *Status, terms KeyTerms, now time.Time) (*KeyClaim, error) {
	for range maxConflictRetries {
		d := newKeyDoc(key, st, terms, now)
		err := s.coll.Create(ctx, d)
		if err == nil {
			return d.claim(), nil
		}
		if gcerrors.Code(err) != gcerrors.AlreadyExists {
			return nil, fmt.Errorf("claim idempotency key for %s: %w", st.ID, err)
		}
		old, err := s.readKey(ctx, key)
		if err != nil {
			return nil, err
		}
		if old == nil {
			continue // released meanwhile
		}
		if now.Unix() < old.ExpiresAt {
			return old.claim(), nil
		}
		d.DocstoreRevision = old.DocstoreRevision
		if err := s.coll.Replace(ctx, d); err == nil {
			return d.claim(), nil
		} else if !conflict(err) && gcerrors.Code(err) != gcerrors.NotFound {
			return nil, fmt.Errorf("claim expired idempotency key for %s: %w", st.ID, err)
		}
	}
	return nil, fmt.Errorf("claim idempotency key for %s: still conflicting after %d tries", st.ID, maxConflictRetries)
}

// ReadKey returns the claim of key, nil if there is none.
func (s *Store) ReadKey(ctx context.Context, key string) (*KeyClaim, error) {
	d, err := s.readKey(ctx, key)
	if err != nil || d == nil {
		return nil, err
	}
	return d.claim(), nil
}

func (s *Store) readKey(ctx context.Context, key string) (*keyDoc, error) {
	d := &keyDoc{ID: keyDocID(key)}
	if err := s.coll.Get(ctx, d); err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	if d.Kind != KindKey {
		return nil, nil
	}
	return d, nil
}

// CommitKey marks the caller's pending claim c committed: its task is
// enqueued. It returns ErrKeyTaken if the claim was fenced off meanwhile
// (the caller's task is then cancelled and never runs).
func (s *Store) CommitKey(ctx context.Context, c *KeyClaim) error {
	d := c.doc
	for range maxConflictRetries {
		if d.TaskID != c.TaskID {
			return fmt.Errorf("commit idempotency key for %s: %w (to %s)", c.TaskID, ErrKeyTaken, d.TaskID)
		}
		if d.State != claimPending {
			c.Pending = false
			return nil // committed for it by a request that checked
		}
		next := *d
		next.State = claimCommitted
		err := s.coll.Replace(ctx, &next)
		if err == nil {
			c.doc, c.Pending = &next, false
			return nil
		}
		if !conflict(err) && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("commit idempotency key for %s: %w", c.TaskID, err)
		}
		if d, err = s.readKey(ctx, c.Key); err != nil {
			return err
		}
		if d == nil {
			return fmt.Errorf("commit idempotency key for %s: %w (the claim is gone)", c.TaskID, ErrKeyTaken)
		}
	}
	return fmt.Errorf("commit idempotency key for %s: still conflicting after %d tries", c.TaskID, maxConflictRetries)
}

// ReleaseKey drops the caller's pending claim c: its task could not be
// enqueued. A claim that has passed to another task is left alone.
func (s *Store) ReleaseKey(ctx context.Context, c *KeyClaim) error {
	d := c.doc
	for range maxConflictRetries {
		if d == nil || d.TaskID != c.TaskID || d.State != claimPending {
			return nil
		}
		err := s.coll.Delete(ctx, d)
		if err == nil || gcerrors.Code(err) == gcerrors.NotFound {
			return nil
		}
		if !conflict(err) {
			return fmt.Errorf("release idempotency key of %s: %w", c.TaskID, err)
		}
		if d, err = s.readKey(ctx, c.Key); err != nil {
			return err
		}
	}
	return fmt.Errorf("release idempotency key of %s: still conflicting after %d tries", c.TaskID, maxConflictRetries)
}

// TakeOverKey fences off old, a claim still pending past its takeover
// time, for st, the caller's new task (step 3 of the protocol). It
// returns the claim the store holds afterwards: the caller's, pending,
// if the first task provably never started and was never recorded (it is
// now cancelled); else the first task's, committed.
func (s *Store) TakeOverKey(ctx context.Context, old *KeyClaim, st *Status, terms KeyTerms, now time.Time) (*KeyClaim, error) {
	first := old.Accepted()
	fence := &Status{
		ID: first.ID, Function: first.Function, Queue: first.Queue, MaxAttempts: first.MaxAttempts,
		CreatedAt: first.CreatedAt, IdempotencyKey: old.Key,
		Kind: KindTask, Phase: PhaseCancelled, State: Cancelled, Runner: takeoverRunner,
		EventAt: now, FinishedAt: now,
		Error: fmt.Sprintf("abandoned: the request that submitted it with its idempotency key did not enqueue it by %s; the key passed to task %s",
			old.TakeoverAt.UTC().Format(time.RFC3339), st.ID),
	}
	s.expiry(fence)
	err := s.coll.Create(ctx, fence)
	switch {
	case err == nil:
		d := newKeyDoc(old.Key, st, terms, now)
		d.DocstoreRevision = old.doc.DocstoreRevision
		if err := s.coll.Replace(ctx, d); err != nil {
			if conflict(err) || gcerrors.Code(err) == gcerrors.NotFound {
				// The claim changed meanwhile (another takeover, or
				// the first claimant committing a task now cancelled):
				// whatever it holds now stands.
				return s.ReadKey(ctx, old.Key)
			}
			return nil, fmt.Errorf("take over idempotency key from %s: %w", old.TaskID, err)
		}
		return d.claim(), nil
	case gcerrors.Code(err) != gcerrors.AlreadyExists:
		return nil, fmt.Errorf("fence off task %s: %w", old.TaskID, err)
	}
	cur, err := s.Get(ctx, old.TaskID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if cur != nil && FencedOff(cur) {
		// Another request fenced it off first.
		return s.ReadKey(ctx, old.Key)
	}
	// The first task started or was recorded as enqueued: it is real.
	if err := s.CommitKey(ctx, old); err != nil && !errors.Is(err, ErrKeyTaken) {
		return nil, err
	}
	return s.ReadKey(ctx, old.Key)
}
