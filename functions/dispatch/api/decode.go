package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/droverhq/drover/pkg/task"
)

// requestError is a rejected request: its status, problem type and detail.
type requestError struct {
	status int
	kind   string
	detail string
	// retryAfter, if positive, is sent as Retry-After (seconds).
	retryAfter int
	// closeConn closes the connection after the response, instead of
	// reading what is left of the body to reuse it.
	closeConn bool
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
	Requires       json.RawMessage `json:"requires"`
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
	if len(s.Requires) > 0 && !bytes.Equal(bytes.TrimSpace(s.Requires), []byte("null")) {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(s.Requires, &raw); err != nil {
			return out, &task.FieldError{Field: field + "requires", Reason: `want an object of trait names to constraints, such as {"python": ">=3.10", "gpu": ""}`}
		}
		out.Requires = task.Requires{}
		for name, v := range raw {
			var c string
			if err := json.Unmarshal(v, &c); err != nil {
				return out, &task.FieldError{Field: field + "requires." + clip(name), Reason: fmt.Sprintf("want a constraint string such as \">=3.10\" (or \"\" for any version), got %s", clip(string(v)))}
			}
			out.Requires[name] = c
		}
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

// readBody admits and reads a request body: it checks the content type,
// reserves the body's bytes against MaxInflight (release gives them back;
// the caller calls it once done with the body and what it decoded), and
// reads at most MaxBody bytes within BodyTimeout. Every refusal before the
// body is read closes the connection, so that nothing waits on the rest.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	limit := s.cfg.MaxBody
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		e := reject(http.StatusUnsupportedMediaType, probMediaType, "Content-Type must be application/json, got %q", clip(ct))
		e.closeConn = true
		return nil, nil, e
	}
	if r.ContentLength > limit {
		e := reject(http.StatusRequestEntityTooLarge, probTooLarge, "request body is larger than the %d-byte limit (Content-Length %d)", limit, r.ContentLength)
		e.closeConn = true
		return nil, nil, e
	}
	reserve := limit
	if r.ContentLength >= 0 {
		reserve = max(r.ContentLength, 1)
	}
	if !s.inflight.take(reserve) {
		e := reject(http.StatusServiceUnavailable, probUnavailable,
			"the server holds as many request bytes as it may (%d); retry shortly", s.cfg.MaxInflight)
		e.retryAfter, e.closeConn = 1, true
		return nil, nil, e
	}
	give := func() { s.inflight.give(reserve) }
	defer func() {
		if err != nil {
			give()
		}
	}()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) // unsupported in tests' recorders
	body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var (
			mbe *http.MaxBytesError
			ne  net.Error
		)
		switch {
		case errors.As(err, &mbe):
			return nil, nil, reject(http.StatusRequestEntityTooLarge, probTooLarge, "request body is larger than the %d-byte limit", limit)
		case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
			e := reject(http.StatusRequestTimeout, probTimeout, "request body not received within %s", s.cfg.BodyTimeout)
			e.closeConn = true
			return nil, nil, e
		}
		return nil, nil, reject(http.StatusBadRequest, probMalformed, "could not read request body: %v", err)
	}
	if !utf8.Valid(body) {
		return nil, nil, reject(http.StatusBadRequest, probMalformed, "request body is not valid UTF-8")
	}
	if d := jsonDepth(body); d > maxDepth {
		return nil, nil, reject(http.StatusBadRequest, probMalformed, "request body nests JSON deeper than %d levels", maxDepth)
	}
	return body, give, nil
}

// inflight counts the request body bytes the server holds.
type inflight struct {
	mu    sync.Mutex
	held  int64
	limit int64
}

func (f *inflight) take(n int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held+n > f.limit {
		return false
	}
	f.held += n
	return true
}

func (f *inflight) give(n int64) {
	f.mu.Lock()
	f.held -= n
	f.mu.Unlock()
}

// specFields are the members of a task in a request body.
var specFields = []string{"function", "args", "queue", "timeout", "max_attempts", "idempotency_key", "delay"}

// exactFields checks what encoding/json lets through: that each object of
// the request's schema (the task, or the batch and each of its tasks)
// names every member once and exactly as documented. encoding/json would
// match "FUNCTION" to function and keep the last of two "function"s. args
// are the caller's own JSON and are not looked into. Malformed JSON is
// left to decodeStrict, which runs first.
func exactFields(body []byte, batch bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var err error
	if batch {
		err = walkObject(dec, "", []string{"tasks"}, func(name string) error {
			return walkArray(dec, func(i int) error {
				return walkObject(dec, fmt.Sprintf("tasks[%d].", i), specFields, nil)
			})
		})
	} else {
		err = walkObject(dec, "", specFields, nil)
	}
	var fe *task.FieldError
	if errors.As(err, &fe) {
		return reject(http.StatusBadRequest, probMalformed, "%s: %s", fe.Field, fe.Reason)
	}
	return nil // anything else decodeStrict has judged
}

// walkObject reads one object from dec, refusing members named twice or
// named in another case than allowed; value, if not nil, reads the value
// of each allowed member instead of skipping it.
func walkObject(dec *json.Decoder, prefix string, allowed []string, value func(name string) error) error {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if seen[name] {
			return &task.FieldError{Field: prefix + name, Reason: "appears twice; name each field once"}
		}
		seen[name] = true
		known := false
		for _, a := range allowed {
			if a == name {
				known = true
			} else if strings.EqualFold(a, name) {
				return &task.FieldError{Field: prefix + name, Reason: fmt.Sprintf("is not a field; field names are case-sensitive (did you mean %q?)", a)}
			}
		}
		if known && value != nil {
			err = value(name)
		} else {
			var raw json.RawMessage
			err = dec.Decode(&raw)
		}
		if err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

// walkArray reads one array from dec, calling elem for each element.
func walkArray(dec *json.Decoder, elem func(i int) error) error {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return err
	}
	for i := 0; dec.More(); i++ {
		if err := elem(i); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
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
