package httpq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub/driver"

	"github.com/droverhq/drover/pkg/task"
	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// leaseAnswer is the answer of POST /v1/leases.
type leaseAnswer struct {
	Leases []struct {
		ID           string    `json:"id"`
		MessageID    string    `json:"message_id"`
		TaskID       string    `json:"task_id"`
		ReceiveCount int       `json:"receive_count"`
		ExpiresAt    time.Time `json:"expires_at"`
		Body         []byte    `json:"body"`
	} `json:"leases"`
}

// take leases up to max messages of queue ("": default), waiting up to
// wait for the first.
func (r *Remote) take(ctx context.Context, queue string, max int, wait time.Duration) ([]*leaseControl, error) {
	var out leaseAnswer
	in := map[string]any{"max": max, "lease": r.lease.String(), "wait": wait.String()}
	if queue != "" {
		in["queue"] = queue
	}
	if err := r.call(ctx, http.MethodPost, "/v1/leases", in, &out); err != nil {
		return nil, err
	}
	ls := make([]*leaseControl, len(out.Leases))
	for i, l := range out.Leases {
		ls[i] = &leaseControl{r: r, id: l.ID, messageID: l.MessageID, taskID: l.TaskID, count: l.ReceiveCount, body: l.Body}
	}
	return ls, nil
}

// leaseControl is one lease: the delivery's LeaseControl, ack and nack.
type leaseControl struct {
	r                        *Remote
	id, messageID, taskID    string
	count                    int
	body                     []byte
	mu                       sync.Mutex
	lost, settled, zeroDelay bool
}

func (l *leaseControl) delivery() *task.Delivery {
	return &task.Delivery{ID: l.messageID, Body: l.body, Lease: l, Ack: l.ack, Nack: l.nack}
}

func (l *leaseControl) ReceiveCount() int { return l.count }

// SetVisibility extends the lease by d from now (POST .../extend). A zero
// d, which the runner sets just before a Nack to hand a message back at
// once, is sent with the Nack: an extension by nothing would end the
// lease before the Nack could name it.
func (l *leaseControl) SetVisibility(ctx context.Context, d time.Duration) error {
	l.mu.Lock()
	lost := l.lost
	if d == 0 {
		l.zeroDelay = true
	}
	l.mu.Unlock()
	if lost {
		return fmt.Errorf("lease %s of task %s: %w", l.id, l.taskID, taskdriver.ErrLeaseLost)
	}
	if d == 0 {
		return nil
	}
	err := l.r.call(ctx, http.MethodPost, "/v1/leases/"+l.id+"/extend", map[string]string{"lease": d.String()}, nil)
	if status(err) == http.StatusGone {
		l.mu.Lock()
		l.lost = true
		l.mu.Unlock()
		return fmt.Errorf("lease %s of task %s: %w: %v", l.id, l.taskID, taskdriver.ErrLeaseLost, err)
	}
	if err != nil {
		return fmt.Errorf("extend lease %s of task %s: %w", l.id, l.taskID, err)
	}
	return nil
}

// settle acks or nacks once, retrying transient failures within 30s. A
// lease that has ended (410) is logged, not an error of the task: its
// outcome, if it had one, is recorded, and the message comes back.
func (l *leaseControl) settle(verb string, body any) {
	l.mu.Lock()
	if l.settled {
		l.mu.Unlock()
		return
	}
	l.settled = true
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := retrying(ctx, func() error {
		return l.r.call(ctx, http.MethodPost, "/v1/leases/"+l.id+"/"+verb, body, nil)
	})
	switch {
	case err == nil:
	case status(err) == http.StatusGone:
		l.r.log.Warn("lease ended before its "+verb+"; the message comes back to the queue (a finished task's duplicate is dropped)",
			"task_id", l.taskID, "delivery", l.count, "lease", l.id, "err", err)
	default:
		l.r.log.Error("could not "+verb+" a lease; the message comes back when the lease ends",
			"task_id", l.taskID, "delivery", l.count, "lease", l.id, "err", err)
	}
}

func (l *leaseControl) ack() { l.settle("ack", struct{}{}) }

func (l *leaseControl) nack() {
	l.mu.Lock()
	zero := l.zeroDelay
	l.mu.Unlock()
	body := map[string]string{}
	if zero {
		body["delay"] = "0s"
	}
	l.settle("nack", body)
}

// subscription is the gocloud driver of one queue's subscription over
// the leases. Package task receives through ReceiveDirect (one take per
// free worker, nothing prefetched), or ReceiveWithin for a runner serving
// several queues; the portable path works too.
type subscription struct {
	r     *Remote
	queue string // "": default
}

// ReceiveDirect implements taskdriver.DirectReceiver.
func (s *subscription) ReceiveDirect(ctx context.Context, max int) ([]*task.Delivery, error) {
	return s.ReceiveWithin(ctx, max, s.r.wait)
}

// ReceiveWithin implements taskdriver.WaitReceiver: one take that waits
// at most wait on the dispatcher (0: only what is ready now).
func (s *subscription) ReceiveWithin(ctx context.Context, max int, wait time.Duration) ([]*task.Delivery, error) {
	ls, err := s.r.take(ctx, s.queue, max, wait)
	if err != nil {
		return nil, err
	}
	ds := make([]*task.Delivery, len(ls))
	for i, l := range ls {
		ds[i] = l.delivery()
	}
	return ds, nil
}

func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	ls, err := s.r.take(ctx, s.queue, max, time.Second)
	if err != nil {
		return nil, err
	}
	ms := make([]*driver.Message, len(ls))
	for i, l := range ls {
		ms[i] = &driver.Message{
			LoggableID: l.messageID, Body: l.body, AckID: l,
			AsFunc: func(v any) bool {
				p, ok := v.(*taskdriver.LeaseControl)
				if ok {
					*p = l
				}
				return ok
			},
		}
	}
	return ms, nil
}

func (s *subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	for _, id := range ids {
		id.(*leaseControl).ack()
	}
	return nil
}

func (s *subscription) CanNack() bool { return true }

func (s *subscription) SendNacks(ctx context.Context, ids []driver.AckID) error {
	for _, id := range ids {
		id.(*leaseControl).nack()
	}
	return nil
}

func (s *subscription) IsRetryable(error) bool { return false }

func (s *subscription) As(i any) bool {
	switch p := i.(type) {
	case *taskdriver.DirectReceiver:
		*p = s
		return true
	case *taskdriver.WaitReceiver:
		*p = s
		return true
	}
	return false
}

func (s *subscription) ErrorAs(error, any) bool                { return false }
func (s *subscription) ErrorCode(err error) gcerrors.ErrorCode { return errorCode(err) }
func (s *subscription) Close() error                           { return nil }

// topic is the gocloud driver of the events topic: POST /v1/events.
type topic struct{ r *Remote }

// SendDirect implements taskdriver.DirectSender; events have no delays.
func (t *topic) SendDirect(ctx context.Context, bodies [][]byte, delays []time.Duration) error {
	for _, d := range delays {
		if d > 0 {
			return errors.New("the events topic of a remote runner cannot delay messages")
		}
	}
	evs := make([]json.RawMessage, len(bodies))
	for i, b := range bodies {
		evs[i] = b
	}
	err := retrying(ctx, func() error {
		return t.r.call(ctx, http.MethodPost, "/v1/events", map[string]any{"events": evs}, nil)
	})
	if err != nil {
		return fmt.Errorf("publish %d events: %w", len(bodies), err)
	}
	return nil
}

func (t *topic) SendBatch(ctx context.Context, ms []*driver.Message) error {
	bodies := make([][]byte, len(ms))
	for i, m := range ms {
		bodies[i] = m.Body
	}
	return t.SendDirect(ctx, bodies, nil)
}

func (t *topic) IsRetryable(error) bool { return false }

func (t *topic) As(i any) bool {
	p, ok := i.(*taskdriver.DirectSender)
	if ok {
		*p = t
	}
	return ok
}

func (t *topic) ErrorAs(error, any) bool                { return false }
func (t *topic) ErrorCode(err error) gcerrors.ErrorCode { return errorCode(err) }
func (t *topic) Close() error                           { return nil }
