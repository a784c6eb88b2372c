package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// TestDevRetry: a failed task retried through the API is a new task with
// the same function and args and the key "retry:<old id>"; asking again
// returns the same new task; only failed or cancelled tasks can be
// retried; drover retry --state failed --function F retries each.
func TestDevRetry(t *testing.T) {
	b := setupDev(t, func(e *devEnv) { e.Runner.Queues = "default,q2" })
	sts := b.submitBatch(t, []map[string]any{
		{"function": "fail", "max_attempts": 1, "args": map[string]any{"message": "first"}},
		{"function": "echo", "args": map[string]any{"x": 1}},
		{"function": "fail", "max_attempts": 1, "queue": "q2"},
	})
	b.awaitTerminal(t, []string{sts[0].ID, sts[1].ID, sts[2].ID}, time.Minute)
	old := sts[0].ID

	var nst task.Status
	code, raw := b.do(t, "POST", "/v1/tasks/"+old+"/retry", "", nil, &nst)
	if code != http.StatusAccepted || nst.ID == old || nst.Function != "fail" || nst.IdempotencyKey != "retry:"+old || nst.MaxAttempts != 1 {
		t.Fatalf("retry: %d %s", code, raw)
	}
	var again task.Status
	if code, raw := b.do(t, "POST", "/v1/tasks/"+old+"/retry", "application/json", []byte(`{}`), &again); code != http.StatusAccepted || again.ID != nst.ID {
		t.Errorf("second retry: %d %s, want the same new task %s", code, raw, nst.ID)
	}
	done := b.awaitTerminal(t, []string{nst.ID}, time.Minute)[nst.ID]
	if done.State != task.Failed || done.Error != "first" {
		t.Errorf("the retry ran to %s %q, want failed \"first\" (same args)", done.State, done.Error)
	}
	if st := b.get(t, old, 0); st.State != task.Failed {
		t.Errorf("the old task is %s after its retry, want failed still", st.State)
	}

	for _, c := range []struct {
		name, path, ctype, body string
		code                    int
	}{
		{"succeeded", "/v1/tasks/" + sts[1].ID + "/retry", "", "", http.StatusConflict},
		{"unknown", "/v1/tasks/" + task.NewID(time.Now()) + "/retry", "", "", http.StatusNotFound},
		{"not an id", "/v1/tasks/nope/retry", "", "", http.StatusNotFound},
		{"body", "/v1/tasks/" + old + "/retry", "application/json", `{"x":1}`, http.StatusBadRequest},
		{"redrive unknown field", "/v1/deadletters/redrive", "application/json", `{"queues":"a"}`, http.StatusBadRequest},
		{"redrive bad limit", "/v1/deadletters/redrive", "application/json", `{"limit":-1}`, http.StatusUnprocessableEntity},
		{"dead letters bad limit", "/v1/deadletters?limit=0", "", "", http.StatusBadRequest},
	} {
		method := "POST"
		if strings.HasPrefix(c.path, "/v1/deadletters?") {
			method = "GET"
		}
		code, raw := b.do(t, method, c.path, c.ctype, []byte(c.body), nil)
		if code != c.code || !bytes.Contains(raw, []byte(`"status":`)) {
			t.Errorf("%s: %d %s, want a %d problem", c.name, code, raw, c.code)
		}
	}

	t.Setenv("DROVER_URL", b.url)
	var out, errOut bytes.Buffer
	if rc := run(context.Background(), []string{"retry", "--state", "failed", "--queue", "q2"}, &out, &errOut); rc != 0 {
		t.Fatalf("drover retry: exit %d: %s", rc, errOut.String())
	}
	if got := strings.Count(out.String(), " retried as "); got != 1 || !strings.Contains(out.String(), sts[2].ID) {
		t.Errorf("drover retry --state failed --queue q2 printed:\n%s\nwant one retry of %s", out.String(), sts[2].ID)
	}
}
