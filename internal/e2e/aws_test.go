package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/awstest"
	_ "github.com/droverhq/drover/internal/drivers"
	"github.com/droverhq/drover/pkg/task"
)

// TestAWSPipeline: dispatch, two runners and the collector as separate
// processes configured only by environment variables process 500 tasks
// over SQS, S3 and DynamoDB; every status in DynamoDB is terminal and
// right.
func TestAWSPipeline(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{})
	c := e.dispatch()
	e.start("runner-a", "runner", "DROVER_CONCURRENCY=16", "DROVER_LOG_LEVEL=debug")
	e.start("runner-b", "runner", "DROVER_CONCURRENCY=16", "DROVER_LOG_LEVEL=debug")
	e.start("collect", "collect")

	type want struct {
		state   task.State
		attempt int
	}
	var specs []task.Spec
	var wants []want
	for i := range 500 {
		switch i % 4 {
		case 0, 1:
			specs = append(specs, task.Spec{Function: "echo", Args: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
			wants = append(wants, want{task.Succeeded, 1})
		case 2:
			specs = append(specs, task.Spec{Function: "fail", Args: json.RawMessage(`{"times":1}`)})
			wants = append(wants, want{task.Succeeded, 2})
		case 3:
			specs = append(specs, task.Spec{Function: "fail", Args: json.RawMessage(`{"message":"nope"}`), MaxAttempts: 2})
			wants = append(wants, want{task.Failed, 2})
		}
	}
	ctx := context.Background()
	var ids []string
	for i := 0; i < len(specs); i += 250 {
		sts, err := c.SubmitBatch(ctx, specs[i:i+250])
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		for _, st := range sts {
			ids = append(ids, st.ID)
		}
	}
	waitAll(t, c, ids, 15*time.Minute)

	// Read the statuses straight from DynamoDB, not through the API.
	store, err := task.OpenStore(ctx, e.stack.Lookup("DROVER_STATUS"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	docs, err := store.GetMany(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	// Attempts count executions (the status store numbers starts), so a
	// duplicate delivery (moto delivers one message to concurrent
	// receivers, like SQS now and then) spends none, one of a last attempt
	// still running waits for it instead of giving up, and a start whose
	// write landed with its answer lost is found written when the runner
	// asks again: every task ends exactly as its function decides, at the
	// attempt it decides ("gave up" never).
	var wrong []string
	for i, st := range docs {
		w := wants[i]
		switch {
		case st == nil:
			t.Errorf("task %d (%s): no document in DynamoDB", i, ids[i])
		case st.State != w.state || st.Attempt != w.attempt:
			t.Errorf("task %d (%s %s): %s attempt %d, want %s attempt %d (error %q, runner %s)", i, ids[i], st.Function, st.State, st.Attempt, w.state, w.attempt, st.Error, st.Runner)
			wrong = append(wrong, ids[i])
		case specs[i].Function == "echo" && string(st.Result) != string(specs[i].Args):
			t.Errorf("task %d: result %s, want %s", i, st.Result, specs[i].Args)
		case w.state == task.Failed && st.Error != "nope":
			t.Errorf("task %d: error %q, want \"nope\"", i, st.Error)
		}
	}
	// The runners log each outcome (debug): who ran which attempt.
	e.logTasks(wrong[:min(len(wrong), 4)])
	page, err := c.List(ctx, client.ListOptions{State: task.Failed, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Tasks) != 125 {
		t.Errorf("listed %d failed tasks, want 125", len(page.Tasks))
	}
	rs, err := c.Runners(ctx)
	if err != nil || len(rs) < 2 {
		t.Errorf("runners: %v %+v", err, rs)
	}
}

// TestAWSKillRunner: kill -9 of a runner in the middle of 50 sleep tasks;
// all 50 still succeed, the killed runner's on a later attempt.
func TestAWSKillRunner(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{VisibilityTimeout: 3 * time.Second})
	c := e.dispatch()
	e.start("collect", "collect")
	victim := e.start("victim", "runner", "DROVER_CONCURRENCY=25", "DROVER_LEASE=3s")

	specs := make([]task.Spec, 50)
	for i := range specs {
		specs[i] = task.Spec{Function: "sleep", Args: json.RawMessage(`{"ms":1500}`)}
	}
	sts, err := c.SubmitBatch(context.Background(), specs)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(sts))
	for i, st := range sts {
		ids[i] = st.ID
	}
	// Kill the victim once it is running tasks: a task shows running as
	// soon as a runner has recorded its start, before its function runs.
	// (Its log's "runner started" says nothing about tasks: waiting for
	// that killed it before it held any, which passed only while a
	// delivery that never ran counted as an attempt.)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// One query, so that the kill comes well within a task's 1.5 s.
		if page, err := c.List(context.Background(), client.ListOptions{State: task.Running, Limit: 1}); err == nil && len(page.Tasks) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("victim never started a task")
		}
		time.Sleep(100 * time.Millisecond)
	}
	victim.Kill()
	e.start("survivor", "runner", "DROVER_CONCURRENCY=25", "DROVER_LEASE=3s")

	final := waitAll(t, c, ids, 10*time.Minute)
	retried := 0
	for _, id := range ids {
		st := final[id]
		if st.State != task.Succeeded {
			t.Errorf("task %s ended %s (%s)", id, st.State, st.Error)
		}
		if st.Runner == "victim" {
			t.Errorf("task %s finished on the killed runner", id)
		}
		if st.Attempt > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no task ran again after the kill: the victim held none?")
	}
	t.Logf("%d of 50 tasks ran again after the kill", retried)
}

// TestAWSLeaseExtension: a task running 3× the queue's visibility timeout
// is not delivered twice while its runner heartbeats.
func TestAWSLeaseExtension(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{VisibilityTimeout: 2 * time.Second})
	c := e.dispatch()
	e.start("collect", "collect")
	e.start("runner-a", "runner", "DROVER_HEARTBEAT=500ms", "DROVER_LEASE=2s")
	e.start("runner-b", "runner", "DROVER_HEARTBEAT=500ms", "DROVER_LEASE=2s")

	st, err := c.Submit(context.Background(), task.Spec{Function: "sleep", Args: json.RawMessage(`{"ms":6000}`)})
	if err != nil {
		t.Fatal(err)
	}
	// A second delivery would start attempt 2, which outranks attempt 1's
	// start: the document would show it while the task runs.
	end := time.Now().Add(20 * time.Second)
	for {
		cur, err := c.Get(context.Background(), st.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Attempt > 1 {
			t.Fatalf("task delivered again while its lease was extended: %+v", cur)
		}
		if cur.State.Terminal() {
			if cur.State != task.Succeeded || cur.Attempt != 1 {
				t.Fatalf("final %+v", cur)
			}
			if d := cur.FinishedAt.Sub(cur.StartedAt); d < 6*time.Second {
				t.Fatalf("ran %s, want ≥ 6s", d)
			}
			return
		}
		if time.Now().After(end) {
			t.Fatalf("task not done after 20s: %+v", cur)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAWSDeadLetterSweep: a task whose deliveries all end without an
// outcome lands in the DLQ by the redrive policy, and the collector's
// sweeper marks it failed.
func TestAWSDeadLetterSweep(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{MaxReceiveCount: 1, VisibilityTimeout: 1 * time.Second})
	c := e.dispatch()
	e.start("collect", "collect")
	st, err := c.Submit(context.Background(), task.Spec{Function: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	// Play a runner that takes the message and dies: receive, never delete.
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	q := sqs.NewFromConfig(cfg)
	for i := 0; i < 20; i++ {
		out, err := q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(e.stack.TasksQueueURL), VisibilityTimeout: 1, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 && i > 0 {
			break // moved to the DLQ on the receive after the first
		}
		time.Sleep(1100 * time.Millisecond)
	}
	got, err := c.Wait(context.Background(), st.ID, client.WaitOptions{PollWait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != task.Failed || !strings.Contains(got.Error, "dead-lettered") {
		t.Fatalf("status %+v, want failed by the sweeper", got)
	}
}

// TestAWSClaimCheck: args above SQS's 256 KiB message limit travel through
// S3, and so does a large result.
func TestAWSClaimCheck(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{})
	c := e.dispatch()
	e.start("runner", "runner")
	e.start("collect", "collect")
	big := `"` + strings.Repeat("x", 300<<10) + `"`
	st, err := c.Submit(context.Background(), task.Spec{Function: "echo", Args: json.RawMessage(big)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Wait(context.Background(), st.ID, client.WaitOptions{PollWait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != task.Succeeded || got.ResultRef == "" || len(got.Result) != 0 {
		t.Fatalf("status %+v, want succeeded with a result reference", got)
	}
	rc, _, err := c.Result(context.Background(), st.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(body, []byte(big)) {
		t.Fatalf("result is %d bytes, want the %d submitted", len(body), len(big))
	}
}
