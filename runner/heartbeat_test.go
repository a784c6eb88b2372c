package runner

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/driver"

	"github.com/droverhq/drover/pkg/task"
)

// hungTopic is an events topic whose sends wait until release is closed,
// as a call the network or the queue stalls.
type hungTopic struct{ release chan struct{} }

func (h hungTopic) SendBatch(ctx context.Context, _ []*driver.Message) error {
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (hungTopic) IsRetryable(error) bool             { return false }
func (hungTopic) As(any) bool                        { return false }
func (hungTopic) ErrorAs(error, any) bool            { return false }
func (hungTopic) ErrorCode(error) gcerrors.ErrorCode { return gcerrors.Unknown }
func (hungTopic) Close() error                       { return nil }

// hungRunner is a runner beating every 20 ms whose events topic hangs
// (hungTopic) until the test ends.
func hungRunner(t *testing.T, name string) *Runner {
	hung := hungTopic{release: make(chan struct{})}
	events := task.NewTopic(pubsub.NewTopic(hung, nil), "hung://events")
	t.Cleanup(func() {
		close(hung.release)
		_ = events.Shutdown(context.Background())
	})
	return New(NewMux(), events, nil, nil, nil, Config{Name: name, Heartbeat: 20 * time.Millisecond})
}

// countingLease counts the extensions of a delivery's lease.
type countingLease struct{ n atomic.Int64 }

func (l *countingLease) ReceiveCount() int { return 1 }
func (l *countingLease) SetVisibility(context.Context, time.Duration) error {
	l.n.Add(1)
	return nil
}

// TestLeasesExtendWhileAnnounceHangs: a runner's heartbeat extends the
// leases it holds on every beat, the first included, whatever its
// announcement (an events send) waits on. The first beat used to run the
// announcement in line, so a fresh runner whose first send stalled held
// the message it had just taken unextended, and the queue delivered it
// again to another runner while it ran (TestSoakThrottled on moto: a
// duplicate execution on two runners neither killed nor stalled).
func TestLeasesExtendWhileAnnounceHangs(t *testing.T) {
	r := hungRunner(t, "hb-test")
	lease := &countingLease{}
	r.hold(&job{id: "t1", lease: lease, log: taskLog{base: r.log, m: &task.Message{ID: "t1"}}})

	stop := r.heartbeats(context.Background(), true)
	// Wide: ten beats are due in 200 ms; three in 10 s on any machine.
	deadline := time.Now().Add(10 * time.Second)
	for lease.n.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := lease.n.Load()
	stop()
	if got < 3 {
		t.Fatalf("lease extended %d times in 10 s of 20 ms beats while the announcement hung, want at least 3", got)
	}
}

// blockingAck is a delivery whose Ack waits until release is closed, as
// an SQS Ack waits for its DeleteMessageBatch.
func blockingAck(lease task.LeaseControl, release chan struct{}) *task.Delivery {
	return &task.Delivery{ID: "m1", Lease: lease, Ack: func() { <-release }, Nack: func() {}}
}

// TestLeaseExtendedUntilAckReturns: the heartbeat goes on extending a
// delivery's lease while its Ack waits for the delete, and stops once the
// Ack returns. It used to stop before the Ack, so a delete answered after
// the lease's end (a saturated moto) could let the message come back and
// run again.
func TestLeaseExtendedUntilAckReturns(t *testing.T) {
	r := hungRunner(t, "ack-test")
	lease := &countingLease{}
	j := &job{id: "t1", lease: lease, log: taskLog{base: r.log, m: &task.Message{ID: "t1"}}}
	r.hold(j)
	release := make(chan struct{})
	w := r.settling(j, blockingAck(lease, release))
	stop := r.heartbeats(context.Background(), false)
	defer stop()

	acked := make(chan struct{})
	before := lease.n.Load()
	go func() { w.Ack(); close(acked) }()
	// Wide: ten beats are due in 200 ms; three in 10 s on any machine.
	deadline := time.Now().Add(10 * time.Second)
	for lease.n.Load() < before+3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := lease.n.Load() - before; got < 3 {
		t.Fatalf("lease extended %d times in 10 s of 20 ms beats while the ack waited for its delete, want at least 3", got)
	}
	close(release)
	<-acked
	r.mu.Lock()
	_, held := r.held[j]
	r.mu.Unlock()
	if held {
		t.Fatal("the job is still held after its Ack returned: its lease would be extended for ever")
	}
}
