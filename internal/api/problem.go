package api

import (
	"encoding/json"
	"fmt"
	"net/http"
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
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
