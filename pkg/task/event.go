package task

import (
	"encoding/json"
	"time"
)

// Phase is what an event reports about one attempt of a task.
type Phase string

// The phases of an attempt. PhaseSubmitted is the dispatcher's record of a
// new task; started, retrying, succeeded and failed come from runners;
// PhaseCancelled comes from a cancel request.
const (
	PhaseSubmitted Phase = "submitted"
	PhaseStarted   Phase = "started"
	PhaseRetrying  Phase = "retrying"
	PhaseSucceeded Phase = "succeeded"
	PhaseFailed    Phase = "failed"
	PhaseCancelled Phase = "cancelled"
)

// State returns the task state an event of phase p puts a task in.
func (p Phase) State() State {
	switch p {
	case PhaseStarted:
		return Running
	case PhaseRetrying:
		return Retrying
	case PhaseSucceeded:
		return Succeeded
	case PhaseFailed:
		return Failed
	case PhaseCancelled:
		return Cancelled
	}
	return Queued
}

// Event is what a runner publishes about an attempt, for the collector to
// apply to the status store. Every event carries the whole story of its
// attempt (start time, runner, outcome), so the final document depends only
// on which event ranks highest, never on the order events arrive in.
type Event struct {
	TaskID      string          `json:"task_id"`
	Function    string          `json:"function"`
	Queue       string          `json:"queue"`
	MaxAttempts int             `json:"max_attempts"`
	CreatedAt   time.Time       `json:"created_at"`
	Attempt     int             `json:"attempt"`
	Phase       Phase           `json:"phase"`
	Runner      string          `json:"runner,omitempty"`
	At          time.Time       `json:"at"`
	StartedAt   time.Time       `json:"started_at,omitzero"`
	Error       string          `json:"error,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	ResultRef   string          `json:"result_ref,omitempty"`
	// NextAttemptAt is set on Retrying events.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// Traceparent and Tracestate are the W3C trace context of the
	// attempt's span (or of the task message, where the runner does not
	// trace), empty when tracing is off.
	Traceparent string `json:"traceparent,omitempty"`
	Tracestate  string `json:"tracestate,omitempty"`
	// Matched are the runner's traits that met the task's requirements.
	Matched Traits `json:"matched,omitempty"`
}

// NewEvent returns the event that runner reports at at about attempt of
// the task m carries; the caller sets its phase and outcome.
func NewEvent(m *Message, attempt int, runner string, at time.Time) Event {
	return Event{
		TaskID: m.ID, Function: m.Function, Queue: m.Queue, MaxAttempts: m.MaxAttempts,
		CreatedAt: m.CreatedAt, Attempt: attempt, Runner: runner, At: at,
		Traceparent: m.Traceparent, Tracestate: m.Tracestate,
	}
}

// RunnerInfo is a runner's heartbeat: who it is and what it is doing. The
// collector keeps the latest one per runner.
type RunnerInfo struct {
	ID          string    `json:"id" docstore:"id"`
	Name        string    `json:"name" docstore:"name"`
	Host        string    `json:"host,omitempty" docstore:"host"`
	Functions   []string  `json:"functions" docstore:"functions"`
	Concurrency int       `json:"concurrency" docstore:"concurrency"`
	Active      int       `json:"active" docstore:"active"`
	StartedAt   time.Time `json:"started_at" docstore:"started_at"`
	SeenAt      time.Time `json:"seen_at" docstore:"seen_at"`
	// Exec says how the runner's exec function runs bundles:
	// "isolated (...)", "unsafe (...)" or "refused: ..."; empty without
	// exec.
	Exec string `json:"exec,omitempty" docstore:"exec"`
	// Queues are the queues the runner takes tasks from, Traits what it
	// offers (detected and declared, see Traits).
	Queues    []string `json:"queues,omitempty" docstore:"queues"`
	Traits    Traits   `json:"traits,omitempty" docstore:"traits"`
	Kind      string   `json:"-" docstore:"kind"`
	ExpiresAt int64    `json:"-" docstore:"expires_at"`
}
