package client

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDecodeError feeds decodeError arbitrary bodies and statuses, as a
// hostile server or a broken proxy could send them, and checks what a
// caller relies on: no panic, the status kept, a title always set for a
// known status, and texts that are one printable line, valid UTF-8 and
// bounded, whatever the body held. A well-formed problem document with
// printable texts within the bounds comes through unchanged.
func FuzzDecodeError(f *testing.F) {
	f.Add([]byte(`{"type":"urn:drover:problem:not-found","title":"Not Found","status":404,"detail":"task 01J0 not found"}`), 404)
	f.Add([]byte("<html>\n<body>502 Bad Gateway</body></html>"), 502)
	f.Add([]byte("\x1b]0;owned\x07\x1b[2Jboom"), 500)
	f.Add([]byte(`{"title":"a\nb","detail":"\u001b[31mred\u2028x"}`), 422)
	f.Add([]byte{0xff, 0xfe, 'x'}, 503)
	f.Add([]byte(`{"detail":`+strings.Repeat(`"x`, 1)+strings.Repeat("y", 5000)+`"}`), 400)
	f.Add([]byte(""), 599)
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		if status < 100 || status > 999 {
			status = 500 + (status%100+100)%100
		}
		e := decodeError(&http.Response{StatusCode: status, Body: io.NopCloser(bytes.NewReader(body))})
		if e.Status != status {
			t.Fatalf("status %d decoded as %d", status, e.Status)
		}
		if e.Title == "" && http.StatusText(status) != "" {
			t.Fatalf("no title for status %d", status)
		}
		for name, s := range map[string]string{"type": e.Type, "title": e.Title, "detail": e.Detail, "Error()": e.Error()} {
			if !utf8.ValidString(s) {
				t.Fatalf("%s is not valid UTF-8: %q", name, s)
			}
			for _, r := range s {
				if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
					t.Fatalf("%s holds control character %U: %q", name, r, s)
				}
			}
		}
		if len(e.Title) > maxTitle+len("…") || len(e.Type) > maxTitle+len("…") || len(e.Detail) > maxDetail+len("…") {
			t.Fatalf("texts over their bounds: title %d, type %d, detail %d bytes", len(e.Title), len(e.Type), len(e.Detail))
		}
		var p struct{ Type, Title, Detail string }
		if json.Unmarshal(body, &p) == nil && printable(p.Title, maxTitle) && printable(p.Type, maxTitle) && printable(p.Detail, maxDetail) {
			if p.Title != "" && e.Title != p.Title || e.Type != p.Type || e.Detail != p.Detail {
				t.Fatalf("problem %+v decoded as %+v", p, e)
			}
		}
	})
}

// printable reports whether s is a text decodeError must keep as it is:
// within n bytes, with no control characters and no runs of space.
func printable(s string, n int) bool {
	if len(s) > n || s != strings.Join(strings.Fields(s), " ") {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError || unicode.IsSpace(r) && r != ' ' {
			return false
		}
	}
	return true
}
