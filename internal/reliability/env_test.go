package reliability

import (
	"context"
	"testing"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/pkg/task"
)

// backend makes fresh environments: the embedded default (everything in
// this test process, on memq) or moto_server (separate processes).
type backend interface {
	name() string
	newEnv(t *testing.T, o envOpts) env
}

type envOpts struct {
	// Visibility is the tasks and events queues' visibility timeout
	// (whole seconds on moto).
	Visibility time.Duration
	// Faults, if not nil, wraps the archive bucket (embedded only).
	Faults *faultConfig
	// NoDispatch leaves out the dispatch API.
	NoDispatch bool
	// Throttle, if not nil, puts every AWS call of the parts (dispatch,
	// runners, collector) through an awstest.Throttle (moto only).
	Throttle *awstest.ThrottleConfig
}

type runnerOpts struct {
	Concurrency int
	// NoHeartbeat turns lease extension off.
	NoHeartbeat bool
	// CrashAfterOutcome kills the runner right after it has published the
	// outcome of attempt 1 of a rel-crashonce task, before its ack.
	CrashAfterOutcome bool
}

// proc is a runner or collector that can be killed as by kill -9.
type proc interface {
	// Kill ends it at once: it acks, nacks and extends nothing more.
	Kill()
	// Done is closed once it has ended (killed, or crashed by itself).
	Done() <-chan struct{}
}

type env interface {
	Client() *client.Client
	DispatchURL() string
	StartRunner(name string, o runnerOpts) proc
	StartCollector(name string) proc
	// Executions returns executions per task, as the rel- functions
	// recorded them.
	Executions(t *testing.T) map[string]int
	// ExecutionRunners returns, per task, the runner of each execution.
	ExecutionRunners(t *testing.T) map[string][]string
	Store() *task.Store
	Archive() *task.Archive
	// SendRaw puts body on the tasks queue as it is.
	SendRaw(t *testing.T, body []byte)
	// Pending is how many messages the tasks queue still holds.
	Pending(t *testing.T) int
}

// submitAll submits specs in batches of 100. A batch whose specs all
// carry idempotency keys is resubmitted after a failure (a 503 when the
// queue is slow): the keys make that safe, returning the tasks already
// enqueued instead of making new ones.
func submitAll(t *testing.T, c *client.Client, specs []task.Spec) []string {
	t.Helper()
	ids := make([]string, 0, len(specs))
	for i := 0; i < len(specs); i += 100 {
		batch := specs[i:min(i+100, len(specs))]
		keyed := true
		for _, s := range batch {
			keyed = keyed && s.IdempotencyKey != ""
		}
		var sts []*task.Status
		var err error
		for try := 1; ; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			sts, err = c.SubmitBatch(ctx, batch)
			cancel()
			if err == nil || !keyed || try == 10 {
				break
			}
			t.Logf("submit batch %d (try %d): %v; resubmitting with the same keys", i/100, try, err)
			time.Sleep(2 * time.Second)
		}
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		for _, st := range sts {
			ids = append(ids, st.ID)
		}
	}
	return ids
}
