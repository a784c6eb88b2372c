package task

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/pubsub"
	"golang.org/x/sync/errgroup"

	"github.com/droverhq/drover/pkg/task/driver"
)

// Claim-check thresholds: arguments and results larger than these travel
// as blob references instead of inline.
const (
	DefaultPayloadLimit = 192 << 10
	DefaultResultLimit  = 4 << 10
)

// Delivery is one received message with what it takes to settle it: the
// body, the driver's lease control (nil where the driver has none), and
// ack/nack. Long-lived runners get deliveries from a Subscription; the
// Lambda entry points build them from SQS events.
type Delivery = driver.Delivery

// LeaseControl controls one delivery of a message: its delivery count and
// its visibility (see driver.LeaseControl).
type LeaseControl = driver.LeaseControl

// ErrLeaseLost is driver.ErrLeaseLost: the delivery is no longer current.
var ErrLeaseLost = driver.ErrLeaseLost

// Topic publishes task messages or events on a gocloud topic.
type Topic struct {
	topic    *pubsub.Topic
	url      string // redacted, for messages
	maxDelay time.Duration
	direct   driver.DirectSender   // nil unless the driver has it
	ext      driver.TopicExtension // nil unless an extension has one for it
}

// OpenTopic opens a topic at a gocloud pubsub URL.
func OpenTopic(ctx context.Context, rawURL string) (*Topic, error) {
	t, err := pubsub.OpenTopic(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("open topic %s: %w", redactURL(rawURL), err)
	}
	return NewTopic(t, rawURL), nil
}

// NewTopic wraps an open topic; url is only used in messages.
func NewTopic(t *pubsub.Topic, url string) *Topic {
	tp := &Topic{topic: t, url: redactURL(url)}
	var tf driver.TopicFeatures
	if t.As(&tf) {
		tp.maxDelay = tf.MaxDelay()
	} else if e := extensionOf(url); e != nil {
		if tp.ext = e.Topic(t, url); tp.ext != nil {
			tp.maxDelay = tp.ext.MaxDelay()
		}
	}
	var ds driver.DirectSender
	if t.As(&ds) {
		tp.direct = ds
	}
	return tp
}

// MaxDelay is the longest first-delivery delay the topic supports.
func (t *Topic) MaxDelay() time.Duration { return t.maxDelay }

// Send publishes one message body, held back for delay before its first
// delivery.
func (t *Topic) Send(ctx context.Context, body []byte, delay time.Duration) error {
	if delay > t.maxDelay {
		return fmt.Errorf("send to %s: delay %s is longer than the topic's %s maximum", t.url, delay, t.maxDelay)
	}
	if t.direct != nil {
		var delays []time.Duration
		if delay > 0 {
			delays = []time.Duration{delay}
		}
		if err := t.direct.SendDirect(ctx, [][]byte{body}, delays); err != nil {
			return fmt.Errorf("send to %s: %w", t.url, err)
		}
		return nil
	}
	if t.ext != nil {
		if errs := t.ext.SendBatch(ctx, [][]byte{body}, []time.Duration{delay}); errs != nil && errs[0] != nil {
			return fmt.Errorf("send to %s: %w", t.url, errs[0])
		}
		return nil
	}
	m := &pubsub.Message{Body: body}
	if delay > 0 {
		m.Metadata = map[string]string{driver.MetadataDelay: strconv.FormatInt(delay.Milliseconds(), 10)}
	}
	if err := t.topic.Send(ctx, m); err != nil {
		return fmt.Errorf("send to %s: %w", t.url, err)
	}
	return nil
}

// SendAll publishes bodies concurrently, so that the driver batches them.
// It returns the index of each body that failed with its error.
func (t *Topic) SendAll(ctx context.Context, bodies [][]byte, delays []time.Duration) map[int]error {
	if t.direct != nil {
		return t.sendChecked(bodies, delays, func(bs [][]byte, ds []time.Duration) []error {
			if err := t.direct.SendDirect(ctx, bs, ds); err != nil {
				errs := make([]error, len(bs))
				for i := range errs {
					errs[i] = err
				}
				return errs
			}
			return nil
		})
	}
	if t.ext != nil {
		return t.sendChecked(bodies, delays, func(bs [][]byte, ds []time.Duration) []error {
			return t.ext.SendBatch(ctx, bs, ds)
		})
	}
	var (
		g    errgroup.Group
		errs = make([]error, len(bodies))
	)
	g.SetLimit(256)
	for i := range bodies {
		g.Go(func() error {
			var d time.Duration
			if delays != nil {
				d = delays[i]
			}
			errs[i] = t.Send(ctx, bodies[i], d)
			return nil
		})
	}
	_ = g.Wait()
	var failed map[int]error
	for i, err := range errs {
		if err != nil {
			if failed == nil {
				failed = map[int]error{}
			}
			failed[i] = err
		}
	}
	return failed
}

// sendChecked sends, with send, the bodies whose delay the topic can
// keep (in one call, indexes kept) and fails the others, as Send does.
// send returns each body's error, or nil when all were sent.
func (t *Topic) sendChecked(bodies [][]byte, delays []time.Duration, send func([][]byte, []time.Duration) []error) map[int]error {
	failed := map[int]error{}
	idx := make([]int, 0, len(bodies))
	for i := range bodies {
		if delays != nil && delays[i] > t.maxDelay {
			failed[i] = fmt.Errorf("send to %s: delay %s is longer than the topic's %s maximum", t.url, delays[i], t.maxDelay)
			continue
		}
		idx = append(idx, i)
	}
	bs, ds := bodies, delays
	if len(failed) > 0 {
		bs, ds = make([][]byte, len(idx)), make([]time.Duration, len(idx))
		for k, i := range idx {
			bs[k], ds[k] = bodies[i], delays[i]
		}
	}
	if len(bs) > 0 {
		for k, err := range send(bs, ds) {
			if err != nil {
				failed[idx[k]] = fmt.Errorf("send to %s: %w", t.url, err)
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return failed
}

// Ping checks that the topic's queue answers where the driver allows a
// check without sending (SQS: GetQueueAttributes); elsewhere it reports
// success.
func (t *Topic) Ping(ctx context.Context) error {
	if t.ext == nil {
		return nil
	}
	if err := t.ext.Ping(ctx); err != nil {
		return fmt.Errorf("queue %s: %w", t.url, err)
	}
	return nil
}

// Depth returns how many messages wait in the topic's queue (not yet
// acked), and false where the driver cannot tell.
func (t *Topic) Depth(ctx context.Context) (int, bool, error) {
	var qd driver.QueueDepth
	if !t.topic.As(&qd) {
		if qd, _ = t.ext.(driver.QueueDepth); qd == nil {
			return 0, false, nil
		}
	}
	n, err := qd.Depth(ctx)
	if err != nil {
		return 0, true, fmt.Errorf("depth of %s: %w", t.url, err)
	}
	return n, true, nil
}

// MaybeSent reports whether a send that failed with err may have been
// enqueued all the same: it timed out or lost its connection waiting for
// the queue's answer (as opposed to being refused, or never sent).
func MaybeSent(err error) bool {
	if errors.Is(err, driver.ErrNotSent) {
		return false
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne)
}

// Shutdown flushes pending sends and closes the topic.
func (t *Topic) Shutdown(ctx context.Context) error { return t.topic.Shutdown(ctx) }

// Subscription receives deliveries from a gocloud subscription.
type Subscription struct {
	sub    *pubsub.Subscription
	url    string
	direct driver.DirectReceiver        // nil unless the driver has it
	ext    driver.SubscriptionExtension // nil unless an extension has one for it
}

// OpenSubscription opens a subscription at a gocloud pubsub URL, through
// the queue extension registered for its scheme if there is one (package
// awsq for awssqs://).
func OpenSubscription(ctx context.Context, rawURL string) (*Subscription, error) {
	var (
		s   *pubsub.Subscription
		ext driver.SubscriptionExtension
		err error
	)
	if e := extensionOf(rawURL); e != nil {
		s, ext, err = e.OpenSubscription(ctx, rawURL)
	} else {
		s, err = pubsub.OpenSubscription(ctx, rawURL)
	}
	if err != nil {
		return nil, fmt.Errorf("open subscription %s: %w", redactURL(rawURL), err)
	}
	sub := &Subscription{sub: s, url: redactURL(rawURL), ext: ext}
	var dr driver.DirectReceiver
	if s.As(&dr) {
		sub.direct = dr
	}
	return sub, nil
}

// NewSubscription wraps an open subscription (one a driver built without
// a URL, such as package httpq's); url is only used in messages.
func NewSubscription(s *pubsub.Subscription, url string) *Subscription {
	sub := &Subscription{sub: s, url: redactURL(url)}
	var dr driver.DirectReceiver
	if s.As(&dr) {
		sub.direct = dr
	}
	return sub
}

// extensionOf returns the queue extension registered for rawURL's scheme.
func extensionOf(rawURL string) driver.QueueExtension {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil
	}
	return driver.QueueExtensionFor(scheme)
}

// Batched reports whether ReceiveBatch can return more than one delivery
// per call: the driver is a DirectReceiver (memq), or the extension a
// driver.BatchReceiver (awsq: one ReceiveMessage call for up to ten).
func (s *Subscription) Batched() bool {
	_, batch := s.ext.(driver.BatchReceiver)
	return s.direct != nil || batch
}

// InProcess reports whether the driver hands out deliveries in process
// (a DirectReceiver): one ReceiveBatch takes all that is ready, so one
// receiver is enough; a remote queue's calls are worth overlapping.
func (s *Subscription) InProcess() bool { return s.direct != nil }

// ReceiveBatch waits for the next deliveries, up to max: as many as are
// ready where the subscription is Batched, else one.
func (s *Subscription) ReceiveBatch(ctx context.Context, max int) ([]*Delivery, error) {
	if br, ok := s.ext.(driver.BatchReceiver); ok && s.direct == nil {
		ds, err := br.ReceiveBatch(ctx, max)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("receive from %s: %w", s.url, err)
		}
		return ds, nil
	}
	if s.direct == nil {
		d, err := s.Receive(ctx)
		if err != nil {
			return nil, err
		}
		return []*Delivery{d}, nil
	}
	for {
		ds, err := s.direct.ReceiveDirect(ctx, max)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("receive from %s: %w", s.url, err)
		}
		if len(ds) > 0 {
			return ds, nil
		}
	}
}

// ReceiveNow waits for one delivery, for a caller ready to start it at
// once (a runner's free slot). Where the subscription's extension is a
// driver.NowReceiver (awsq: one ReceiveMessage call for one message),
// nothing waits in a prefetch buffer, uncovered by any heartbeat, while
// its visibility timeout runs out; memq hands out messages only when
// asked too. Elsewhere it is Receive, with gocloud's prefetching.
func (s *Subscription) ReceiveNow(ctx context.Context) (*Delivery, error) {
	nr, ok := s.ext.(driver.NowReceiver)
	if !ok {
		return s.Receive(ctx)
	}
	ds, err := nr.ReceiveNow(ctx, 1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("receive from %s: %w", s.url, err)
	}
	return ds[0], nil
}

// ReceiveWithin is ReceiveNow waiting at most wait (0: only what is
// ready now); it returns nil and no error when nothing came in time.
// Where the driver cannot bound a wait of its own (gocloud's portable
// receive), the wait is a context deadline, which the portable receive
// survives without losing what it prefetched.
func (s *Subscription) ReceiveWithin(ctx context.Context, wait time.Duration) (*Delivery, error) {
	wr, ok := s.ext.(driver.WaitReceiver)
	if !ok && s.ext == nil {
		ok = s.sub.As(&wr)
	}
	if ok {
		ds, err := wr.ReceiveWithin(ctx, 1, wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("receive from %s: %w", s.url, err)
		}
		if len(ds) == 0 {
			return nil, nil
		}
		return ds[0], nil
	}
	if _, now := s.ext.(driver.NowReceiver); now {
		return s.ReceiveNow(ctx)
	}
	wctx, cancel := context.WithTimeout(ctx, max(wait, 10*time.Millisecond))
	defer cancel()
	d, err := s.Receive(wctx)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return nil, nil
	}
	return d, err
}

// ReceiveUpTo takes up to n deliveries for a caller that holds each at
// once (the lease endpoints), waiting at most wait for the first (0: only
// what is ready now); it returns none and no error when nothing came in
// time. Where the driver is a WaitReceiver (memq, awsq) the wait is its
// own; elsewhere it is ReceiveBatch (or ReceiveNow) under a context
// deadline of wait.
func (s *Subscription) ReceiveUpTo(ctx context.Context, n int, wait time.Duration) ([]*Delivery, error) {
	wr, ok := s.ext.(driver.WaitReceiver)
	if !ok && s.ext == nil {
		ok = s.sub.As(&wr)
	}
	if ok {
		ds, err := wr.ReceiveWithin(ctx, n, wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("receive from %s: %w", s.url, err)
		}
		return ds, nil
	}
	wctx, cancel := context.WithTimeout(ctx, max(wait, 10*time.Millisecond))
	defer cancel()
	var (
		ds  []*Delivery
		err error
	)
	if s.Batched() {
		ds, err = s.ReceiveBatch(wctx, n)
	} else {
		var d *Delivery
		if d, err = s.ReceiveNow(wctx); err == nil {
			ds = []*Delivery{d}
		}
	}
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return nil, nil
	}
	return ds, err
}

// Receive waits for the next delivery.
func (s *Subscription) Receive(ctx context.Context) (*Delivery, error) {
	if s.direct != nil {
		ds, err := s.ReceiveBatch(ctx, 1)
		if err != nil {
			return nil, err
		}
		return ds[0], nil
	}
	m, err := s.sub.Receive(ctx)
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", s.url, err)
	}
	d := &Delivery{ID: m.LoggableID, Body: m.Body, Ack: m.Ack}
	if m.Nackable() {
		d.Nack = m.Nack
	} else {
		d.Nack = func() {}
	}
	var lc LeaseControl
	if m.As(&lc) {
		d.Lease = lc
	} else if s.ext != nil {
		lease, ack, nack := s.ext.Settlers(m)
		d.Lease = lease
		if ack != nil {
			d.Ack, d.Nack = ack, nack
		}
	}
	return d, nil
}

// Shutdown stops receiving and flushes pending acks. Acks after it still
// take effect where the driver allows it (SQS).
func (s *Subscription) Shutdown(ctx context.Context) error {
	var err error
	if s.ext != nil {
		err = s.ext.Flush(ctx)
	}
	return errors.Join(err, s.sub.Shutdown(ctx))
}
