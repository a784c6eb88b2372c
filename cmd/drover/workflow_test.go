package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// callbackCounter is a group callback that counts its runs per group and
// checks the results it is given.
type callbackCounter struct {
	mu   sync.Mutex
	runs map[string]int    // callback task ID → runs
	seen map[string]string // callback task ID → what was wrong with its input, "" if nothing
}

func newCallbackCounter() *callbackCounter {
	return &callbackCounter{runs: map[string]int{}, seen: map[string]string{}}
}

func (c *callbackCounter) register(m *runner.Mux) {
	m.HandleFunc("collect-results", func(_ context.Context, t *task.Task) (task.Result, error) {
		var args struct {
			Input []task.MemberResult `json:"input"`
			Want  int                 `json:"want"`
		}
		if err := json.Unmarshal(t.Args, &args); err != nil {
			return nil, fmt.Errorf("callback %s: %v: %w", t.ID, err, task.ErrPermanent)
		}
		problem := ""
		if len(args.Input) != args.Want {
			problem = fmt.Sprintf("%d results, want %d", len(args.Input), args.Want)
		}
		for i, r := range args.Input {
			if problem != "" {
				break
			}
			var echoed struct{ I int }
			_ = json.Unmarshal(r.Result, &echoed)
			if r.Index != i || r.State != task.Succeeded || echoed.I != i {
				problem = fmt.Sprintf("result %d is %+v", i, r)
			}
		}
		c.mu.Lock()
		c.runs[t.ID]++
		c.seen[t.ID] = problem
		c.mu.Unlock()
		return task.JSONResult(map[string]any{"results": len(args.Input)})
	})
}

// TestGroupCallbackEmbedded is acceptance 2 on the embedded default: a
// group of 10 000 echo members with a callback; the callback runs once,
// with every result in index order, and the group's counts match its
// members' statuses.
func TestGroupCallbackEmbedded(t *testing.T) {
	// 10 000 (the cap) with DROVER_GROUP_MEMBERS=10000; make test's
	// default keeps the race-detector run short.
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("DROVER_GROUP_MEMBERS")); err == nil && v > 0 {
		n = v
	}
	cc := newCallbackCounter()
	b := setupDevWith(t, func(e *devEnv) { e.Runners = 2; e.Runner.Concurrency = 32 }, cc.register)
	c := client.New(b.url)
	ctx := context.Background()
	spec := task.GroupSpec{Then: &task.Spec{Function: "collect-results", Args: json.RawMessage(fmt.Sprintf(`{"want":%d}`, n))}}
	for i := range n {
		spec.Tasks = append(spec.Tasks, task.Spec{Function: "echo", Args: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}
	g, err := c.SubmitGroup(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if g.Size != n || g.Callback == "" || g.State != task.GroupRunning || len(g.Members) != 100 || g.Members[7].Group.Index != 7 {
		t.Fatalf("submitted group: %+v", g)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	g, err = c.WaitGroup(wctx, g.ID, client.WaitGroupOptions{Interval: time.Second})
	if err != nil {
		t.Fatalf("wait: %v (last %+v)", err, g)
	}
	if g.State != task.GroupSucceeded || g.Counts[task.Succeeded] != n || g.Done != n || g.CallbackState != task.Succeeded {
		t.Fatalf("group ended %+v", g)
	}
	cc.mu.Lock()
	runs, problem := cc.runs[g.Callback], cc.seen[g.Callback]
	cc.mu.Unlock()
	if runs != 1 || problem != "" {
		t.Fatalf("callback ran %d times; its input: %q", runs, problem)
	}
	cb, err := c.Get(ctx, g.Callback)
	if err != nil {
		t.Fatal(err)
	}
	if cb.CallbackOf != g.ID || cb.Attempt != 1 || !strings.Contains(string(cb.Result), fmt.Sprintf(`"results":%d`, n)) {
		t.Fatalf("callback status %+v", cb)
	}
	// The counts are those of the members' documents, paged in index order.
	counts := map[task.State]int{}
	seen := 0
	for cursor := 0; ; {
		page, err := c.Group(ctx, g.ID, client.GroupOptions{Cursor: cursor, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for k, m := range page.Members {
			if m.Group == nil || m.Group.ID != g.ID || m.Group.Index != cursor+k {
				t.Fatalf("member %d of page at %d: %+v", k, cursor, m)
			}
			counts[m.State]++
			seen++
		}
		if page.NextCursor == 0 {
			break
		}
		cursor = page.NextCursor
	}
	if seen != n || counts[task.Succeeded] != g.Counts[task.Succeeded] || len(counts) != len(g.Counts) {
		t.Fatalf("members' states %v, group counts %v (%d members read)", counts, g.Counts, seen)
	}
}

// TestChainEmbedded: mul then safediv passes the product on, a division
// by zero fails the step and cancels the rest of the chain.
func TestChainEmbedded(t *testing.T) {
	b := setupDev(t, nil)
	c := client.New(b.url)
	ctx := context.Background()
	ok, err := c.Submit(ctx, task.Spec{Function: "mul", Args: json.RawMessage(`[2,3]`),
		Then: &task.Spec{Function: "safediv", Args: json.RawMessage(`[3]`),
			Then: &task.Spec{Function: "echo", Args: json.RawMessage(`{"note":"last"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.Submit(ctx, task.Spec{Function: "mul", Args: json.RawMessage(`[2,3]`),
		Then: &task.Spec{Function: "safediv", Args: json.RawMessage(`[0]`),
			Then: &task.Spec{Function: "echo", Then: &task.Spec{Function: "echo"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if ok.Next == "" || ok.Next != task.NextID(ok.ID) {
		t.Fatalf("first step %+v", ok)
	}
	wait := func(id string) *task.Status {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		st, err := c.Wait(wctx, id, client.WaitOptions{MinInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("wait %s: %v (%+v)", id, err, st)
		}
		return st
	}
	if st0 := wait(ok.ID); st0.State != task.Succeeded || st0.Next != ok.Next {
		t.Fatalf("first step %+v", st0)
	}
	s2 := wait(ok.Next)
	if s2.State != task.Succeeded || string(s2.Result) != "2" || s2.Previous != ok.ID {
		t.Fatalf("safediv step %+v", s2)
	}
	s3 := wait(s2.Next)
	if s3.State != task.Succeeded || string(s3.Result) != `{"input":2,"note":"last"}` || s3.Previous != s2.ID || s3.Next != "" {
		t.Fatalf("last step %+v result %s", s3, s3.Result)
	}

	d2 := wait(bad.Next)
	if d2.State != task.Failed || !strings.Contains(d2.Error, "division by zero") || d2.Attempt != 1 {
		t.Fatalf("safediv by zero %+v", d2)
	}
	for id, k := d2.Next, 3; id != ""; k++ {
		st := wait(id)
		if st.State != task.Cancelled || !strings.Contains(st.Error, "previous step") {
			t.Fatalf("step %d after a failed step: %+v", k, st)
		}
		id = st.Next
	}
}

// TestWorkflowBadInput is acceptance 5: a clear 4xx naming the problem,
// and nothing created.
func TestWorkflowBadInput(t *testing.T) {
	b := setupDev(t, nil)
	deep := `{"function":"echo"}`
	for range task.MaxThenDepth + 1 {
		deep = `{"function":"echo","then":` + deep + `}`
	}
	many := `{"tasks":[` + strings.Repeat(`{"function":"echo"},`, task.MaxGroupMembers) + `{"function":"echo"}]}`
	for _, c := range []struct {
		name, path, body, want string
	}{
		{"empty group", "/v1/groups", `{"tasks":[]}`, "tasks: is empty"},
		{"no tasks", "/v1/groups", `{"then":{"function":"echo"}}`, "tasks: is empty"},
		{"too many members", "/v1/groups", many, "more than the 10000"},
		{"unknown on_failure", "/v1/groups", `{"tasks":[{"function":"echo"}],"on_failure":"retry"}`, `on_failure: \"retry\" is not one of`},
		{"member with then", "/v1/groups", `{"tasks":[{"function":"echo","then":{"function":"echo"}}]}`, "tasks[0].then"},
		{"bad member", "/v1/groups", `{"tasks":[{"function":"echo"},{"function":""}]}`, "tasks[1].function: is required"},
		{"bad callback", "/v1/groups", `{"tasks":[{"function":"echo"}],"then":{"function":"echo","args":"x"}}`, "then.args"},
		{"then too deep", "/v1/tasks", deep, "then: nests more than 16 steps"},
		{"then too deep in group", "/v1/groups", `{"tasks":[{"function":"echo"}],"then":` + deep + `}`, "nests more than 16 steps"},
		{"then with input key", "/v1/tasks", `{"function":"echo","then":{"function":"echo","args":{"input":1}}}`, `then.args: must not have an \"input\"`},
		{"then unknown field", "/v1/tasks", `{"function":"echo","then":{"function":"echo","tasks":[]}}`, "unknown field"},
		{"then delay", "/v1/tasks", `{"function":"echo","then":{"function":"echo","delay":"1s"}}`, "then.delay"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, raw := b.do(t, "POST", c.path, "application/json", []byte(c.body), nil)
			if code < 400 || code >= 500 || !strings.Contains(string(raw), c.want) {
				t.Fatalf("%d %s, want a 4xx naming %q", code, raw, c.want)
			}
		})
	}
	var list struct{ Tasks []*task.Status }
	if code, raw := b.do(t, "GET", "/v1/tasks?limit=10", "", nil, &list); code != http.StatusOK || len(list.Tasks) != 0 {
		t.Fatalf("after rejected requests: %d %s", code, raw)
	}
}
