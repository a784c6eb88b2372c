package task

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Spec is a task as a client submits it. Only Function is required; zero
// values take the documented defaults (see Normalize).
type Spec struct {
	Function       string          `json:"function"`
	Args           json.RawMessage `json:"args,omitempty"`
	Queue          string          `json:"queue,omitempty"`
	Timeout        Duration        `json:"timeout,omitempty"`
	MaxAttempts    int             `json:"max_attempts,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Delay          Duration        `json:"delay,omitempty"`
	// Requires names the traits the task's runner must have, with
	// optional version constraints ({"python": ">=3.10", "gpu": ""}):
	// a runner without them hands the task back (docs/routing.md).
	Requires Requires `json:"requires,omitempty"`
	// Then is the task to run when this one succeeds, with its result as
	// input (docs/workflows.md).
	Then *Spec `json:"then,omitempty"`
}

// Duration is a time.Duration that travels in JSON as a Go duration string
// ("30s", "5m").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"30s\", got %s", truncate(b, 32))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration string such as \"30s\", got %q", truncate([]byte(s), 32))
	}
	*d = Duration(v)
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// FieldError is a validation failure of one field of a Spec.
type FieldError struct {
	Field  string // JSON name, e.g. "timeout" or "tasks[3].function"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// MaxIdempotencyKey is the longest accepted idempotency key, in bytes.
const MaxIdempotencyKey = 256

// Normalize fills s's defaults and checks every field, returning a
// *FieldError naming the first one that is wrong.
func (s *Spec) Normalize() error {
	if s.Function == "" {
		return &FieldError{"function", "is required"}
	}
	if !namePattern.MatchString(s.Function) {
		return &FieldError{"function", fmt.Sprintf("%q is not a function name (letters, digits and _.:- up to 128 characters)", truncate([]byte(s.Function), 64))}
	}
	if s.Queue == "" {
		s.Queue = DefaultQueue
	}
	if !namePattern.MatchString(s.Queue) {
		return &FieldError{"queue", fmt.Sprintf("%q is not a queue name (letters, digits and _.:- up to 128 characters)", truncate([]byte(s.Queue), 64))}
	}
	switch t := time.Duration(s.Timeout); {
	case t == 0:
		s.Timeout = Duration(DefaultTimeout)
	case t < time.Millisecond:
		return &FieldError{"timeout", fmt.Sprintf("%s is not a positive duration of at least 1ms", t)}
	case t > MaxTimeout:
		return &FieldError{"timeout", fmt.Sprintf("%s is longer than the %s maximum", t, MaxTimeout)}
	}
	switch {
	case s.MaxAttempts == 0:
		s.MaxAttempts = DefaultMaxAttempts
	case s.MaxAttempts < 0 || s.MaxAttempts > MaxAttemptsLimit:
		return &FieldError{"max_attempts", fmt.Sprintf("%d is not between 1 and %d", s.MaxAttempts, MaxAttemptsLimit)}
	}
	if d := time.Duration(s.Delay); d < 0 || d > MaxDelay {
		return &FieldError{"delay", fmt.Sprintf("%s is not between 0s and %s", d, MaxDelay)}
	}
	if len(s.IdempotencyKey) > MaxIdempotencyKey {
		return &FieldError{"idempotency_key", fmt.Sprintf("is %d bytes, more than %d", len(s.IdempotencyKey), MaxIdempotencyKey)}
	}
	if err := s.Requires.Validate("requires"); err != nil {
		return err
	}
	if len(s.Requires) == 0 {
		s.Requires = nil
	}
	if bytes.Equal(bytes.TrimSpace(s.Args), []byte("null")) {
		s.Args = nil
	}
	return s.normalizeThen()
}

var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.Reader, 0)
)

// NewID returns a new task ID: a ULID, so IDs sort by creation time.
func NewID(t time.Time) string {
	idMu.Lock()
	defer idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), idEntropy).String()
}

// ValidID reports whether id has the canonical form of a task ID: a ULID
// in upper case, as NewID makes them. Stores compare IDs byte for byte,
// so another spelling of the same ULID would name no task.
func ValidID(id string) bool {
	u, err := ulid.ParseStrict(id)
	return err == nil && u.String() == id
}

// CanonicalID returns the canonical form of id, a task ID or cursor in
// any case (ULIDs are case-insensitive), and whether id is one.
func CanonicalID(id string) (string, bool) {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}
