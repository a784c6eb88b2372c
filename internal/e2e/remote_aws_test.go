package e2e

import (
	"testing"
	"time"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/internal/proctest"
)

// TestRemoteRunnersAWS: the same against drover dispatch on the emulator
// (SQS, S3, DynamoDB), the remote runners reaching only its HTTP API.
func TestRemoteRunnersAWS(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{VisibilityTimeout: 10 * time.Second})
	addr := proctest.FreeAddr(t)
	p := e.start("dispatch", "dispatch", "DROVER_ADDR="+addr, "DROVER_API_KEYS="+remoteKey)
	p.WaitReady(t, "http://"+addr+"/healthz", 30*time.Second)
	e.start("collect", "collect")
	url := "http://" + addr
	c := client.New(url, client.WithAPIKey(remoteKey))
	procs := stopWithTest(t)
	// A saturated emulator can answer a call more than 5 s late
	// (docs/reliability.md): leases of 10 s, as the moto soak's
	// visibility.
	killRemote(t, c, url, 10*time.Second, procs)
	q := sqsClient(t)
	if n := queueCount(t, q, e.stack.TasksDLQURL); n != 0 {
		t.Errorf("%d messages in the tasks DLQ; want 0", n)
	}
	if n := queueCount(t, q, e.stack.TasksQueueURL); n != 0 {
		t.Errorf("%d messages left in the tasks queue; want 0", n)
	}
}
