package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// TestArgsAndLogs: GET /v1/tasks/{id}/args answers from a kept message
// (inline args or its claim check) and says when the args are not kept;
// GET /v1/tasks/{id}/logs/{attempt}/{stream} serves an exec attempt's
// log from the archive.
func TestArgsAndLogs(t *testing.T) {
	b := setupHTTP(t, Config{PayloadLimit: 64})
	ctx := context.Background()
	put := func(key, body string) {
		t.Helper()
		if err := b.bucket.WriteAll(ctx, key, []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	keep := func(key string, m *task.Message) {
		t.Helper()
		body, err := task.EncodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		put(key, string(body))
	}
	plain := b.submit(t) // echo, args 1: inline, not kept once acked
	failed := b.submit(t)
	keep(task.RetainedKey(failed), &task.Message{ID: failed, Function: "echo", Args: []byte(`{"kept":true}`), TimeoutMS: 1, MaxAttempts: 1})
	dead := b.submit(t)
	keep(task.DeadLetterKey(dead), &task.Message{ID: dead, Function: "echo", Args: []byte(`[1,2]`), TimeoutMS: 1, MaxAttempts: 1})
	big := strings.Repeat("x", 100)
	code, _, raw := b.do(t, "POST", "/v1/tasks", "application/json", `{"function":"echo","args":"`+big+`"}`, nil)
	if code != http.StatusAccepted {
		t.Fatalf("submit big: %d %s", code, raw)
	}
	claimed := string(raw[strings.Index(string(raw), `"id":"`)+6:][:26])
	exec := b.submit(t)
	put("logs/"+exec+"/2/stderr", "boom\n")

	for _, c := range []struct {
		name, path string
		code       int
		body, kind string
	}{
		{"inline args not kept", "/v1/tasks/" + plain + "/args", 404, "are not kept", "not-found"},
		{"retained", "/v1/tasks/" + failed + "/args", 200, `{"kept":true}`, ""},
		{"dead letter", "/v1/tasks/" + strings.ToLower(dead) + "/args", 200, `[1,2]`, ""},
		{"claim check", "/v1/tasks/" + claimed + "/args", 200, `"` + big + `"`, ""},
		{"unknown task", "/v1/tasks/" + task.NewID(time.Now()) + "/args", 404, "", "not-found"},
		{"log", "/v1/tasks/" + exec + "/logs/2/stderr", 200, "boom\n", ""},
		{"no log", "/v1/tasks/" + exec + "/logs/1/stdout", 404, "no stdout log for attempt 1", "not-found"},
		{"bad stream", "/v1/tasks/" + exec + "/logs/1/stdin", 404, "not a log stream", "not-found"},
		{"bad attempt", "/v1/tasks/" + exec + "/logs/0/stdout", 404, "not an attempt number", "not-found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, hdr, raw := b.do(t, "GET", c.path, "", "", nil)
			if c.kind != "" {
				wantProblem(t, code, hdr, raw, c.code, c.kind)
			}
			if code != c.code || !strings.Contains(string(raw), c.body) {
				t.Errorf("%d %s, want %d with %q", code, raw, c.code, c.body)
			}
		})
	}
}
