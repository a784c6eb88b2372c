package httpq_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/functions/dispatch/api"
	"github.com/droverhq/drover/pkg/httpq"
	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/memstore"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

const key = "remote-test-key-0123456789"

var seq atomic.Int64

type tlog struct{ t *testing.T }

func (l tlog) Write(b []byte) (int, error) { l.t.Log(strings.TrimSpace(string(b))); return len(b), nil }

// stack is a dispatcher serving the lease endpoints over memq, memstore
// and memblob, with a collector, on an httptest server.
type stack struct {
	url   string
	api   *client.Client
	store *task.Store
}

func setup(t *testing.T) *stack { return setupQueues(t, task.DefaultQueue) }

// setupQueues is setup with the declared queues names, each its own
// memq queue whose tasks the lease endpoints serve.
func setupQueues(t *testing.T, names ...string) *stack {
	t.Helper()
	ctx := context.Background()
	n := seq.Add(1)
	eventsQ := fmt.Sprintf("httpq-events-%d", n)
	topics := map[string]*task.Topic{}
	leased := map[string]task.Opener{}
	var memqs []string
	for _, name := range names {
		q := fmt.Sprintf("httpq-tasks-%d-%s", n, name)
		tp, err := task.OpenTopic(ctx, "memq://"+q)
		if err != nil {
			t.Fatal(err)
		}
		topics[name], leased[name] = tp, task.URLOpener("memq://"+q+"?visibility=1m")
		memqs = append(memqs, q)
	}
	events, err := task.OpenTopic(ctx, "memq://"+eventsQ)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := memstore.OpenCollection("id", nil)
	if err != nil {
		t.Fatal(err)
	}
	store := task.NewStore(coll)
	archive := task.NewArchive(memblob.OpenBucket(nil))
	queues := task.NewQueues(topics)
	srv := api.New(queues.Default(), archive, store, nil, api.Config{APIKeys: []string{key}, Queues: queues})
	srv.ServeLeases(leased, events, api.LeaseConfig{})
	hs := httptest.NewServer(srv)
	colCtx, stop := context.WithCancel(ctx)
	col := collector.New(store, archive, nil)
	done := make(chan struct{})
	go func() { defer close(done); _ = col.Run(colCtx, task.URLOpener("memq://"+eventsQ)) }()
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		stop()
		<-done
		for _, q := range memqs {
			memq.Delete(q)
		}
		memq.Delete(eventsQ)
	})
	return &stack{url: hs.URL, api: client.New(hs.URL, client.WithAPIKey(key)), store: store}
}

// runRemote runs a runner over the Remote until the test ends.
func (s *stack) runRemote(t *testing.T, name string, register func(*runner.Mux)) {
	s.runRemoteQueues(t, name, []task.QueueWeight{{Name: task.DefaultQueue, Weight: 1}}, nil, register)
}

// runRemoteQueues runs a runner serving queues with traits over the
// Remote until the test ends.
func (s *stack) runRemoteQueues(t *testing.T, name string, queues []task.QueueWeight, traits task.Traits, register func(*runner.Mux)) {
	t.Helper()
	rem, err := httpq.New(s.url, httpq.Options{APIKey: key, Lease: 5 * time.Second, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rqs := make([]runner.Queue, len(queues))
	var names []string
	for i, q := range queues {
		rqs[i] = runner.Queue{Name: q.Name, Weight: q.Weight, Open: rem.Opener(q.Name)}
		names = append(names, q.Name)
	}
	if err := rem.Check(context.Background(), names...); err != nil {
		t.Fatal(err)
	}
	res := rem.Resources()
	mux := runner.NewMux()
	runner.RegisterBuiltins(mux, res.Archive.Bucket())
	if register != nil {
		register(mux)
	}
	r := runner.New(mux, res.Events, res.Archive, rem.Statuses(), slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		runner.Config{Name: name, Concurrency: 4, Heartbeat: 500 * time.Millisecond, Grace: time.Second, Traits: traits})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.RunQueues(ctx, rqs) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (s *stack) wait(t *testing.T, id string) *task.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := s.api.Wait(ctx, id, client.WaitOptions{PollWait: 5 * time.Second})
	if err != nil {
		t.Fatalf("task %s: %v (last %+v)", id, err, st)
	}
	return st
}

// TestRemoteRunner: a runner whose only way to Drover is the dispatch
// API runs tasks to the same outcomes as any runner: inline and archived
// results and payloads, retries that count attempts, and a cancellation
// its heartbeat carries to the running function.
func TestRemoteRunner(t *testing.T) {
	s := setup(t)
	cancelled := make(chan struct{})
	s.runRemote(t, "remote-1", func(m *runner.Mux) {
		m.HandleFunc("block", func(ctx context.Context, tk *task.Task) (task.Result, error) {
			<-ctx.Done()
			close(cancelled)
			return nil, ctx.Err()
		})
	})
	ctx := context.Background()
	big := `{"pad":"` + strings.Repeat("x", 300<<10) + `"}` // claim-checked both ways
	specs := []task.Spec{
		{Function: "echo", Args: json.RawMessage(`{"x":1}`)},
		{Function: "echo", Args: json.RawMessage(big)},
		{Function: "fail", Args: json.RawMessage(`{"times":1}`), MaxAttempts: 3},
		{Function: "fail", Args: json.RawMessage(`{"message":"no"}`), MaxAttempts: 1},
	}
	sts, err := s.api.SubmitBatch(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state   task.State
		attempt int
	}{{task.Succeeded, 1}, {task.Succeeded, 1}, {task.Succeeded, 2}, {task.Failed, 1}}
	for i, st := range sts {
		got := s.wait(t, st.ID)
		if got.State != want[i].state || got.Attempt != want[i].attempt || got.Runner != "remote-1" {
			t.Errorf("task %d (%s): %s attempt %d on %q (%s); want %s attempt %d on remote-1", i, specs[i].Function, got.State, got.Attempt, got.Runner, got.Error, want[i].state, want[i].attempt)
		}
	}
	body, _, err := s.api.Result(ctx, sts[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(body)
	body.Close()
	if buf.Len() < 300<<10 || !json.Valid(buf.Bytes()) {
		t.Errorf("archived result: %d bytes; want the 300 KiB args back", buf.Len())
	}

	blk, err := s.api.Submit(ctx, task.Spec{Function: "block"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := s.api.Get(ctx, blk.ID)
		if err == nil && st.State == task.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("block never ran: %+v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.api.Cancel(ctx, blk.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	case <-time.After(time.Minute):
		t.Fatal("the running function was not cancelled by the remote runner's heartbeat")
	}
	if st := s.wait(t, blk.ID); st.State != task.Cancelled {
		t.Errorf("cancelled task ended %s", st.State)
	}
}

// post sends body to path with key and returns the status and problem.
func post(t *testing.T, url, k, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestLeaseErrors: a bad key is 401 on every lease endpoint and stops a
// remote runner at its start check; an expired lease is 410 naming the
// task, and its message goes to the next take (nothing lost); bad bodies
// are 400 or 422.
func TestLeaseErrors(t *testing.T) {
	s := setup(t)
	ctx := context.Background()
	for _, p := range []string{"/v1/leases", "/v1/leases/x/extend", "/v1/leases/x/ack", "/v1/leases/x/nack", "/v1/events", "/v1/tasks/starts", "/v1/tasks/states"} {
		if code, prob := post(t, s.url, "wrong-key-wrong-key", p, `{}`); code != http.StatusUnauthorized || prob["type"] != "urn:drover:problem:unauthorized" {
			t.Errorf("POST %s with a bad key: %d %v; want 401 unauthorized", p, code, prob)
		}
	}
	bad, err := httpq.New(s.url, httpq.Options{APIKey: "wrong-key-wrong-key"})
	if err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	if err := bad.Check(ctx); !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("Check with a bad key = %v; want a 401 client.Error", err)
	}

	st, err := s.api.Submit(ctx, task.Spec{Function: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	code, out := post(t, s.url, key, "/v1/leases", `{"max":1,"lease":"1s","wait":"10s"}`)
	ls, _ := out["leases"].([]any)
	if code != http.StatusOK || len(ls) != 1 {
		t.Fatalf("take: %d %v", code, out)
	}
	first := ls[0].(map[string]any)
	if first["task_id"] != st.ID || first["receive_count"] != 1.0 {
		t.Errorf("lease %v; want task %s, receive_count 1", first, st.ID)
	}
	id := first["id"].(string)
	time.Sleep(1500 * time.Millisecond) // past the lease
	for _, c := range []struct{ verb, body string }{{"extend", `{"lease":"10s"}`}, {"ack", `{}`}} {
		verb := c.verb
		code, prob := post(t, s.url, key, "/v1/leases/"+id+"/"+verb, c.body)
		detail, _ := prob["detail"].(string)
		if code != http.StatusGone || prob["type"] != "urn:drover:problem:lease-gone" || !strings.Contains(detail, st.ID) {
			t.Errorf("%s of an expired lease: %d %v; want 410 lease-gone naming task %s", verb, code, prob, st.ID)
		}
	}
	code, out = post(t, s.url, key, "/v1/leases", `{"lease":"30s","wait":"30s"}`)
	ls, _ = out["leases"].([]any)
	if code != http.StatusOK || len(ls) != 1 || ls[0].(map[string]any)["task_id"] != st.ID || ls[0].(map[string]any)["receive_count"] != 2.0 {
		t.Fatalf("take after the lease expired: %d %v; want task %s again, receive_count 2", code, out, st.ID)
	}
	id = ls[0].(map[string]any)["id"].(string)
	if code, _ := post(t, s.url, key, "/v1/leases/"+id+"/nack", `{"delay":"0s"}`); code != http.StatusNoContent {
		t.Errorf("nack: %d", code)
	}
	if code, _ := post(t, s.url, key, "/v1/leases/"+id+"/ack", `{}`); code != http.StatusGone {
		t.Errorf("ack after nack: %d; want 410", code)
	}

	for _, c := range []struct{ path, body string }{
		{"/v1/leases", `{"max":0.5}`},
		{"/v1/leases", `{"max":1000}`},
		{"/v1/leases", `{"lease":"forever"}`},
		{"/v1/leases", `{"lease":"1ms"}`},
		{"/v1/leases", `{"unknown":1}`},
		{"/v1/leases/x/extend", `{}`},
		{"/v1/events", `{"events":[]}`},
		{"/v1/events", `{"events":[{"task_id":"nope","phase":"started"}]}`},
		{"/v1/tasks/starts", `{"events":[{"task_id":"` + st.ID + `","phase":"succeeded"}]}`},
		{"/v1/tasks/states", `{"ids":["../x"]}`},
	} {
		if code, prob := post(t, s.url, key, c.path, c.body); code != http.StatusBadRequest && code != http.StatusUnprocessableEntity {
			t.Errorf("POST %s %s: %d %v; want 400 or 422", c.path, c.body, code, prob)
		}
	}
}

// TestStartTwice: two starts of one task in one request (a runner that
// holds two deliveries of it) are recorded in turn, as attempts 1 and 2.
func TestStartTwice(t *testing.T) {
	s := setup(t)
	st, err := s.api.Submit(context.Background(), task.Spec{Function: "nobody-runs-this", Delay: task.Duration(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	// Two deliveries of the task, started a moment apart (the same event
	// twice would be one start asked about again: Store.StartMany).
	ev := func(at string) string {
		return fmt.Sprintf(`{"v":1,"event":{"task_id":%q,"function":"x","queue":"default","max_attempts":3,"created_at":"2026-01-01T00:00:00Z","attempt":0,"phase":"started","runner":"r","at":%q}}`, st.ID, at)
	}
	code, out := post(t, s.url, key, "/v1/tasks/starts", `{"events":[`+ev("2026-01-01T00:00:01Z")+`,`+ev("2026-01-01T00:00:01.5Z")+`]}`)
	started, _ := out["started"].([]any)
	if code != http.StatusOK || len(started) != 2 {
		t.Fatalf("starts: %d %v", code, out)
	}
	a0, a1 := started[0].(map[string]any)["attempt"], started[1].(map[string]any)["attempt"]
	if a0 != 1.0 || a1 != 2.0 {
		t.Errorf("attempts %v, %v; want 1, 2", a0, a1)
	}
}

// TestRemoteRouting: remote runners lease only the tasks of their queues
// (the take names the queue), a task whose requirements a runner lacks
// is handed back without spending an attempt and waits with the reason
// in its status, the heartbeats carry each runner's queues and traits,
// and a queue the dispatcher does not lease is refused by name.
func TestRemoteRouting(t *testing.T) {
	s := setupQueues(t, task.DefaultQueue, "gpu")
	ctx := context.Background()
	s.runRemoteQueues(t, "gpu-box", []task.QueueWeight{{Name: "gpu", Weight: 3}, {Name: task.DefaultQueue, Weight: 1}}, task.Traits{"gpu": ""}, nil)
	s.runRemoteQueues(t, "plain", []task.QueueWeight{{Name: task.DefaultQueue, Weight: 1}}, nil, nil)

	var specs []task.Spec
	for i := range 40 {
		sp := task.Spec{Function: "echo", Args: json.RawMessage(fmt.Sprint(i))}
		if i%2 == 0 {
			sp.Queue, sp.Requires = "gpu", task.Requires{"gpu": ""}
		}
		specs = append(specs, sp)
	}
	specs = append(specs, task.Spec{Function: "echo", Queue: "gpu", Requires: task.Requires{"python": ">=3.12"}})
	sts, err := s.api.SubmitBatch(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range sts[:40] {
		got := s.wait(t, st.ID)
		if got.State != task.Succeeded {
			t.Errorf("task %d: %s (%s); want succeeded", i, got.State, got.Error)
			continue
		}
		if i%2 == 0 && got.Runner != "gpu-box" {
			t.Errorf("gpu task %d ran on %q; want gpu-box", i, got.Runner)
		}
	}

	// The python task: handed back by gpu-box every time, never started.
	py := sts[40].ID
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := s.api.Get(ctx, py)
		if err == nil && st.State == task.Queued && st.Attempt == 0 && strings.Contains(st.Waiting, "python") {
			break
		}
		if err == nil && st.State != task.Queued {
			t.Fatalf("task requiring python>=3.12 is %s (attempt %d, %q); want it queued, waiting", st.State, st.Attempt, st.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("task requiring python>=3.12: %+v %v; want queued, attempt 0, waiting naming python", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	rs, err := s.api.Runners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]task.RunnerInfo{}
	for _, r := range rs {
		seen[r.Name] = r
	}
	if g := seen["gpu-box"]; strings.Join(g.Queues, ",") != "gpu,default" || g.Traits["os"] == "" {
		t.Errorf("gpu-box's heartbeat: queues %v traits %v; want gpu,default with gpu and the detected os", g.Queues, g.Traits)
	} else if _, ok := g.Traits["gpu"]; !ok {
		t.Errorf("gpu-box's heartbeat: traits %v; want gpu", g.Traits)
	}
	if p := seen["plain"]; strings.Join(p.Queues, ",") != "default" {
		t.Errorf("plain's heartbeat: queues %v; want default", p.Queues)
	}

	rem, err := httpq.New(s.url, httpq.Options{APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := rem.Check(ctx, "gpu", "grid"); !errors.Is(err, httpq.ErrQueueNotLeased) || !strings.Contains(err.Error(), "grid") {
		t.Errorf("Check of queue grid = %v; want ErrQueueNotLeased naming grid", err)
	}
	if code, prob := post(t, s.url, key, "/v1/leases", `{"queue":"grid","wait":"0s"}`); code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(prob["detail"]), `"grid"`) {
		t.Errorf("take from queue grid: %d %v; want 422 naming it", code, prob)
	}
}
