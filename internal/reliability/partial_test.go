package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/pkg/task"
)

// TestPartialBatch (moto): when SQS takes only part of a batch (the proxy
// fails some entries of a SendMessageBatch, as SQS does under internal
// errors), dispatch answers 503 with Retry-After and a problem listing
// exactly the tasks that were enqueued; the refused ones leave no status
// and no idempotency claim. Resubmitting the batch with its keys returns
// the enqueued tasks as they are and enqueues only the refused ones, and
// every task runs once.
func TestPartialBatch(t *testing.T) {
	if moto == nil {
		t.Skip(skipAWSNote)
	}
	var refusing atomic.Bool
	refusing.Store(true)
	e := motoBackend{}.newEnv(t, envOpts{Throttle: &awstest.ThrottleConfig{
		MinDelay: time.Microsecond, MaxDelay: time.Microsecond,
		Refuse: func(body string) bool { return refusing.Load() && strings.Contains(body, "refuse-me") },
	}}).(*motoEnv)
	e.StartRunner("r0", runnerOpts{Concurrency: 4})
	e.StartCollector("collect")

	run := time.Now().UnixNano()
	refused := map[int]bool{1: true, 4: true}
	var sb strings.Builder
	sb.WriteString(`{"tasks":[`)
	for i := range 6 {
		if i > 0 {
			sb.WriteByte(',')
		}
		mark := "keep"
		if refused[i] {
			mark = "refuse-me"
		}
		fmt.Fprintf(&sb, `{"function":%q,"args":{"i":%d,"mark":%q},"idempotency_key":"partial-%d-%d"}`, FnEcho, i, mark, run, i)
	}
	sb.WriteString(`]}`)
	batch := []byte(sb.String())
	key := func(i int) string { return fmt.Sprintf("partial-%d-%d", run, i) }

	req, _ := http.NewRequest(http.MethodPost, e.DispatchURL()+"/v1/tasks/batch", strings.NewReader(string(batch)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var prob struct {
		Type     string         `json:"type"`
		Detail   string         `json:"detail"`
		Enqueued []*task.Status `json:"enqueued"`
	}
	err = json.NewDecoder(resp.Body).Decode(&prob)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("partly refused batch: %d, Retry-After %q, %+v (%v); want 503 with Retry-After and a problem", resp.StatusCode, resp.Header.Get("Retry-After"), prob, err)
	}
	if len(prob.Enqueued) != 4 || !strings.Contains(prob.Detail, "2 of 6") {
		t.Fatalf("problem %q lists %d enqueued tasks; want the 4 not refused, and '2 of 6' in its detail", prob.Detail, len(prob.Enqueued))
	}
	first := map[string]bool{}
	for _, st := range prob.Enqueued {
		first[st.ID] = true
	}
	ctx := context.Background()
	for i := range 6 {
		c, err := e.Store().ReadKey(ctx, key(i))
		switch {
		case err != nil:
			t.Fatal(err)
		case refused[i] && c != nil:
			t.Errorf("refused task %d left its key claimed: %+v", i, c)
		case !refused[i] && (c == nil || !first[c.TaskID]):
			t.Errorf("enqueued task %d: claim %+v, want one naming a listed task", i, c)
		}
	}
	if page, _, err := e.Store().List(ctx, task.ListQuery{Limit: 100}); err != nil || len(page) != 4 {
		t.Fatalf("%d statuses (%v) after the partial batch; want the 4 enqueued", len(page), err)
	}

	refusing.Store(false)
	var in struct {
		Tasks []task.Spec `json:"tasks"`
	}
	if err := json.Unmarshal(batch, &in); err != nil {
		t.Fatal(err)
	}
	sts, err := e.Client().SubmitBatch(ctx, in.Tasks)
	if err != nil {
		t.Fatalf("resubmit with the keys: %v", err)
	}
	var ids []string
	for i, st := range sts {
		if refused[i] == first[st.ID] {
			t.Errorf("resubmitted task %d is %s (among the first enqueued: %v)", i, st.ID, first[st.ID])
		}
		ids = append(ids, st.ID)
	}
	docs := waitTerminal(t, e.Store(), ids, 5*time.Minute)
	execs := e.Executions(t)
	for i, id := range ids {
		if d := docs[id]; d == nil || d.State != task.Succeeded || execs[id] != 1 {
			t.Errorf("task %d (%s): %+v, %d executions; want succeeded once", i, id, d, execs[id])
		}
	}
}
