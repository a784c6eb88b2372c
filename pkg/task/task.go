package task

import (
	"encoding/json"
	"errors"
	"time"
)

// Defaults applied to a Spec's zero values.
const (
	DefaultQueue       = "default"
	DefaultTimeout     = 5 * time.Minute
	DefaultMaxAttempts = 3

	// MaxAttemptsLimit bounds Spec.MaxAttempts. The SQS redrive policy of
	// the tasks queue must allow at least this many receives.
	MaxAttemptsLimit = 100
	// MaxTimeout bounds Spec.Timeout: SQS cannot hold a message invisible
	// for longer than 12 hours.
	MaxTimeout = 12 * time.Hour
	// MaxDelay bounds Spec.Delay.
	MaxDelay = 12 * time.Hour
)

// ErrPermanent marks a function failure that is not worth retrying: the task
// fails at once, whatever attempts are left. Wrap it:
//
//	return nil, fmt.Errorf("parse %q: %w", name, task.ErrPermanent)
var ErrPermanent = errors.New("permanent failure")

// Task is one unit of work as a runner sees it: the submitted spec plus the
// delivery's attempt number. Args holds the JSON arguments, already fetched
// from the archive when they travelled as a claim check.
type Task struct {
	ID          string
	Function    string
	Queue       string
	Args        json.RawMessage
	Timeout     time.Duration
	MaxAttempts int
	CreatedAt   time.Time
	// Attempt counts the starts of this task (this one included), from
	// its status document: deliveries that started nothing are not
	// attempts. Without a status store it is the delivery count.
	Attempt int
}

// Result is a function's output, a JSON document.
type Result json.RawMessage

// JSONResult marshals v into a Result.
func JSONResult(v any) (Result, error) {
	b, err := json.Marshal(v)
	return Result(b), err
}

// State is where a task is in its life.
type State string

// The states of DESIGN.md. Succeeded, Failed and Cancelled are terminal.
const (
	Queued State = "queued"
	// Waiting is a workflow step created with its group or chain that
	// has not been enqueued yet: a group's callback waits for the
	// members, a chain's step for the one before it (docs/workflows.md).
	Waiting   State = "waiting"
	Running   State = "running"
	Retrying  State = "retrying"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// Terminal reports whether no event can move a task out of s.
func (s State) Terminal() bool {
	return s == Succeeded || s == Failed || s == Cancelled
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	switch s {
	case Queued, Waiting, Running, Retrying, Succeeded, Failed, Cancelled:
		return true
	}
	return false
}

// Status is the status document clients read, and the record the status
// store keeps for each task. Its JSON form is the API's.
type Status struct {
	ID          string          `json:"id" docstore:"id"`
	Function    string          `json:"function" docstore:"function"`
	Queue       string          `json:"queue" docstore:"queue"`
	State       State           `json:"state" docstore:"state"`
	Attempt     int             `json:"attempt" docstore:"attempt"`
	MaxAttempts int             `json:"max_attempts" docstore:"max_attempts"`
	CreatedAt   time.Time       `json:"created_at" docstore:"created_at"`
	StartedAt   time.Time       `json:"started_at,omitzero" docstore:"started_at"`
	FinishedAt  time.Time       `json:"finished_at,omitzero" docstore:"finished_at"`
	Runner      string          `json:"runner,omitempty" docstore:"runner"`
	Error       string          `json:"error,omitempty" docstore:"error"`
	Result      json.RawMessage `json:"result,omitempty" docstore:"-"`
	ResultRef   string          `json:"result_ref,omitempty" docstore:"result_ref"`
	// NextAttemptAt is when a retrying task is due again.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero" docstore:"next_attempt_at"`
	// IdempotencyKey is the key the task was submitted with, if any.
	IdempotencyKey string `json:"idempotency_key,omitempty" docstore:"idempotency_key"`
	// Group is set on the members of a group (docs/workflows.md).
	Group *GroupRef `json:"group,omitempty" docstore:"-"`
	// Next and Previous link the steps of a chain.
	Next     string `json:"next,omitempty" docstore:"next"`
	Previous string `json:"previous,omitempty" docstore:"previous"`
	// CallbackOf is set on a group's callback: the group's ID.
	CallbackOf string `json:"callback_of,omitempty" docstore:"callback_of"`
	// Requires are the traits the task's runner must have; Matched the
	// traits of the runner of the attempt (Runner) that met them.
	Requires Requires `json:"requires,omitempty" docstore:"-"`
	Matched  Traits   `json:"matched,omitempty" docstore:"-"`
	// Waiting says why a queued task has not started, when no live
	// runner on its queue can run it ("no live runner with python>=3.10
	// on queue grid"). Dispatch fills it in when it reads the status.
	Waiting string `json:"waiting,omitempty" docstore:"-"`

	// Fields below are bookkeeping of the store, not part of the API.

	// Kind tells task documents from the other records in the collection.
	Kind string `json:"-" docstore:"kind"`
	// ResultJSON holds Result in the store: docstore drivers do not all
	// round-trip raw JSON bytes as such.
	ResultJSON string `json:"-" docstore:"result"`
	// Phase, EventAt and EventRunner identify the event the document
	// reflects, so that the collector can rank a newcomer against it.
	Phase   Phase     `json:"-" docstore:"phase"`
	EventAt time.Time `json:"-" docstore:"event_at"`
	// GroupID and GroupIndex hold Group in the store, flat.
	GroupID    string `json:"-" docstore:"group"`
	GroupIndex int    `json:"-" docstore:"group_index"`
	// Pending is the encoded task message of a Waiting step, published
	// when its predecessors are done and cleared then.
	Pending string `json:"-" docstore:"pending"`
	// RequiresText and MatchedText hold Requires and Matched in the
	// store, as text (Requires.String, Traits.String).
	RequiresText string `json:"-" docstore:"requires"`
	MatchedText  string `json:"-" docstore:"matched"`
	// ExpiresAt is when the store may delete the document (DynamoDB TTL,
	// as epoch seconds).
	ExpiresAt int64 `json:"-" docstore:"expires_at"`
	// DocstoreRevision is the store's optimistic-concurrency token.
	DocstoreRevision any `json:"-" docstore:"DocstoreRevision"`
}

// Kinds of records in the status collection.
const (
	KindTask   = "task"
	KindRunner = "runner"
	KindKey    = "idempotency"
	KindGroup  = "group"
)

// GroupRef names a group member's group and its place in it.
type GroupRef struct {
	ID    string `json:"id"`
	Index int    `json:"index"`
}
