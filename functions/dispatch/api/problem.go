package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/droverhq/drover/pkg/task"
)

// Problem is an RFC 9457 problem document, the body of every error
// response.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Enqueued lists the tasks of a batch that were enqueued before the
	// failure, when some were.
	Enqueued []any `json:"enqueued,omitempty"`
}

// problem types; each is a URN naming the kind of failure.
const (
	probMalformed   = "malformed-request"
	probValidation  = "validation-failed"
	probAuth        = "unauthorized"
	probNotFound    = "not-found"
	probConflict    = "conflict"
	probTooLarge    = "body-too-large"
	probMediaType   = "unsupported-media-type"
	probUnavailable = "unavailable"
	probInternal    = "internal"
	probMethod      = "method-not-allowed"
	probTimeout     = "request-timeout"
)

func writeProblem(w http.ResponseWriter, status int, kind, format string, args ...any) {
	writeProblemDoc(w, &Problem{
		Type:   "urn:drover:problem:" + kind,
		Title:  http.StatusText(status),
		Status: status,
		Detail: fmt.Sprintf(format, args...),
	})
}

func writeProblemDoc(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONHeader(w, status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONHeader(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
}

// writeStatus is writeJSON(w, status, st), through task's hand-written
// encoder when it can.
func writeStatus(w http.ResponseWriter, status int, st *task.Status) {
	b, ok := task.EncodeStatus(st)
	if !ok {
		writeJSON(w, status, st)
		return
	}
	writeJSONHeader(w, status)
	_, _ = w.Write(b)
}

// writeStatusList is writeStatus for writeJSON(w, status,
// map[string]any{"tasks": sts}).
func writeStatusList(w http.ResponseWriter, status int, sts []*task.Status) {
	b, ok := task.EncodeStatusList(sts)
	if !ok {
		writeJSON(w, status, map[string]any{"tasks": sts})
		return
	}
	writeJSONHeader(w, status)
	_, _ = w.Write(b)
}
