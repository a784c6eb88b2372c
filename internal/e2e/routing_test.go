package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/pkg/task"
)

// TestAWSRouting is the second acceptance on the emulator: with
// declared queues default and gpu, each its own SQS queue with its own
// DLQ, read by every part from DROVER_QUEUE_URLS, tasks that require a
// gpu go through the gpu queue to the gpu runner and the others through
// default; none fails, each ran on a runner whose traits satisfy it, and
// both DLQs stay empty. A task for an undeclared queue is a 422.
func TestAWSRouting(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{})
	ctx := context.Background()
	gpuURL, gpuDLQ, err := e.stack.AddQueue(ctx, "gpu", 30)
	if err != nil {
		t.Fatal(err)
	}
	js := func(m map[string]string) string { b, _ := json.Marshal(m); return string(b) }
	topics := js(map[string]string{"default": awstest.TopicURL(e.stack.TasksQueueURL), "gpu": awstest.TopicURL(gpuURL)})
	subs := js(map[string]string{"default": awstest.SubscriptionURL(e.stack.TasksQueueURL), "gpu": awstest.SubscriptionURL(gpuURL)})
	e.vars = append(e.vars, "DROVER_QUEUE_URLS="+topics, "DROVER_DLQ_URLS="+js(map[string]string{"gpu": awstest.SubscriptionURL(gpuDLQ)}))
	c := e.dispatch()
	e.start("gpu-box", "runner", "DROVER_QUEUE_URLS="+subs, "DROVER_QUEUES=gpu:3,default:1", "DROVER_TRAITS=gpu")
	e.start("plain", "runner", "DROVER_QUEUE_URLS="+subs, "DROVER_QUEUES=default")
	e.start("collect", "collect")

	if _, err := c.Submit(ctx, task.Spec{Function: "echo", Queue: "grid"}); err == nil || !contains(err.Error(), `queue "grid" is not declared`) {
		t.Errorf("submit to an undeclared queue: %v, want a 422 naming it", err)
	}
	var specs []task.Spec
	for i := range 200 {
		sp := task.Spec{Function: "echo", Args: json.RawMessage(fmt.Sprint(i))}
		if i%2 == 0 {
			sp.Queue, sp.Requires = "gpu", task.Requires{"gpu": ""}
		}
		specs = append(specs, sp)
	}
	sts, err := c.SubmitBatch(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(sts))
	for i, st := range sts {
		ids[i] = st.ID
	}
	got := waitAll(t, c, ids, 4*time.Minute)
	ranOn := map[string]int{}
	for i, id := range ids {
		st := got[id]
		if st == nil || st.State != task.Succeeded {
			t.Errorf("task %d: %+v, want succeeded", i, st)
			continue
		}
		ranOn[st.Runner]++
		if i%2 == 0 && (st.Runner != "gpu-box" || st.Matched["gpu"] != "" || len(st.Matched) != 1) {
			t.Errorf("gpu task %d ran on %q matching %v, want gpu-box matching gpu", i, st.Runner, st.Matched)
		}
	}
	t.Logf("tasks per runner: %v", ranOn)
	for _, u := range []string{e.stack.TasksDLQURL, gpuDLQ} {
		if n := queueCount(t, sqsClient(t), u); n != 0 {
			t.Errorf("dead-letter queue %s holds %d messages, want 0", u, n)
		}
	}
}
