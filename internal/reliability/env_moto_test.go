package reliability

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/internal/proctest"
	"github.com/droverhq/drover/pkg/task"
)

// The moto backend runs `drover dispatch`, `drover collect` and relrunner
// (drover runner plus the rel- functions) as separate processes against
// moto_server, as internal/e2e does; Kill is a real SIGKILL.
type motoBackend struct{}

func (motoBackend) name() string { return "moto" }

var stackSeq atomic.Int64

type motoEnv struct {
	t       *testing.T
	stack   *awstest.Stack
	vars    []string
	vis     time.Duration
	store   *task.Store
	archive *task.Archive
	tasks   *task.Topic
	sqs     *sqs.Client
	url     string
	cl      *client.Client
	mu      sync.Mutex
	procs   []*osProc
	// throttle, if not nil, is the proxy the parts reach moto through.
	throttle *awstest.Throttle
}

func (motoBackend) newEnv(t *testing.T, o envOpts) env {
	t.Helper()
	if o.Faults != nil {
		t.Fatal("blob faults are injected in the embedded backend only")
	}
	if o.Visibility == 0 {
		o.Visibility = 2 * time.Second
	}
	ctx := context.Background()
	prefix := fmt.Sprintf("rel%d", stackSeq.Add(1))
	st, err := awstest.CreateStack(ctx, prefix, awstest.StackOptions{VisibilityTimeout: o.Visibility, MaxReceiveCount: 100})
	if err != nil {
		t.Fatalf("create stack: %v", err)
	}
	e := &motoEnv{t: t, stack: st, vis: o.Visibility}
	hb := 500 * time.Millisecond
	e.vars = append(append(append([]string{}, moto.Env()...), st.Env()...),
		"DROVER_LOG_LEVEL=warn", "DROVER_GRACE=1s", "DROVER_HEARTBEAT="+hb.String(),
		"DROVER_LEASE="+max(o.Visibility, 2*hb).String())
	if lvl := os.Getenv("REL_LOG_LEVEL"); lvl != "" {
		// For a failure that warnings do not explain (with PROCTEST_LOG_DIR).
		e.vars = append(e.vars, "DROVER_LOG_LEVEL="+lvl)
	}
	if o.Throttle != nil {
		if e.throttle, err = awstest.StartThrottle(moto.Endpoint, *o.Throttle); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.throttle.Close) // after the processes' cleanup below
		e.vars = append(e.vars, "AWS_ENDPOINT_URL="+e.throttle.Endpoint)
	}
	if e.store, err = task.OpenStore(ctx, st.Lookup("DROVER_STATUS")); err != nil {
		t.Fatal(err)
	}
	if e.archive, err = task.OpenArchive(ctx, st.Lookup("DROVER_BUCKET")); err != nil {
		t.Fatal(err)
	}
	if e.tasks, err = task.OpenTopic(ctx, st.Lookup("DROVER_TASKS_TOPIC")); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.sqs = sqs.NewFromConfig(cfg)
	t.Cleanup(func() {
		e.mu.Lock()
		procs := e.procs
		e.mu.Unlock()
		for _, p := range procs {
			p.Stop()
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("---- %s log (last 2000 bytes) ----\n%s", p.Name, p.Tail(2000))
			}
		}
		_ = e.tasks.Shutdown(ctx)
		_ = e.store.Close()
		_ = e.archive.Close()
		if err := st.Delete(ctx); err != nil {
			t.Logf("delete stack: %v", err)
		}
	})
	if !o.NoDispatch {
		e.startDispatch()
	}
	return e
}

func (e *motoEnv) Client() *client.Client { return e.cl }
func (e *motoEnv) DispatchURL() string    { return e.url }
func (e *motoEnv) Store() *task.Store     { return e.store }
func (e *motoEnv) Archive() *task.Archive { return e.archive }

func (e *motoEnv) Executions(t *testing.T) map[string]int {
	n, err := CountBlobExecutions(context.Background(), e.archive.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *motoEnv) ExecutionRunners(t *testing.T) map[string][]string {
	n, err := ExecutionRunners(context.Background(), e.archive.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *motoEnv) SendRaw(t *testing.T, body []byte) {
	if err := e.tasks.Send(context.Background(), body, 0); err != nil {
		t.Fatal(err)
	}
}

func (e *motoEnv) Pending(t *testing.T) int {
	out, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(e.stack.TasksQueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed},
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

// osProc is a process the test started.
type osProc = proctest.Proc

func (e *motoEnv) start(name, bin string, args []string, extra ...string) *osProc {
	e.t.Helper()
	env := append(append(append([]string{}, e.vars...), "DROVER_RUNNER_NAME="+name), extra...)
	p := proctest.Start(e.t, name, bin, args, env)
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

func (e *motoEnv) startDispatch(extra ...string) *osProc {
	addr := proctest.FreeAddr(e.t)
	p := e.start("dispatch", droverBin, []string{"dispatch"}, append([]string{"DROVER_ADDR=" + addr}, extra...)...)
	e.url = "http://" + addr
	e.cl = client.New(e.url)
	p.WaitReady(e.t, e.url+"/readyz", 30*time.Second)
	return p
}

func (e *motoEnv) StartRunner(name string, o runnerOpts) proc {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	extra := []string{"DROVER_CONCURRENCY=" + strconv.Itoa(o.Concurrency)}
	if o.NoHeartbeat {
		// One beat at start, none while tasks run: leases are never
		// extended. (DROVER_VISIBILITY only has to pass validation.)
		extra = append(extra, "DROVER_HEARTBEAT=1h", "DROVER_LEASE=2h", "DROVER_VISIBILITY=3h")
	}
	if o.CrashAfterOutcome {
		extra = append(extra, "REL_CRASH_AFTER_OUTCOME=1")
	}
	return e.start(name, relrunBin, []string{"runner"}, extra...)
}

func (e *motoEnv) StartCollector(name string) proc {
	return e.start(name, droverBin, []string{"collect"})
}

// DumpStuck logs, for a run whose tasks did not all end, what the queues
// hold (visible, in flight, delayed) and up to 20 of the tasks that did
// not end as the store has them: where to start reading the parts' logs.
func (e *motoEnv) DumpStuck(t *testing.T, ids []string, docs map[string]*task.Status) {
	t.Helper()
	for _, q := range []struct{ name, url string }{
		{"tasks", e.stack.TasksQueueURL}, {"tasks-dlq", e.stack.TasksDLQURL},
		{"events", e.stack.EventsQueueURL}, {"events-dlq", e.stack.EventsDLQURL},
	} {
		out, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(q.url),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed},
		})
		if err != nil {
			t.Logf("queue %s: %v", q.name, err)
			continue
		}
		a := out.Attributes
		t.Logf("queue %s: %s visible, %s in flight, %s delayed", q.name,
			a[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)],
			a[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)],
			a[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed)])
	}
	shown := 0
	for _, id := range ids {
		d := docs[id]
		if d != nil && d.State.Terminal() {
			continue
		}
		if shown++; shown > 20 {
			break
		}
		if d == nil {
			t.Logf("not ended: %s: no status", id)
			continue
		}
		t.Logf("not ended: %s %s: %s attempt %d/%d on %q, started %s, next attempt %s, error %q",
			id, d.Function, d.State, d.Attempt, d.MaxAttempts, d.Runner,
			d.StartedAt.Format(time.RFC3339Nano), d.NextAttemptAt.Format(time.RFC3339Nano), d.Error)
	}
	if os.Getenv("REL_DUMP_STUCK") != "" {
		// Every live part's goroutines, into its log (PROCTEST_LOG_DIR).
		e.mu.Lock()
		procs := e.procs
		e.mu.Unlock()
		for _, p := range procs {
			p.Dump()
		}
	}
}
