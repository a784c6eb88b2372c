package task

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The state machine. Queues deliver events at least once and in any order,
// so the collector never asks "what happened last?" but "which event ranks
// highest?". A status document reflects the highest-ranked event applied to
// it, and every event carries all a document needs from its attempt, so any
// order and any number of duplicates of the same events give the same
// document. The ranking, highest first:
//
//  1. A terminal event beats any non-terminal one: terminal never regresses.
//  2. Among terminal events a cancellation wins; otherwise the earliest
//     attempt's outcome stands (the first outcome is the one clients may
//     already have read), succeeded beating failed within one attempt.
//  3. Among non-terminal events a later attempt beats an earlier one, and
//     within one attempt a later phase beats an earlier one
//     (submitted < started < retrying).
//  4. Remaining ties (two runners holding the same delivery) are broken by
//     time, then by runner name, so that the rule is a total order.

// phaseOrder orders the phases of one attempt.
func phaseOrder(p Phase) int {
	switch p {
	case PhaseSubmitted:
		return 0
	case PhaseStarted:
		return 1
	case PhaseRetrying:
		return 2
	case PhaseFailed:
		return 3
	case PhaseSucceeded:
		return 4
	case PhaseCancelled:
		return 5
	}
	return -1
}

// mark is what the ranking looks at: an event, or the event a document
// reflects.
type mark struct {
	phase   Phase
	attempt int
	at      time.Time
	runner  string
}

func (e *Event) mark() mark {
	return mark{phase: e.Phase, attempt: e.Attempt, at: e.At, runner: e.Runner}
}

func (s *Status) mark() mark {
	return mark{phase: s.Phase, attempt: s.Attempt, at: s.EventAt, runner: s.Runner}
}

// compareMarks returns +1 if a outranks b, -1 if b outranks a, 0 if they are
// the same event.
func compareMarks(a, b mark) int {
	at, bt := a.phase.State().Terminal(), b.phase.State().Terminal()
	switch {
	case at && !bt:
		return 1
	case bt && !at:
		return -1
	case at && bt:
		ac, bc := a.phase == PhaseCancelled, b.phase == PhaseCancelled
		if ac != bc {
			return boolSign(ac)
		}
		if a.attempt != b.attempt {
			return boolSign(a.attempt < b.attempt)
		}
		if a.phase != b.phase {
			return boolSign(phaseOrder(a.phase) > phaseOrder(b.phase))
		}
		if !a.at.Equal(b.at) {
			return boolSign(a.at.Before(b.at))
		}
		return -strings.Compare(a.runner, b.runner)
	default:
		if a.attempt != b.attempt {
			return boolSign(a.attempt > b.attempt)
		}
		if a.phase != b.phase {
			return boolSign(phaseOrder(a.phase) > phaseOrder(b.phase))
		}
		if !a.at.Equal(b.at) {
			return boolSign(a.at.After(b.at))
		}
		return strings.Compare(a.runner, b.runner)
	}
}

func boolSign(b bool) int {
	if b {
		return 1
	}
	return -1
}

// Intern returns the canonical copy of a name that many documents share
// (a function, queue or runner name), so that the documents a store keeps
// share one string instead of each holding the copy its decoder made:
// fewer live objects for the garbage collector to mark.
//
// The table is a plain map that only grows, to a bound (names beyond it
// are returned as they are), not unique.Make: its weak handles block
// every caller while a GC cycle finishes marking, a stall of several
// milliseconds on the submit and collect paths (go tool trace: "GC weak
// to strong wait").
func Intern(name string) string {
	if name == "" {
		return ""
	}
	if v, ok := names.Load(name); ok {
		return v.(string)
	}
	if namesHeld.Load() >= maxInterned {
		return name
	}
	name = strings.Clone(name) // not a slice of a larger buffer kept alive
	v, loaded := names.LoadOrStore(name, name)
	if !loaded {
		namesHeld.Add(1)
	}
	return v.(string)
}

// maxInterned bounds the names Intern keeps: function, queue and runner
// names are few, but nothing stops a caller from using many.
const maxInterned = 4096

var (
	names     sync.Map // string → the same string
	namesHeld atomic.Int64
)

// canonical returns p as the constant of its phase, not a decoded copy.
func (p Phase) canonical() Phase {
	for _, c := range [...]Phase{PhaseSucceeded, PhaseStarted, PhaseFailed, PhaseRetrying, PhaseCancelled, PhaseSubmitted} {
		if p == c {
			return c
		}
	}
	return p
}

// Apply applies e to s by the ranking above and reports whether s changed.
// A zero Status (a document the store does not have yet) takes its task
// fields from the event. Everything else in s comes from e alone: an event
// that interrupts an attempt (a cancellation) carries that attempt's number,
// runner and start time.
func (s *Status) Apply(e *Event) bool {
	if s.ID == "" {
		s.ID = e.TaskID
		s.Function = Intern(e.Function)
		s.Queue = Intern(e.Queue)
		s.MaxAttempts = e.MaxAttempts
		s.CreatedAt = e.CreatedAt
		s.Kind = KindTask
		s.Phase = PhaseSubmitted
		s.State = Queued
		s.EventAt = e.CreatedAt
	}
	if s.Phase != "" && compareMarks(e.mark(), s.mark()) <= 0 {
		return false
	}
	s.Phase = e.Phase.canonical()
	s.State = e.Phase.State()
	s.EventAt = e.At
	s.Runner = Intern(e.Runner)
	s.Matched, s.MatchedText = e.Matched, ""
	if len(e.Matched) > 0 {
		s.MatchedText = e.Matched.String()
	}
	s.Error = e.Error
	s.Result = e.Result
	s.ResultJSON = string(e.Result)
	s.ResultRef = e.ResultRef
	s.NextAttemptAt = e.NextAttemptAt
	s.Attempt = e.Attempt
	s.StartedAt = e.StartedAt
	if s.StartedAt.IsZero() && e.Phase == PhaseStarted {
		s.StartedAt = e.At
	}
	s.FinishedAt = time.Time{}
	if s.State.Terminal() {
		s.FinishedAt = e.At
	}
	return true
}
