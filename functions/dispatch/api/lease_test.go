package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	pubsubdriver "gocloud.dev/pubsub/driver"

	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/pkg/task/driver"
)

// stallingSub is a subscription of one message whose lease control
// stalls the first time a take sets its visibility, until the test lets
// it go, and records what is done with it afterwards.
type stallingSub struct {
	setting chan struct{} // closed when the take is setting the lease
	proceed chan struct{} // closed by the test to let it finish

	mu       sync.Mutex
	recvCtx  context.Context // the take's request context
	sent     bool
	released bool // visibility set to 0, then nacked
	zeroed   bool
}

func (s *stallingSub) ReceiveWithin(ctx context.Context, max int, wait time.Duration) ([]*driver.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return nil, nil
	}
	s.sent, s.recvCtx = true, ctx
	return []*driver.Delivery{{
		ID:    "m-1",
		Body:  []byte(`not a task message; the take does not care`),
		Lease: (*stallingLease)(s),
		Ack:   func() {},
		Nack: func() {
			s.mu.Lock()
			s.released = s.zeroed
			s.mu.Unlock()
		},
	}}, nil
}

type stallingLease stallingSub

func (l *stallingLease) ReceiveCount() int { return 1 }

func (l *stallingLease) SetVisibility(ctx context.Context, d time.Duration) error {
	if d == 0 {
		l.mu.Lock()
		l.zeroed = true
		l.mu.Unlock()
		return nil
	}
	select {
	case <-l.setting:
	default:
		close(l.setting)
		<-l.proceed
	}
	return nil
}

func (s *stallingSub) ReceiveBatch(context.Context, int) ([]*pubsubdriver.Message, error) {
	return nil, errors.New("stallingSub: ReceiveWithin only")
}
func (s *stallingSub) SendAcks(context.Context, []pubsubdriver.AckID) error  { return nil }
func (s *stallingSub) CanNack() bool                                         { return true }
func (s *stallingSub) SendNacks(context.Context, []pubsubdriver.AckID) error { return nil }
func (s *stallingSub) IsRetryable(error) bool                                { return false }
func (s *stallingSub) ErrorAs(error, any) bool                               { return false }
func (s *stallingSub) ErrorCode(error) gcerrors.ErrorCode                    { return gcerrors.Unknown }
func (s *stallingSub) Close() error                                          { return nil }
func (s *stallingSub) As(i any) bool {
	p, ok := i.(*driver.WaitReceiver)
	if ok {
		*p = s
	}
	return ok
}

// TestTakeRunnerGone: a take whose runner goes away after the message
// was received, while the dispatcher sets its lease, gives the message
// back at once (visibility 0, then a nack) and holds no lease for it,
// rather than leaving it hidden for a lease nobody knows of.
func TestTakeRunnerGone(t *testing.T) {
	sub := &stallingSub{setting: make(chan struct{}), proceed: make(chan struct{})}
	b := setupHTTP(t, Config{})
	srv := New(b.topic, task.NewArchive(b.bucket), b.store, nil, Config{})
	srv.ServeLeases(map[string]task.Opener{task.DefaultQueue: func(context.Context) (*task.Subscription, error) {
		return task.NewSubscription(pubsub.NewSubscription(sub, nil, nil), "stalling://"), nil
	}}, b.topic, LeaseConfig{})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/v1/leases", strings.NewReader(`{"lease":"1h","wait":"0s"}`))
	req.Header.Set("Content-Type", "application/json")
	took := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		took <- err
	}()
	select {
	case <-sub.setting:
	case <-time.After(30 * time.Second):
		t.Fatal("the take never set the lease")
	}
	cancel() // the runner goes away
	if err := <-took; !errors.Is(err, context.Canceled) {
		t.Fatalf("take = %v; want it cancelled", err)
	}
	sub.mu.Lock()
	recvCtx := sub.recvCtx
	sub.mu.Unlock()
	select {
	case <-recvCtx.Done(): // the dispatcher has seen it go
	case <-time.After(30 * time.Second):
		t.Fatal("the take's request context never ended after its client went away")
	}
	close(sub.proceed)

	deadline := time.Now().Add(30 * time.Second)
	for {
		sub.mu.Lock()
		released := sub.released
		sub.mu.Unlock()
		if released {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message of a take whose runner went away was not given back (visibility 0, nack)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.leases.mu.Lock()
	n := len(srv.leases.held)
	srv.leases.mu.Unlock()
	if n != 0 {
		t.Errorf("%d leases held for a take nobody heard the answer of; want 0", n)
	}
}
