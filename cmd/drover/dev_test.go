package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/droverhq/drover/internal/drivers"
	"github.com/droverhq/drover/internal/envconfig"
	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

var queueSeq atomic.Int64

// devBundle is a running embedded default and what tests look at.
type devBundle struct {
	url    string
	tasks  string // memq queue names
	events string
	stop   func()
}

// setupDev starts the embedded default on a free port with its own queues
// and data directory; it is stopped when the test ends.
func setupDev(t *testing.T, tune func(*devEnv)) *devBundle {
	t.Helper()
	return setupDevWith(t, tune, nil)
}

// setupDevWith is setupDev with register adding functions to the runners.
func setupDevWith(t *testing.T, tune func(*devEnv), register func(*runner.Mux)) *devBundle {
	t.Helper()
	n := queueSeq.Add(1)
	b := &devBundle{tasks: fmt.Sprintf("tasks-%s-%d", t.Name(), n), events: fmt.Sprintf("events-%s-%d", t.Name(), n)}
	t.Setenv("DROVER_DATA_DIR", t.TempDir())
	cfg := &devEnv{}
	if err := envconfig.Parse(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Dispatch.Addr = "127.0.0.1:0"
	cfg.Dispatch.TasksTopic = "memq://" + b.tasks
	cfg.Runner.TasksSubscription = "memq://" + b.tasks + "?visibility=10s"
	cfg.Runner.EventsTopic = "memq://" + b.events
	cfg.Collect.EventsSubscription = "memq://" + b.events + "?visibility=10s"
	cfg.Dispatch.Status = fmt.Sprintf("mem://status-%d/id", n)
	cfg.Runner.Heartbeat = 200 * time.Millisecond
	cfg.Runner.Grace = time.Second
	if tune != nil {
		tune(cfg)
	}
	if err := cfg.embed(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if os.Getenv("DROVER_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runDev(ctx, cfg, log, register, func(a net.Addr) { addr <- a }) }()
	select {
	case a := <-addr:
		b.url = "http://" + a.String()
	case err := <-done:
		t.Fatalf("drover dev did not start: %v", err)
	}
	b.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("drover dev: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			b.stop()
		}
		memq.Delete(b.tasks)
		memq.Delete(b.events)
	})
	return b
}

// do sends a request and decodes the JSON answer into out (if not nil).
func (b *devBundle) do(t *testing.T, method, path, ctype string, body []byte, out any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

func (b *devBundle) submitBatch(t *testing.T, specs []map[string]any) []*task.Status {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"tasks": specs})
	var out struct{ Tasks []*task.Status }
	code, raw := b.do(t, "POST", "/v1/tasks/batch", "application/json", body, &out)
	if code != http.StatusAccepted {
		t.Fatalf("batch submit: %d %s", code, raw)
	}
	return out.Tasks
}

func (b *devBundle) get(t *testing.T, id string, wait time.Duration) *task.Status {
	t.Helper()
	var st task.Status
	path := "/v1/tasks/" + id
	if wait > 0 {
		path += "?wait=" + wait.String()
	}
	if code, raw := b.do(t, "GET", path, "", nil, &st); code != http.StatusOK {
		t.Fatalf("get %s: %d %s", id, code, raw)
	}
	return &st
}

// awaitTerminal long-polls every task until it is terminal.
func (b *devBundle) awaitTerminal(t *testing.T, ids []string, within time.Duration) map[string]*task.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	out := map[string]*task.Status{}
	for _, id := range ids {
		for {
			st := b.get(t, id, 5*time.Second)
			if st.State.Terminal() {
				out[id] = st
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s still %s after %s", id, st.State, within)
			}
		}
	}
	return out
}

// listAll pages through GET /v1/tasks.
func (b *devBundle) listAll(t *testing.T, query string) []*task.Status {
	t.Helper()
	var all []*task.Status
	cursor := ""
	for {
		var page struct {
			Tasks      []*task.Status
			NextCursor string `json:"next_cursor"`
		}
		path := "/v1/tasks?limit=300" + query
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if code, raw := b.do(t, "GET", path, "", nil, &page); code != http.StatusOK {
			t.Fatalf("list: %d %s", code, raw)
		}
		all = append(all, page.Tasks...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

func TestDevSubmitEchoWait(t *testing.T) {
	b := setupDev(t, nil)
	var st task.Status
	code, raw := b.do(t, "POST", "/v1/tasks", "application/json", []byte(`{"function":"echo","args":{"x":1}}`), &st)
	if code != http.StatusAccepted || st.State != task.Queued || st.Function != "echo" || st.MaxAttempts != 3 || st.Queue != "default" {
		t.Fatalf("submit: %d %s", code, raw)
	}
	got := b.get(t, st.ID, 10*time.Second)
	if got.State != task.Succeeded || string(got.Result) != `{"x":1}` || got.Attempt != 1 || got.Runner == "" || got.StartedAt.IsZero() || got.FinishedAt.IsZero() {
		t.Fatalf("final status = %+v", got)
	}
	code, raw = b.do(t, "GET", "/v1/tasks/"+st.ID+"/result", "", nil, nil)
	if code != http.StatusOK || strings.TrimSpace(string(raw)) != `{"x":1}` {
		t.Fatalf("result: %d %s", code, raw)
	}
}

// TestDevBatchMixed is acceptance 2 of the core issue: 1,000 tasks of
// mixed outcomes all reach exactly the expected terminal state.
func TestDevBatchMixed(t *testing.T) {
	b := setupDev(t, func(c *devEnv) { c.Runner.Concurrency = 16 })
	type want struct {
		state   task.State
		attempt int
		errHas  string
	}
	var specs []map[string]any
	var wants []want
	for i := range 1000 {
		switch i % 5 {
		case 0, 1:
			specs = append(specs, map[string]any{"function": "echo", "args": map[string]int{"i": i}})
			wants = append(wants, want{task.Succeeded, 1, ""})
		case 2:
			specs = append(specs, map[string]any{"function": "sleep", "args": map[string]int{"ms": i % 20}})
			wants = append(wants, want{task.Succeeded, 1, ""})
		case 3: // fails once, succeeds on attempt 2 of 3
			specs = append(specs, map[string]any{"function": "fail", "args": map[string]any{"times": 1, "message": fmt.Sprint("boom ", i)}})
			wants = append(wants, want{task.Succeeded, 2, ""})
		case 4: // fails more often than it may try
			specs = append(specs, map[string]any{"function": "fail", "args": map[string]any{"times": 5, "message": fmt.Sprint("boom ", i)}, "max_attempts": 2})
			wants = append(wants, want{task.Failed, 2, fmt.Sprint("boom ", i)})
		}
	}
	sts := b.submitBatch(t, specs)
	if len(sts) != len(specs) {
		t.Fatalf("batch returned %d statuses for %d tasks", len(sts), len(specs))
	}
	ids := make([]string, len(sts))
	for i, st := range sts {
		ids[i] = st.ID
	}
	final := b.awaitTerminal(t, ids, 2*time.Minute)
	for i, id := range ids {
		st, w := final[id], wants[i]
		if st.State != w.state || st.Attempt != w.attempt || !strings.Contains(st.Error, w.errHas) {
			t.Errorf("task %d (%s %v): state %s attempt %d error %q; want %s attempt %d error containing %q",
				i, st.Function, specs[i]["args"], st.State, st.Attempt, st.Error, w.state, w.attempt, w.errHas)
		}
		if w.state == task.Succeeded && st.Function == "echo" && string(st.Result) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Errorf("task %d result %s", i, st.Result)
		}
	}
	all := b.listAll(t, "")
	seen := map[string]bool{}
	for _, st := range all {
		if seen[st.ID] {
			t.Errorf("task %s listed twice", st.ID)
		}
		seen[st.ID] = true
	}
	if len(seen) != len(ids) {
		t.Errorf("store lists %d tasks, want %d", len(seen), len(ids))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID <= all[i].ID {
			t.Fatalf("list not newest first at %d: %s then %s", i, all[i-1].ID, all[i].ID)
		}
	}
	if n := len(b.listAll(t, "&state=failed")); n != 200 {
		t.Errorf("listed %d failed tasks, want 200", n)
	}
}

// TestDevBadInput is acceptance 3: every bad request gets a 4xx problem
// naming what was wrong, and nothing is enqueued.
func TestDevBadInput(t *testing.T) {
	b := setupDev(t, nil)
	big := `{"function":"echo","args":"` + strings.Repeat("a", 17<<20) + `"}`
	var over []string
	for range 1001 {
		over = append(over, `{"function":"echo"}`)
	}
	cases := []struct {
		name, path, ctype, body string
		status                  int
		detail                  string
	}{
		{"malformed JSON", "/v1/tasks", "application/json", `{"function":`, 400, "malformed JSON"},
		{"not an object", "/v1/tasks", "application/json", `[1,2]`, 400, "want"},
		{"unknown field", "/v1/tasks", "application/json", `{"function":"echo","colour":"red"}`, 400, `unknown field "colour"`},
		{"empty function", "/v1/tasks", "application/json", `{"function":""}`, 422, "function: is required"},
		{"missing function", "/v1/tasks", "application/json", `{"args":{}}`, 422, "function: is required"},
		{"bad function name", "/v1/tasks", "application/json", `{"function":"rm -rf /"}`, 422, "function:"},
		{"body over limit", "/v1/tasks", "application/json", big, 413, "larger than"},
		{"wrong content type", "/v1/tasks", "text/plain", `{"function":"echo"}`, 415, "Content-Type must be application/json"},
		{"no content type", "/v1/tasks", "", `{"function":"echo"}`, 415, "Content-Type"},
		{"bad timeout", "/v1/tasks", "application/json", `{"function":"echo","timeout":"soon"}`, 422, `timeout: "soon" is not a duration`},
		{"negative timeout", "/v1/tasks", "application/json", `{"function":"echo","timeout":"-1s"}`, 422, "timeout:"},
		{"timeout as number", "/v1/tasks", "application/json", `{"function":"echo","timeout":30}`, 400, "timeout"},
		{"bad max_attempts", "/v1/tasks", "application/json", `{"function":"echo","max_attempts":0}`, 422, "max_attempts"},
		{"two values", "/v1/tasks", "application/json", `{"function":"echo"}{"function":"echo"}`, 400, "more than one JSON value"},
		{"deep nesting", "/v1/tasks", "application/json", `{"function":"echo","args":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, 400, "deeper than"},
		{"invalid UTF-8", "/v1/tasks", "application/json", "{\"function\":\"echo\",\"args\":\"\xff\"}", 400, "UTF-8"},
		{"batch over 1000", "/v1/tasks/batch", "application/json", `{"tasks":[` + strings.Join(over, ",") + `]}`, 422, "more than the 1000"},
		{"empty batch", "/v1/tasks/batch", "application/json", `{"tasks":[]}`, 422, "tasks: is empty"},
		{"one bad task in batch", "/v1/tasks/batch", "application/json", `{"tasks":[{"function":"echo"},{"function":"echo","delay":"x"}]}`, 422, "tasks[1].delay"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, raw := b.do(t, "POST", c.path, c.ctype, []byte(c.body), nil)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, raw)
			}
			var p struct {
				Type, Title, Detail string
				Status              int
			}
			if err := json.Unmarshal(raw, &p); err != nil || p.Status != c.status || p.Type == "" || p.Title == "" {
				t.Fatalf("not a problem document: %s", raw)
			}
			if !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("detail %q does not mention %q", p.Detail, c.detail)
			}
		})
	}
	if st := memq.Stats(b.tasks); st.Ready+st.InFlight+st.Delayed != 0 {
		t.Errorf("rejected requests enqueued messages: %+v", st)
	}
	if n := len(b.listAll(t, "")); n != 0 {
		t.Errorf("rejected requests left %d statuses", n)
	}
	for _, c := range []struct{ method, path string }{{"GET", "/v1/tasks/nope"}, {"DELETE", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV"}, {"PUT", "/v1/tasks"}} {
		code, raw := b.do(t, c.method, c.path, "", nil, nil)
		if code != 404 && code != 405 || !strings.Contains(string(raw), `"status"`) {
			t.Errorf("%s %s: %d %s", c.method, c.path, code, raw)
		}
	}
}

// TestDevCancel is acceptance 4: a queued task never runs, a running sleep
// stops at its next heartbeat; both end cancelled.
func TestDevCancel(t *testing.T) {
	b := setupDev(t, nil)
	sts := b.submitBatch(t, []map[string]any{
		{"function": "echo", "args": "never", "delay": "1s"},
		{"function": "sleep", "args": map[string]int{"ms": 60000}},
	})
	queued, running := sts[0].ID, sts[1].ID

	var st task.Status
	if code, raw := b.do(t, "DELETE", "/v1/tasks/"+queued, "", nil, &st); code != 200 || st.State != task.Cancelled {
		t.Fatalf("cancel queued: %d %s", code, raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.get(t, running, 0).State != task.Running {
		if time.Now().After(deadline) {
			t.Fatal("sleep task never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancelledAt := time.Now()
	if code, raw := b.do(t, "DELETE", "/v1/tasks/"+running, "", nil, &st); code != 200 || st.State != task.Cancelled {
		t.Fatalf("cancel running: %d %s", code, raw)
	}
	// The runner stops the sleep at its next heartbeat (200ms here) and
	// acks the message: the queue drains, long before the 60s sleep ends.
	for {
		qs := memq.Stats(b.tasks)
		if qs.InFlight == 0 && qs.Ready == 0 && qs.Delayed == 0 {
			break
		}
		if time.Since(cancelledAt) > 5*time.Second {
			t.Fatalf("cancelled tasks still held by the queue: %+v", qs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // any late event would land by now
	for _, id := range []string{queued, running} {
		if st := b.get(t, id, 0); st.State != task.Cancelled {
			t.Errorf("task %s ended %s, want cancelled", id, st.State)
		}
	}
	if st := b.get(t, queued, 0); !st.StartedAt.IsZero() || st.Attempt != 0 {
		t.Errorf("queued task ran: %+v", st)
	}
	if code, _ := b.do(t, "DELETE", "/v1/tasks/"+queued, "", nil, nil); code != http.StatusConflict {
		t.Errorf("second cancel: %d, want 409", code)
	}
}

// TestDevEnvParse: drover dev reads each part's variables into that
// part's config, shared ones into every part, and fills the embedded
// default only where nothing is set.
func TestDevEnvParse(t *testing.T) {
	t.Setenv("DROVER_DATA_DIR", t.TempDir())
	t.Setenv("DROVER_BUCKET", "mem://")
	t.Setenv("DROVER_CONCURRENCY", "3")
	t.Setenv("DROVER_RUNNERS", "5")
	t.Setenv("DROVER_RETENTION", "1h")
	var e devEnv
	if err := envconfig.Parse(&e); err != nil {
		t.Fatal(err)
	}
	if err := e.embed(); err != nil {
		t.Fatal(err)
	}
	if err := e.validate(); err != nil {
		t.Fatal(err)
	}
	if e.Dispatch.Bucket != "mem://" || e.Runner.Bucket != "mem://" || e.Collect.Bucket != "mem://" {
		t.Errorf("buckets %q, %q, %q; want DROVER_BUCKET in each", e.Dispatch.Bucket, e.Runner.Bucket, e.Collect.Bucket)
	}
	if e.Runner.Concurrency != 3 || e.Runners != 5 || e.Dispatch.Retention != time.Hour || e.Collect.Retention != time.Hour {
		t.Errorf("concurrency %d, runners %d, retention %s/%s; want 3, 5, 1h", e.Runner.Concurrency, e.Runners, e.Dispatch.Retention, e.Collect.Retention)
	}
	if !strings.HasPrefix(e.Dispatch.TasksTopic, "memq://") || !strings.HasPrefix(e.Dispatch.Status, "memstore://") || e.Runner.Heartbeat != time.Second {
		t.Errorf("embedded defaults not filled: topic %q, status %q, heartbeat %s", e.Dispatch.TasksTopic, e.Dispatch.Status, e.Runner.Heartbeat)
	}
	t.Setenv("DROVER_RUNNERS", "-1")
	var bad devEnv
	if err := envconfig.Parse(&bad); err != nil {
		t.Fatal(err)
	}
	if err := bad.embed(); err != nil {
		t.Fatal(err)
	}
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "DROVER_RUNNERS=-1") {
		t.Errorf("validate with -1 runners = %v; want DROVER_RUNNERS named", err)
	}
}
