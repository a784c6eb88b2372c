package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/droverhq/drover/pkg/task"
)

// requestError is a rejected request: its status, problem type and detail.
type requestError struct {
	status int
	kind   string
	detail string
}

func (e *requestError) Error() string { return e.detail }

func reject(status int, kind, format string, args ...any) *requestError {
	return &requestError{status: status, kind: kind, detail: fmt.Sprintf(format, args...)}
}

// MaxBatch is the most tasks one batch request may hold.
const MaxBatch = 1000

// maxDepth bounds JSON nesting in request bodies.
const maxDepth = 64

// submitSpec is a task in a request body, decoded field by field so that
// errors name the field.
type submitSpec struct {
	Function       string          `json:"function"`
	Args           json.RawMessage `json:"args"`
	Queue          string          `json:"queue"`
	Timeout        *string         `json:"timeout"`
	MaxAttempts    *int            `json:"max_attempts"`
	IdempotencyKey string          `json:"idempotency_key"`
	Delay          *string         `json:"delay"`
	Then           *submitSpec     `json:"then"`
}

func (s *submitSpec) spec(field string) (task.Spec, error) {
	out, err := s.convert(field)
	if err != nil {
		return out, err
	}
	if err := out.Normalize(); err != nil {
		var fe *task.FieldError
		if errors.As(err, &fe) {
			return out, &task.FieldError{Field: field + fe.Field, Reason: fe.Reason}
		}
		return out, err
	}
	return out, nil
}

// convert turns s into a Spec, checking what Normalize cannot see (a
// zero max_attempts or timeout given explicitly), then included.
func (s *submitSpec) convert(field string) (task.Spec, error) {
	out := task.Spec{
		Function: s.Function, Args: s.Args, Queue: s.Queue, IdempotencyKey: s.IdempotencyKey,
	}
	if s.MaxAttempts != nil {
		if *s.MaxAttempts < 1 {
			return out, &task.FieldError{Field: field + "max_attempts", Reason: fmt.Sprintf("%d is not between 1 and %d", *s.MaxAttempts, task.MaxAttemptsLimit)}
		}
		out.MaxAttempts = *s.MaxAttempts
	}
	for _, d := range []struct {
		name string
		in   *string
		out  *task.Duration
	}{{"timeout", s.Timeout, &out.Timeout}, {"delay", s.Delay, &out.Delay}} {
		if d.in == nil {
			continue
		}
		v, err := time.ParseDuration(*d.in)
		if err != nil {
			return out, &task.FieldError{Field: field + d.name, Reason: fmt.Sprintf("%q is not a duration such as \"30s\" or \"5m\"", clip(*d.in))}
		}
		if d.name == "timeout" && v <= 0 {
			return out, &task.FieldError{Field: field + d.name, Reason: fmt.Sprintf("%s is not a positive duration", v)}
		}
		*d.out = task.Duration(v)
	}
	if s.Then != nil {
		depth := 0
		for t := s.Then; t != nil; t = t.Then {
			if depth++; depth > task.MaxThenDepth {
				return out, &task.FieldError{Field: field + "then", Reason: fmt.Sprintf("nests more than %d steps deep (a chain has at most %d steps)", task.MaxThenDepth, task.MaxThenDepth+1)}
			}
		}
		then, err := s.Then.convert(field + "then.")
		if err != nil {
			return out, err
		}
		out.Then = &then
	}
	return out, nil
}

// submitGroup is a group in a request body.
type submitGroup struct {
	Tasks     []submitSpec `json:"tasks"`
	Then      *submitSpec  `json:"then"`
	OnFailure string       `json:"on_failure"`
}

func (g *submitGroup) spec() (task.GroupSpec, error) {
	out := task.GroupSpec{OnFailure: g.OnFailure}
	switch n := len(g.Tasks); {
	case n == 0:
		return out, &task.FieldError{Field: "tasks", Reason: "is empty; a group needs at least one task"}
	case n > task.MaxGroupMembers:
		return out, &task.FieldError{Field: "tasks", Reason: fmt.Sprintf("holds %d tasks, more than the %d a group may hold", n, task.MaxGroupMembers)}
	}
	out.Tasks = make([]task.Spec, len(g.Tasks))
	for i := range g.Tasks {
		var err error
		if out.Tasks[i], err = g.Tasks[i].convert(fmt.Sprintf("tasks[%d].", i)); err != nil {
			return out, err
		}
	}
	if g.Then != nil {
		then, err := g.Then.convert("then.")
		if err != nil {
			return out, err
		}
		out.Then = &then
	}
	return out, out.Normalize()
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// readBody checks the content type and reads at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return nil, reject(http.StatusUnsupportedMediaType, probMediaType, "Content-Type must be application/json, got %q", clip(ct))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, reject(http.StatusRequestEntityTooLarge, probTooLarge, "request body is larger than the %d-byte limit", limit)
		}
		return nil, reject(http.StatusBadRequest, probMalformed, "could not read request body: %v", err)
	}
	if !utf8.Valid(body) {
		return nil, reject(http.StatusBadRequest, probMalformed, "request body is not valid UTF-8")
	}
	if d := jsonDepth(body); d > maxDepth {
		return nil, reject(http.StatusBadRequest, probMalformed, "request body nests JSON deeper than %d levels", maxDepth)
	}
	return body, nil
}

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data, with errors that say where the problem is.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return reject(http.StatusBadRequest, probMalformed, "%s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return reject(http.StatusBadRequest, probMalformed, "request body holds more than one JSON value")
	}
	return nil
}

func describeJSONError(err error) string {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "request body"
		}
		return fmt.Sprintf("%s: want %s, got JSON %s", field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return "request body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: body ends in the middle of a value"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

// jsonDepth returns the deepest nesting of arrays and objects in b,
// without decoding it (strings are skipped).
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}
