package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/pkg/task"
)

// TestAWSGroup is acceptance 2 on the emulator: a group of echo
// members with a callback, through dispatch, two runners and the
// collector as separate processes over SQS, S3 and DynamoDB. The
// callback runs once (one document, its first delivery) with every
// result in index order, and the group's counts match its members'
// statuses.
func TestAWSGroup(t *testing.T) {
	// 1,000 with DROVER_GROUP_MEMBERS_AWS=1000; make test's default keeps
	// the emulator's one-request-per-document creates short.
	n := 100
	if v, err := strconv.Atoi(os.Getenv("DROVER_GROUP_MEMBERS_AWS")); err == nil && v > 0 {
		n = v
	}
	e := newEnv(t, awstest.StackOptions{})
	c := e.dispatch()
	e.start("runner-a", "runner", "DROVER_CONCURRENCY=16")
	e.start("runner-b", "runner", "DROVER_CONCURRENCY=16")
	e.start("collect", "collect")
	ctx := context.Background()
	spec := task.GroupSpec{Then: &task.Spec{Function: "echo", Args: json.RawMessage(fmt.Sprintf(`{"want":%d}`, n))}}
	for i := range n {
		spec.Tasks = append(spec.Tasks, task.Spec{Function: "echo", Args: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}
	g, err := c.SubmitGroup(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	g, err = c.WaitGroup(wctx, g.ID, client.WaitGroupOptions{Interval: 2 * time.Second})
	if err != nil {
		t.Fatalf("wait: %v (last %+v)", err, g)
	}
	if g.State != task.GroupSucceeded || g.Counts[task.Succeeded] != n || g.Done != n || g.CallbackState != task.Succeeded {
		t.Fatalf("group ended %+v", g)
	}
	cb, err := c.Get(ctx, g.Callback)
	if err != nil {
		t.Fatal(err)
	}
	if cb.CallbackOf != g.ID || cb.Attempt != 1 {
		t.Fatalf("callback %+v", cb)
	}
	body, _, err := c.Result(ctx, g.Callback)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var args struct {
		Want  int                 `json:"want"`
		Input []task.MemberResult `json:"input"`
	}
	if err := json.Unmarshal(raw, &args); err != nil || args.Want != n || len(args.Input) != n {
		t.Fatalf("callback result (%d bytes): %v, %d results", len(raw), err, len(args.Input))
	}
	for i, r := range args.Input {
		var echoed struct{ I int }
		if err := json.Unmarshal(r.Result, &echoed); err != nil || r.Index != i || r.TaskID != task.MemberID(g.ID, i) || r.State != task.Succeeded || echoed.I != i {
			t.Fatalf("callback input %d: %+v", i, r)
		}
	}
	counts := map[task.State]int{}
	for cursor := 0; ; {
		page, err := c.Group(ctx, g.ID, client.GroupOptions{Cursor: cursor, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for k, m := range page.Members {
			if m.Group == nil || m.Group.Index != cursor+k {
				t.Fatalf("member %d: %+v", cursor+k, m)
			}
			counts[m.State]++
		}
		if page.NextCursor == 0 {
			break
		}
		cursor = page.NextCursor
	}
	if counts[task.Succeeded] != n || len(counts) != len(g.Counts) {
		t.Fatalf("members' states %v, group counts %v", counts, g.Counts)
	}
}
