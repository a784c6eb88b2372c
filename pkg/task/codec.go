package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// WireVersion is the version of the message formats below. A decoder
// rejects messages of any other version as undecodable, and ignores fields
// it does not know: adding a field does not change the version.
const WireVersion = 1

// ErrUndecodable marks a message that is not a Drover message of a version
// this build understands. Such a message is poison: it is acked and
// archived, never retried.
var ErrUndecodable = errors.New("undecodable message")

// Message is the wire form of a task on the tasks topic. Arguments travel
// inline or, above the claim-check threshold, as a reference to a blob.
type Message struct {
	V           int             `json:"v"`
	ID          string          `json:"id"`
	Function    string          `json:"function"`
	Queue       string          `json:"queue"`
	Args        json.RawMessage `json:"args,omitempty"`
	ArgsRef     string          `json:"args_ref,omitempty"`
	TimeoutMS   int64           `json:"timeout_ms"`
	MaxAttempts int             `json:"max_attempts"`
	CreatedAt   time.Time       `json:"created_at"`
	// Traceparent and Tracestate are the W3C trace context of the span
	// that submitted the task (trace.go), empty when tracing is off.
	Traceparent string `json:"traceparent,omitempty"`
	Tracestate  string `json:"tracestate,omitempty"`
	// Requires are the traits the task's runner must have (Spec.Requires).
	Requires Requires `json:"requires,omitempty"`
}

// Timeout is the task's run-time limit.
func (m *Message) Timeout() time.Duration { return time.Duration(m.TimeoutMS) * time.Millisecond }

// The wire form is JSON as encoding/json writes and reads these types; the
// functions below do that by hand (wire.go) and use encoding/json for what
// the hand-written paths leave to it.

// EncodeMessage returns the wire form of m.
func EncodeMessage(m *Message) ([]byte, error) {
	m.V = WireVersion
	if b, ok := appendMessage(m); ok {
		return b, nil
	}
	return json.Marshal(m)
}

// DecodeMessage parses a task message, rejecting with ErrUndecodable
// anything that is not a complete task message of this version.
func DecodeMessage(b []byte) (*Message, error) {
	m := new(Message)
	if !decodeMessage(b, m) {
		*m = Message{}
		if err := json.Unmarshal(b, m); err != nil {
			return nil, fmt.Errorf("%w: task message: %v", ErrUndecodable, err)
		}
	}
	return checkMessage(m)
}

// checkMessage rejects a decoded m that is not a complete task message of
// this version.
func checkMessage(m *Message) (*Message, error) {
	switch {
	case m.V != WireVersion:
		return m, fmt.Errorf("%w: task message version %d, want %d", ErrUndecodable, m.V, WireVersion)
	case !ValidID(m.ID):
		return m, fmt.Errorf("%w: task message id %q is not a task ID", ErrUndecodable, truncate([]byte(m.ID), 40))
	case m.Function == "" || m.MaxAttempts < 1 || m.TimeoutMS < 1:
		return m, fmt.Errorf("%w: task message %s lacks function, max_attempts or timeout_ms", ErrUndecodable, m.ID)
	}
	return m, nil
}

// envelope is the wire form of what runners publish on the events topic.
type envelope struct {
	V      int         `json:"v"`
	Event  *Event      `json:"event,omitempty"`
	Runner *RunnerInfo `json:"runner,omitempty"`
}

// EncodeEvent returns the wire form of e.
func EncodeEvent(e *Event) ([]byte, error) {
	if b, ok := appendEvent(e); ok {
		return b, nil
	}
	return json.Marshal(envelope{V: WireVersion, Event: e})
}

// EncodeRunner returns the wire form of a runner heartbeat.
func EncodeRunner(r *RunnerInfo) ([]byte, error) {
	if b, ok := appendRunner(r); ok {
		return b, nil
	}
	return json.Marshal(envelope{V: WireVersion, Runner: r})
}

// DecodeEvent parses a message from the events topic: exactly one of the
// results is non-nil when err is nil.
func DecodeEvent(b []byte) (*Event, *RunnerInfo, error) {
	env, ok := decodeEnvelope(b)
	if !ok {
		var slow envelope
		if err := json.Unmarshal(b, &slow); err != nil {
			return nil, nil, fmt.Errorf("%w: event message: %v", ErrUndecodable, err)
		}
		env = slow
	}
	return checkEnvelope(env)
}

// checkEnvelope returns the one event or heartbeat of a decoded env, or
// why it is not a message of this version holding exactly one.
func checkEnvelope(env envelope) (*Event, *RunnerInfo, error) {
	if env.V != WireVersion {
		return nil, nil, fmt.Errorf("%w: event message version %d, want %d", ErrUndecodable, env.V, WireVersion)
	}
	switch {
	case env.Event != nil && env.Runner == nil:
		e := env.Event
		if !ValidID(e.TaskID) || e.Attempt < 0 || phaseOrder(e.Phase) < 0 {
			return nil, nil, fmt.Errorf("%w: event for task %q has attempt %d, phase %q", ErrUndecodable, truncate([]byte(e.TaskID), 40), e.Attempt, e.Phase)
		}
		return e, nil, nil
	case env.Runner != nil && env.Event == nil:
		if env.Runner.ID == "" {
			return nil, nil, fmt.Errorf("%w: runner heartbeat without id", ErrUndecodable)
		}
		return nil, env.Runner, nil
	}
	return nil, nil, fmt.Errorf("%w: event message holds neither one event nor one runner heartbeat", ErrUndecodable)
}
