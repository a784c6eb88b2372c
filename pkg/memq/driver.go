package memq

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/batcher"
	"gocloud.dev/pubsub/driver"

	"github.com/droverhq/drover/pkg/durable"
	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// Scheme is the URL scheme memq registers its URLOpener under on
// pubsub.DefaultURLMux, for topics and subscriptions.
const Scheme = "memq"

// Defaults for SubscriptionOptions.
const (
	DefaultVisibility = 30 * time.Second
	DefaultWait       = time.Second
)

func init() {
	o := new(URLOpener)
	pubsub.DefaultURLMux().RegisterTopic(Scheme, o)
	pubsub.DefaultURLMux().RegisterSubscription(Scheme, o)
}

// TopicOptions configures a topic.
type TopicOptions struct {
	// BatcherOptions adds constraints to the portable type's send batching.
	BatcherOptions batcher.Options
	// MaxBytes, if positive, caps the bytes of message bodies the queue
	// holds (sent and not yet acked) as far as this topic's sends are
	// concerned: a batch that would take the queue past it is refused
	// whole, with code ResourceExhausted, and nothing of it is queued.
	MaxBytes int64
}

// SubscriptionOptions configures a subscription.
type SubscriptionOptions struct {
	// Visibility is how long a received message stays hidden from every
	// receiver before it is delivered again unless acked. Zero means
	// DefaultVisibility.
	Visibility time.Duration
	// Wait is the longest a ReceiveBatch call blocks when no message is
	// ready before it returns an empty batch. Zero means DefaultWait.
	Wait time.Duration
	// ReceiveBatcherOptions adds constraints to the portable type's
	// receive batching.
	ReceiveBatcherOptions batcher.Options
	// AckBatcherOptions adds constraints to the portable type's ack
	// batching.
	AckBatcherOptions batcher.Options
}

// URLOpener opens memq URLs like "memq://tasks?visibility=5m&wait=1s".
//
// The URL's host and path name the queue. Query parameters:
//   - visibility: the subscription's visibility timeout, a Go duration
//     (default 30s, at most 12h).
//   - wait: the longest an empty receive blocks, a Go duration
//     (default 1s).
//   - maxbytes: the topic's TopicOptions.MaxBytes, in bytes.
//
// Topics accept (and ignore) visibility and wait, subscriptions maxbytes,
// so one URL can serve both ends; any other parameter is an error.
type URLOpener struct {
	// TopicOptions are the defaults for topics.
	TopicOptions TopicOptions
	// SubscriptionOptions are the defaults for subscriptions; the URL's
	// parameters override Visibility and Wait.
	SubscriptionOptions SubscriptionOptions
}

// parseURL returns the queue name in u and applies its parameters to opts.
// A dir parameter attaches the queue to the durable engine of that data
// directory.
func parseURL(u *url.URL, opts *SubscriptionOptions, topt *TopicOptions) (string, error) {
	var (
		dir     string
		drain   bool
		ordered bool
	)
	for param, vals := range u.Query() {
		var dst *time.Duration
		switch param {
		case "maxbytes":
			n, err := strconv.ParseInt(vals[len(vals)-1], 10, 64)
			if err != nil || n < 0 {
				return "", fmt.Errorf("memq: %v: invalid maxbytes %q: want a number of bytes, 0 for no cap", u, vals[len(vals)-1])
			}
			topt.MaxBytes = n
			continue
		case "lowspace":
			switch v := vals[len(vals)-1]; v {
			case "refuse":
			case "drain":
				drain = true
			default:
				return "", fmt.Errorf("memq: %v: invalid lowspace %q: want refuse or drain", u, v)
			}
			continue
		case "sendsync":
			switch v := vals[len(vals)-1]; v {
			case "wait":
			case "ordered":
				ordered = true
			default:
				return "", fmt.Errorf("memq: %v: invalid sendsync %q: want wait or ordered", u, v)
			}
			continue
		case "dir":
			dir = vals[len(vals)-1]
			if dir == "" {
				return "", fmt.Errorf("memq: %v: empty dir", u)
			}
			continue
		case "visibility":
			dst = &opts.Visibility
		case "wait":
			dst = &opts.Wait
		default:
			return "", fmt.Errorf("memq: %v: unknown query parameter %q", u, param)
		}
		d, err := time.ParseDuration(vals[len(vals)-1])
		if err != nil {
			return "", fmt.Errorf("memq: %v: invalid %s: %w", u, param, err)
		}
		*dst = d
	}
	name := path.Join(u.Host, u.Path)
	if name == "" || name == "." || name == "/" {
		return "", fmt.Errorf("memq: %v: missing queue name", u)
	}
	if err := checkOptions(opts); err != nil {
		return "", err
	}
	if dir != "" {
		eng, err := durable.Open(dir, nil)
		if err != nil {
			return "", fmt.Errorf("memq: %v: %w", u.Redacted(), err)
		}
		if err := Attach(name, eng); err != nil {
			return "", fmt.Errorf("memq: %v: %w", u.Redacted(), err)
		}
		if drain {
			getQueue(name).drain.Store(true)
		}
		if ordered {
			getQueue(name).ordered.Store(true)
		}
	}
	return name, nil
}

func checkOptions(opts *SubscriptionOptions) error {
	if v := opts.Visibility; v < 0 || v > MaxVisibility {
		return fmt.Errorf("memq: visibility %v out of range (0, %v]", v, MaxVisibility)
	}
	if opts.Wait < 0 {
		return fmt.Errorf("memq: negative wait %v", opts.Wait)
	}
	return nil
}

// OpenTopicURL implements pubsub.TopicURLOpener.
func (o *URLOpener) OpenTopicURL(_ context.Context, u *url.URL) (*pubsub.Topic, error) {
	var ignored SubscriptionOptions
	topt := o.TopicOptions
	name, err := parseURL(u, &ignored, &topt)
	if err != nil {
		return nil, err
	}
	return OpenTopic(name, &topt), nil
}

// OpenSubscriptionURL implements pubsub.SubscriptionURLOpener.
func (o *URLOpener) OpenSubscriptionURL(_ context.Context, u *url.URL) (*pubsub.Subscription, error) {
	opts := o.SubscriptionOptions
	var ignored TopicOptions
	name, err := parseURL(u, &opts, &ignored)
	if err != nil {
		return nil, err
	}
	return OpenSubscription(name, &opts)
}

// OpenTopic returns a topic that sends to the queue called name, creating
// the queue if needed. opts may be nil.
func OpenTopic(name string, opts *TopicOptions) *pubsub.Topic {
	if opts == nil {
		opts = &TopicOptions{}
	}
	return pubsub.NewTopic(&topic{q: getQueue(name), maxBytes: opts.MaxBytes}, &opts.BatcherOptions)
}

// OpenSubscription returns a subscription that receives from the queue
// called name, creating the queue if needed. opts may be nil. It fails only
// if the options are out of range.
func OpenSubscription(name string, opts *SubscriptionOptions) (*pubsub.Subscription, error) {
	if opts == nil {
		opts = &SubscriptionOptions{}
	}
	ds, err := newSubscription(getQueue(name), opts)
	if err != nil {
		return nil, err
	}
	return pubsub.NewSubscription(ds, &opts.ReceiveBatcherOptions, &opts.AckBatcherOptions), nil
}

// topic is the driver.Topic. A nil q is a topic that does not exist.
type topic struct {
	q        *queue
	maxBytes int64 // TopicOptions.MaxBytes
	closed   atomic.Bool
}

// features implements taskdriver.TopicFeatures.
type features struct{}

func (features) MaxDelay() time.Duration { return MaxDelay }

func noAs(any) bool { return false }

// SendBatch implements driver.Topic. Either every message is queued or none.
func (t *topic) SendBatch(ctx context.Context, ms []*driver.Message) error {
	if t.q == nil {
		return errNotFound
	}
	if t.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	batch := make([]*message, len(ms))
	delays := make([]time.Duration, len(ms))
	for i, dm := range ms {
		if dm.BeforeSend != nil {
			if err := dm.BeforeSend(noAs); err != nil {
				return err
			}
		}
		m := &message{}
		if len(dm.Body) > 0 {
			m.body = append([]byte(nil), dm.Body...) // the sender may reuse it
		}
		if s, ok := dm.Metadata[taskdriver.MetadataDelay]; ok {
			d, err := parseDelay(s)
			if err != nil {
				return err
			}
			delays[i] = d
			m.md = maps.Clone(dm.Metadata)
			delete(m.md, taskdriver.MetadataDelay)
		} else if len(dm.Metadata) > 0 {
			m.md = maps.Clone(dm.Metadata)
		}
		if len(m.md) == 0 {
			m.md = nil
		}
		batch[i] = m
	}

	if err := t.q.send(batch, delays, time.Now(), t.maxBytes); err != nil {
		return err
	}

	for _, dm := range ms {
		if dm.AfterSend != nil {
			if err := dm.AfterSend(noAs); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseDelay parses a taskdriver.MetadataDelay value.
func parseDelay(s string) (time.Duration, error) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 || ms > MaxDelay.Milliseconds() {
		return 0, taskdriver.Errorf(codeInvalid, "memq: metadata %s=%q: want milliseconds in [0, %d]", taskdriver.MetadataDelay, s, MaxDelay.Milliseconds())
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// IsRetryable implements driver.Topic.
func (*topic) IsRetryable(error) bool { return false }

// As implements driver.Topic. It supports *taskdriver.TopicFeatures,
// *taskdriver.DirectSender and *taskdriver.QueueDepth.
func (t *topic) As(i any) bool {
	switch p := i.(type) {
	case *taskdriver.TopicFeatures:
		*p = features{}
		return true
	case *taskdriver.DirectSender:
		*p = t
		return true
	case *taskdriver.QueueDepth:
		*p = t
		return true
	}
	return false
}

// Depth implements taskdriver.QueueDepth: the messages not yet acked.
func (t *topic) Depth(context.Context) (int, error) {
	if t.q == nil {
		return 0, taskdriver.Errorf(gcerrors.NotFound, "memq: topic does not exist")
	}
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	q.advance(time.Now())
	return q.nReady + q.nInFlight + q.nDelayed, nil
}

// SendDirect implements taskdriver.DirectSender: the bodies are queued as one
// batch, all or none, without copies (the caller hands them over).
func (t *topic) SendDirect(ctx context.Context, bodies [][]byte, delays []time.Duration) error {
	if t.q == nil {
		return errNotFound
	}
	if t.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, d := range delays {
		if d < 0 || d > MaxDelay {
			return taskdriver.Errorf(codeInvalid, "memq: delay %v out of range [0, %v]", d, MaxDelay)
		}
	}
	var now time.Time
	if delays != nil {
		now = time.Now()
	}
	// Allocated before the lock: an allocation may have to assist the
	// garbage collector, which under the lock stalls every sender and
	// receiver of the queue (the trace showed 5 ms waits in mark phases).
	ms := make([]*message, len(bodies))
	for i, b := range bodies {
		ms[i] = &message{body: b}
	}
	return t.q.send(ms, delays, now, t.maxBytes)
}

// send queues ms, message i held back for delays[i] (delays may be nil)
// from now. On a durable queue the messages are journaled and synced
// first, and become receivable only then.
//
// With maxBytes positive, a batch that would take the bodies the queue
// holds past maxBytes is refused whole (ResourceExhausted, and
// taskdriver.ErrNotSent: nothing of it was queued).
func (q *queue) send(ms []*message, delays []time.Duration, now time.Time, maxBytes int64) error {
	delayed := func(i int) bool { return delays != nil && delays[i] > 0 }
	var n int64
	for _, m := range ms {
		n += int64(len(m.body))
	}
	if q.eng == nil {
		q.mu.Lock()
		if err := q.reserve(n, maxBytes); err != nil {
			q.mu.Unlock()
			return err
		}
		for i, m := range ms {
			q.nextID++
			m.id = q.nextID
			if delayed(i) {
				q.toWaiting(m, now.Add(delays[i]))
			} else {
				q.toReady(m)
			}
		}
		q.sent += uint64(len(ms))
		q.mu.Unlock()
		return nil
	}
	if err := q.engineErr(); err != nil {
		return err
	}
	if err := q.room(); err != nil {
		return err
	}
	q.mu.Lock()
	if err := q.reserve(n, maxBytes); err != nil {
		q.mu.Unlock()
		return err
	}
	for i, m := range ms {
		q.nextID++
		m.id = q.nextID
		if delayed(i) {
			m.at = now.Add(delays[i])
		}
	}
	q.mu.Unlock()
	if err := q.persistSend(ms); err != nil {
		q.mu.Lock()
		q.bytes -= n
		q.mu.Unlock()
		return err
	}
	q.mu.Lock()
	for i, m := range ms {
		if delayed(i) {
			q.toWaiting(m, m.at)
		} else {
			q.toReady(m)
		}
	}
	q.sent += uint64(len(ms))
	q.mu.Unlock()
	return nil
}

// reserve counts n more bytes of bodies held, unless that would pass
// maxBytes (if positive). Call with the lock held.
func (q *queue) reserve(n, maxBytes int64) error {
	if maxBytes > 0 && q.bytes+n > maxBytes {
		return fmt.Errorf("%w: %w", taskdriver.ErrNotSent, taskdriver.Errorf(gcerrors.ResourceExhausted,
			"memq: queue %q is full: it holds %d bytes of messages, and %d more would pass its %d-byte cap", q.name, q.bytes, n, maxBytes))
	}
	q.bytes += n
	return nil
}

// ErrorAs implements driver.Topic.
func (*topic) ErrorAs(error, any) bool { return false }

// ErrorCode implements driver.Topic.
func (*topic) ErrorCode(err error) gcerrors.ErrorCode { return taskdriver.Code(err) }

// Close implements driver.Topic. The queue lives on; a durable one's
// journal is synced.
func (t *topic) Close() error {
	t.closed.Store(true)
	return t.q.sync()
}

// subscription is the driver.Subscription. A nil q is a subscription that
// does not exist.
type subscription struct {
	q          *queue
	visibility time.Duration
	wait       time.Duration
	closed     atomic.Bool
}

func newSubscription(q *queue, opts *SubscriptionOptions) (*subscription, error) {
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	s := &subscription{q: q, visibility: opts.Visibility, wait: opts.Wait}
	if s.visibility == 0 {
		s.visibility = DefaultVisibility
	}
	if s.wait == 0 {
		s.wait = DefaultWait
	}
	return s, nil
}

// ReceiveBatch implements driver.Subscription. It returns as soon as at
// least one message is ready, blocking until then (woken by a send, a nack
// or the next visibility/delay deadline, never by polling) for at most the
// subscription's wait, after which it returns an empty batch.
func (s *subscription) ReceiveBatch(ctx context.Context, maxMessages int) ([]*driver.Message, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	if s.lowSpace(ctx) {
		return nil, nil
	}
	var out []*driver.Message
	err := s.await(ctx, s.wait, func(q *queue, now time.Time) { out = take(q, now, maxMessages, s.visibility, (*delivery).message) })
	return out, err
}

// ReceiveDirect implements taskdriver.DirectReceiver: ReceiveBatch's
// path, presenting the deliveries as task deliveries that settle at once
// when acked or nacked.
func (s *subscription) ReceiveDirect(ctx context.Context, max int) ([]*taskdriver.Delivery, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	if s.lowSpace(ctx) {
		return nil, nil
	}
	var out []*taskdriver.Delivery
	err := s.await(ctx, s.wait, func(q *queue, now time.Time) { out = take(q, now, max, s.visibility, (*delivery).direct) })
	return out, err
}

// ReceiveWithin implements taskdriver.WaitReceiver: ReceiveDirect, waiting
// at most wait (0: only what is ready now).
func (s *subscription) ReceiveWithin(ctx context.Context, max int, wait time.Duration) ([]*taskdriver.Delivery, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	var out []*taskdriver.Delivery
	err := s.await(ctx, wait, func(q *queue, now time.Time) { out = take(q, now, max, s.visibility, (*delivery).direct) })
	return out, err
}

// usable reports why the subscription cannot receive now, if it cannot.
func (s *subscription) usable(ctx context.Context) error {
	switch {
	case s.q == nil:
		return errNotFound
	case s.closed.Load():
		return errClosed
	}
	if err := s.q.engineErr(); err != nil {
		return err // a failed disk: take no work that could not be settled
	}
	return ctx.Err()
}

// await waits until a message is ready and calls take with the queue
// locked, or returns after wait without calling it.
func (s *subscription) await(ctx context.Context, wait time.Duration, take func(q *queue, now time.Time)) error {
	q := s.q
	var deadline time.Time
	st := awaitPool.Get().(*awaitState)
	w := &st.w
	defer func() {
		if st.timer != nil {
			st.timer.Stop()
		}
		// w is registered with the queue only while parked below, never
		// on return; a stale token left in w.ch is drained before the
		// next park.
		awaitPool.Put(st)
	}()
	for {
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(wait)
		}
		q.mu.Lock()
		q.advance(now)
		if q.nReady > 0 {
			take(q, now)
			if q.nReady > 0 {
				q.wakeOne() // more than this receiver took: pass it on
			}
			q.mu.Unlock()
			return nil
		}
		if !now.Before(deadline) {
			q.mu.Unlock()
			return nil
		}
		until := deadline
		if len(q.waiting) > 0 && q.waiting[0].at.Before(until) {
			until = q.waiting[0].at
		}
		select {
		case <-w.ch: // a stale token from an earlier round
		default:
		}
		q.park(w, until)
		q.mu.Unlock()

		if st.timer == nil {
			st.timer = time.NewTimer(until.Sub(now))
		} else {
			st.timer.Reset(until.Sub(now))
		}
		timer := st.timer
		select {
		case <-ctx.Done():
			q.mu.Lock()
			if !q.unpark(w) && q.nReady > 0 {
				q.wakeOne() // this receiver was woken for a message it will not take
			}
			q.mu.Unlock()
			return ctx.Err()
		case <-w.ch:
		case <-timer.C:
			q.mu.Lock()
			q.unpark(w)
			q.mu.Unlock()
		}
	}
}

// awaitState is what a receive that waits needs: a waiter and its timer,
// kept in a pool instead of allocated on every receive.
type awaitState struct {
	w     waiter
	timer *time.Timer // stopped whenever the state is in the pool
}

var awaitPool = sync.Pool{New: func() any {
	return &awaitState{w: waiter{ch: make(chan struct{}, 1)}}
}}

// deliveries converts ack IDs to deliveries, ignoring foreign ones.
func deliveries(ids []driver.AckID) []*delivery {
	ds := make([]*delivery, 0, len(ids))
	for _, id := range ids {
		if d, ok := id.(*delivery); ok {
			ds = append(ds, d)
		}
	}
	return ds
}

// SendAcks implements driver.Subscription: acked messages are deleted.
// Acks of stale deliveries are ignored.
func (s *subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	return s.settle(ctx, ids, (*queue).ack)
}

// CanNack implements driver.Subscription.
func (*subscription) CanNack() bool { return true }

// SendNacks implements driver.Subscription: a nacked message is visible
// again at once, unless SetVisibility was called on that delivery, whose
// deadline then stands. Nacks of stale deliveries are ignored.
func (s *subscription) SendNacks(ctx context.Context, ids []driver.AckID) error {
	return s.settle(ctx, ids, (*queue).nack)
}

func (s *subscription) settle(ctx context.Context, ids []driver.AckID, op func(*queue, *delivery) *message) error {
	if s.q == nil {
		return errNotFound
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ds := deliveries(ids)
	// All deliveries normally share one queue; lock once per run of them.
	for len(ds) > 0 {
		q := ds[0].q
		q.mu.Lock()
		i := 0
		var changed []*message
		for ; i < len(ds) && ds[i].q == q; i++ {
			if m := op(q, ds[i]); m != nil && q.eng != nil {
				changed = append(changed, m)
			}
		}
		q.journal(changed...)
		q.waiting.shrink()
		q.mu.Unlock()
		ds = ds[i:]
	}
	return nil
}

// IsRetryable implements driver.Subscription.
func (*subscription) IsRetryable(error) bool { return false }

// As implements driver.Subscription. It supports
// *taskdriver.DirectReceiver and *taskdriver.WaitReceiver.
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

// ErrorAs implements driver.Subscription.
func (*subscription) ErrorAs(error, any) bool { return false }

// ErrorCode implements driver.Subscription.
func (*subscription) ErrorCode(err error) gcerrors.ErrorCode { return taskdriver.Code(err) }

// Close implements driver.Subscription. The queue lives on; messages this
// subscription received and did not ack come back when their visibility
// expires.
func (s *subscription) Close() error {
	s.closed.Store(true)
	return s.q.sync()
}
