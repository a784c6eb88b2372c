package task

import (
	"context"
	"fmt"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/task/driver"
)

// Started is what StartMany decided about one execution.
type Started struct {
	// Attempt is the number of the execution about to start (1 for the
	// first), counted from the status document: attempts count
	// executions, not deliveries. When GaveUp, it is the last attempt
	// that started.
	Attempt int
	// State is the task's state when it is terminal (the execution must
	// not start: a duplicate delivery, a cancelled or fenced-off task),
	// else "".
	State State
	// GaveUp: MaxAttempts executions have started already and none has
	// recorded an outcome; no other starts. The last of them may still be
	// running (a queue delivers a message to two receivers at once, or
	// again when its holder extends its lease late), or its runner died:
	// LastStartedAt, when that execution started, lets the caller tell
	// the two apart by the task's timeout.
	GaveUp        bool
	LastStartedAt time.Time
}

// StartMany records, for each event (a started event of a delivery about
// to run, its Attempt left zero), that an execution of its task begins:
// the task's document moves to running with the next attempt number,
// under its revision (created if the task has no document yet). A task
// whose document is terminal, or whose attempts are used up, is not
// written. Concurrent starts of one task get distinct attempts, and a
// start and a cancellation or an idempotency fence (see claim.go) are
// ordered by the document's revision: one of them sees the other.
//
// A start is recorded once however often its event is passed: a
// document that is running with e's runner and start time is e's own
// start, and StartMany answers its attempt again without a write. So a
// caller whose call failed after its write may have landed (a deadline,
// a lost answer) calls again with the same events.
func (s *Store) StartMany(ctx context.Context, evs []*Event) ([]Started, error) {
	out := make([]Started, len(evs))
	pending := make([]int, len(evs))
	for i := range evs {
		pending[i] = i
	}
	for round := 0; len(pending) > 0; round++ {
		if round == maxConflictRetries {
			return nil, fmt.Errorf("start %d tasks (first %s): still conflicting after %d tries", len(pending), evs[pending[0]].TaskID, round)
		}
		ids := make([]string, len(pending))
		for k, i := range pending {
			ids[k] = evs[i].TaskID
		}
		cur, err := s.GetMany(ctx, ids)
		if err != nil {
			return nil, err
		}
		var (
			idx    []int
			docs   []any
			create []bool
			later  []int               // a second start of a task in this round
			seen   = map[string]bool{} // tasks written in this round
		)
		for k, i := range pending {
			e, st := evs[i], cur[k]
			if seen[e.TaskID] {
				// Two deliveries of one task in one call (SQS and moto
				// deliver a message to concurrent receivers): one write
				// per document and round, so the second start is decided
				// in the next round, against the first one's document.
				later = append(later, i)
				continue
			}
			seen[e.TaskID] = true
			fresh := st == nil
			if fresh {
				st = &Status{}
			}
			if !fresh && ownStart(st, e) {
				// This start is written already: a write that landed
				// though its answer was lost (the SDK's retry of it then
				// conflicted with it), or an earlier call with e whose
				// answer came too late. Counting it again would spend
				// an attempt that never ran.
				out[i] = Started{Attempt: st.Attempt}
				continue
			}
			if st.State.Terminal() {
				out[i] = Started{Attempt: st.Attempt, State: st.State}
				continue
			}
			next := st.Attempt + 1
			if next > e.MaxAttempts {
				out[i] = Started{Attempt: st.Attempt, GaveUp: true, LastStartedAt: st.StartedAt}
				continue
			}
			ev := *e
			ev.Attempt, ev.Phase = next, PhaseStarted
			if ev.StartedAt.IsZero() {
				ev.StartedAt = ev.At
			}
			st.Apply(&ev)
			s.expiry(st)
			if fresh {
				st.DocstoreRevision = nil
			}
			out[i] = Started{Attempt: next}
			idx, docs, create = append(idx, i), append(docs, st), append(create, fresh)
		}
		pending = later
		if len(docs) == 0 {
			continue // nothing to write; a later start, if any, is decided next round
		}
		errs, err := s.writeAll(ctx, docs, create)
		if err != nil {
			return nil, fmt.Errorf("start %d tasks: %w", len(docs), err)
		}
		for k, err := range errs {
			if err == nil {
				continue
			}
			if !conflict(err) && driver.Code(err) != gcerrors.NotFound {
				return nil, fmt.Errorf("start task %s: %w", evs[idx[k]].TaskID, err)
			}
			pending = append(pending, idx[k])
		}
	}
	return out, nil
}

// ownStart reports whether st records e's start: a running attempt of
// e's runner that started when e did (the runner's clock, to the
// nanosecond: two deliveries of a task on one runner start apart).
func ownStart(st *Status, e *Event) bool {
	at := e.StartedAt
	if at.IsZero() {
		at = e.At
	}
	return st.State == Running && st.Runner == e.Runner && st.StartedAt.Equal(at)
}
