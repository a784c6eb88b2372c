package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
)

// TestRoutingBadInput: a task for an undeclared queue is a 422 naming
// the queue, a malformed requirement a 422 naming it, in one task or a
// batch, and nothing is enqueued or recorded for either.
func TestRoutingBadInput(t *testing.T) {
	b := setupHTTP(t, Config{})
	for _, tt := range []struct {
		name, path, body string
		status           int
		detail           string
	}{
		{"unknown queue", "/v1/tasks", `{"function":"echo","queue":"grid"}`, 422, `queue: queue "grid" is not declared (declared: default)`},
		{"unknown queue in batch", "/v1/tasks/batch", `{"tasks":[{"function":"echo"},{"function":"echo","queue":"gpu"}]}`, 422, `tasks[1].queue: queue "gpu" is not declared`},
		{"unknown queue of a chain step", "/v1/tasks", `{"function":"echo","then":{"function":"echo","queue":"gpu"}}`, 422, `then.queue: queue "gpu" is not declared`},
		{"malformed constraint", "/v1/tasks", `{"function":"echo","requires":{"python":">=3.10,,"}}`, 422, `requires.python: ">=3.10,," is not a constraint`},
		{"bad operator", "/v1/tasks", `{"function":"echo","requires":{"python":"=>3"}}`, 422, `requires.python`},
		{"constraint not a string", "/v1/tasks", `{"function":"echo","requires":{"gpu":true}}`, 422, `requires.gpu: want a constraint string`},
		{"requires not an object", "/v1/tasks", `{"function":"echo","requires":["gpu"]}`, 422, `requires: want an object`},
		{"bad trait name", "/v1/tasks/batch", `{"tasks":[{"function":"echo","requires":{"g p u":""}}]}`, 422, `tasks[0].requires: "g p u" is not a trait name`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := b.do(t, http.MethodPost, tt.path, "application/json", tt.body, nil)
			var p struct{ Detail string }
			_ = json.Unmarshal(body, &p)
			if code != tt.status || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("%d %s, want %d naming %s", code, body, tt.status, tt.detail)
			}
		})
	}
	if st := memq.Stats(b.queue); st.Sent != 0 {
		t.Errorf("rejected requests enqueued messages: %+v", st)
	}
	if sts, _, err := b.store.List(t.Context(), task.ListQuery{Limit: 10}); err != nil || len(sts) != 0 {
		t.Errorf("rejected requests left statuses: %v %v", sts, err)
	}
	code, _, body := b.do(t, http.MethodPost, "/v1/tasks", "application/json", `{"function":"echo","requires":{"python":">=3.10","gpu":""}}`, nil)
	if code != http.StatusAccepted || !strings.Contains(string(body), `"requires":{"gpu":"","python":"\u003e=3.10"}`) {
		t.Errorf("valid requirements: %d %s", code, body)
	}
}
