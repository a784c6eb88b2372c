package e2e

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/internal/proctest"
	"github.com/droverhq/drover/pkg/task"
)

// TestAWSRedrive is acceptance 4 of issue 17: 20 tasks dead-lettered on
// the emulator (a runner that takes them and dies, twice; the redrive
// policy moves them to the DLQ, the sweeper marks them failed and keeps
// them) are all redriven by drover redrive and succeed; the DLQ and the
// kept dead letters end empty. A redrive that stops midway loses nothing
// and duplicates nothing: a first one redrives 7, one more is enqueued
// without its dead letter deleted (a redrive killed between the two
// steps), and drover redrive then brings back exactly the other 13.
func TestAWSRedrive(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{MaxReceiveCount: 1, VisibilityTimeout: 10 * time.Second})
	addr := proctest.FreeAddr(t)
	e.start("dispatch", "dispatch", "DROVER_ADDR="+addr).WaitReady(t, "http://"+addr+"/readyz", 30*time.Second)
	c := client.New("http://" + addr)
	e.start("collect", "collect")
	ctx := context.Background()
	var specs []task.Spec
	for i := range 20 {
		specs = append(specs, task.Spec{Function: "echo", Args: []byte(strconv.Itoa(i))})
	}
	sts, err := c.SubmitBatch(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]bool{}
	for _, st := range sts {
		old[st.ID] = true
	}

	// Play a runner that takes every message and dies, until the redrive
	// policy has moved them all to the DLQ.
	q := sqsClient(t)
	deadline := time.Now().Add(10 * time.Minute)
	for empty := 0; empty < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the messages never all moved to the DLQ")
		}
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(e.stack.TasksQueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 && queueCount(t, q, e.stack.TasksQueueURL) == 0 {
			empty++
		} else {
			empty = 0
		}
	}
	for id := range old {
		st, err := c.Wait(ctx, id, client.WaitOptions{PollWait: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if st.State != task.Failed || !strings.Contains(st.Error, "dead-lettered") {
			t.Fatalf("task %s: %s %q, want failed by the sweeper", id, st.State, st.Error)
		}
	}
	waitCount(t, func() int { return queueCount(t, q, e.stack.TasksDLQURL) }, 0, "the DLQ after the sweep")
	dls, err := c.DeadLetters(ctx, "", 0)
	if err != nil || len(dls) != 20 {
		t.Fatalf("dead letters kept: %d (%v), want 20", len(dls), err)
	}

	// A first redrive of 7, and one more retried without its dead letter
	// deleted: a redrive killed between enqueueing and deleting.
	first, err := c.Redrive(ctx, "", 7)
	if err != nil || len(first) != 7 {
		t.Fatalf("redrive --limit 7: %d (%v)", len(first), err)
	}
	left, err := c.DeadLetters(ctx, "", 0)
	if err != nil || len(left) != 13 {
		t.Fatalf("after redriving 7, %d dead letters left (%v), want 13", len(left), err)
	}
	half, err := c.Retry(ctx, left[0].ID)
	if err != nil {
		t.Fatal(err)
	}

	// drover redrive brings back the rest.
	cmd := exec.Command(droverBin, "redrive")
	cmd.Env = append(append([]string{}, e.vars...), "DROVER_URL=http://"+addr)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "13 dead letters redriven") {
		t.Fatalf("drover redrive: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), left[0].ID+" redriven as "+half.ID) {
		t.Errorf("drover redrive made a second retry of %s instead of returning %s:\n%s", left[0].ID, half.ID, out)
	}

	// A runner now runs the 20 new tasks: each succeeds with its args.
	e.start("runner", "runner", "DROVER_CONCURRENCY=32")
	fresh := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if from, to, ok := strings.Cut(line, " redriven as "); ok {
			fresh[to] = from
		}
	}
	for _, st := range first {
		fresh[st.ID] = strings.TrimPrefix(st.IdempotencyKey, "retry:")
	}
	if len(fresh) != 20 {
		t.Fatalf("%d distinct new tasks, want 20", len(fresh))
	}
	var ids []string
	for id, from := range fresh {
		if !old[from] {
			t.Errorf("new task %s is a retry of %s, not of a dead-lettered task", id, from)
		}
		ids = append(ids, id)
	}
	done := waitAll(t, c, ids, 10*time.Minute)
	for id, st := range done {
		if st.State != task.Succeeded {
			t.Errorf("redriven task %s: %s %q", id, st.State, st.Error)
		}
	}
	// With one receive allowed, a duplicate delivery of a task that
	// succeeded can dead-letter it again: redrive then drops it, as its
	// task succeeded, and retries nothing.
	if again, err := c.Redrive(ctx, "", 0); err != nil || len(again) != 0 {
		t.Errorf("a redrive after all succeeded retried %d tasks (%v), want 0", len(again), err)
	}
	if dls, err := c.DeadLetters(ctx, "", 0); err != nil || len(dls) != 0 {
		t.Errorf("dead letters left after redrive: %d (%v)", len(dls), err)
	}
	waitCount(t, func() int { return queueCount(t, q, e.stack.TasksDLQURL) }, 0, "the DLQ at the end")
}

// queueCount is a queue's messages: visible, in flight and delayed.
func queueCount(t *testing.T, q *sqs.Client, url string) int {
	t.Helper()
	out, err := q.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}

// waitCount waits until f returns want.
func waitCount(t *testing.T, f func() int, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n := f()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d messages, want %d", what, n, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
