package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error is a response from the dispatcher with a status other than 2xx,
// decoded from its application/problem+json body (RFC 9457). Act on Status
// (or IsNotFound, IsConflict), not on the text.
type Error struct {
	// Status is the HTTP status code of the response.
	Status int
	// Title is a short summary of the kind of problem, such as
	// "Not Found"; the HTTP status text when the body had none.
	Title string
	// Detail explains this occurrence, such as which field of a spec is
	// wrong. When the body was not a problem document (a proxy's error
	// page, say), it holds the start of the body's text.
	Detail string
	// Type is a URI naming the kind of problem, if the server sent one.
	Type string
}

// Error returns "<status> <title>: <detail>", e.g.
// "422 Unprocessable Entity: timeout: 0s is not a positive duration".
func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Title)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// IsNotFound reports whether err is or wraps an *Error with status 404, such
// as Get of a task that does not exist.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsConflict reports whether err is or wraps an *Error with status 409, such
// as Cancel of a task that is already terminal.
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

func hasStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// Bounds on the texts of an *Error: a server's or a proxy's body is
// untrusted, and its text ends up on terminals and in logs.
const (
	maxTitle  = 200
	maxDetail = 1024
)

// decodeError reads and closes a non-2xx response and returns it as an
// *Error. Its texts are one line each, valid UTF-8 with no control
// characters, and bounded in length, whatever the body held.
func decodeError(resp *http.Response) *Error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{Status: resp.StatusCode}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(b, &p); err == nil {
		e.Type, e.Title, e.Detail = clean(p.Type, maxTitle), clean(p.Title, maxTitle), clean(p.Detail, maxDetail)
	} else {
		e.Detail = clean(firstLine(string(b)), maxTitle)
	}
	if e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
	}
	return e
}

// firstLine returns the first non-blank line of s.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// clean makes s safe to print: invalid UTF-8 and control characters
// (newlines, terminal escapes) become spaces, runs of space fold, and the
// result is cut to n bytes at a rune boundary, marked with "…".
func clean(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}
