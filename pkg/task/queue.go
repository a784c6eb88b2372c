package task

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"gocloud.dev/pubsub"
	"golang.org/x/sync/errgroup"
)

// Claim-check thresholds: arguments and results larger than these travel
// as blob references instead of inline.
const (
	DefaultPayloadLimit = 192 << 10
	DefaultResultLimit  = 4 << 10
)

// DirectSender is implemented, through pubsub.Topic.As, by in-process
// drivers (memq) that can queue a batch of bodies in one step without the
// portable type's per-message work (a tracing span, a batcher hand-off and
// a goroutine per message). Drover's Topic uses it when the driver has it
// and the portable path otherwise; the delivery rules do not change.
type DirectSender interface {
	// SendDirect queues every body or none, body i held back for
	// delays[i] (delays may be nil). It takes ownership of the bodies.
	SendDirect(ctx context.Context, bodies [][]byte, delays []time.Duration) error
}

// DirectReceiver is implemented, through pubsub.Subscription.As, by
// in-process drivers (memq) that hand out deliveries without the portable
// type's per-message work (a tracing span, a finalizer, a runtime.Caller
// and an ack batcher). Deliveries it returns are settled at once by their
// Ack and Nack.
type DirectReceiver interface {
	// ReceiveDirect returns up to max deliveries, blocking until one is
	// ready or the driver's wait passes (then it returns none).
	ReceiveDirect(ctx context.Context, max int) ([]*Delivery, error)
}

// Topic publishes task messages or events on a gocloud topic.
type Topic struct {
	topic    *pubsub.Topic
	url      string // redacted, for messages
	rawURL   string
	maxDelay time.Duration
	sqs      bool
	direct   DirectSender    // nil unless the driver has it
	batch    *sqsBatchSender // nil unless the topic is an SQS queue
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
	tp := &Topic{topic: t, url: redactURL(url), rawURL: url}
	var tf TopicFeatures
	switch {
	case t.As(&tf):
		tp.maxDelay = tf.MaxDelay()
	case SQSTopicDelay(t):
		tp.maxDelay, tp.sqs = SQSMaxDelay, true
		tp.batch = newSQSBatchSender(t, url)
	}
	var ds DirectSender
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
	if t.batch != nil && batchable(body) {
		it := &sqsSend{body: body, delay: delay, done: make(chan struct{})}
		t.batch.send(ctx, []*sqsSend{it})
		if it.err != nil {
			return fmt.Errorf("send to %s: %w", t.url, it.err)
		}
		return nil
	}
	m := &pubsub.Message{Body: body}
	if delay > 0 {
		if t.sqs {
			WithSQSDelay(m, delay)
		} else {
			m.Metadata = map[string]string{MetadataDelay: strconv.FormatInt(delay.Milliseconds(), 10)}
		}
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
		return t.sendDirect(ctx, bodies, delays)
	}
	if t.batch != nil {
		return t.sendBatch(ctx, bodies, delays)
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

// sendDirect queues bodies through the driver's DirectSender in one batch
// (all or none), after checking each delay as Send does.
func (t *Topic) sendDirect(ctx context.Context, bodies [][]byte, delays []time.Duration) map[int]error {
	failed := map[int]error{}
	for i, d := range delays {
		if d > t.maxDelay {
			failed[i] = fmt.Errorf("send to %s: delay %s is longer than the topic's %s maximum", t.url, d, t.maxDelay)
		}
	}
	if len(failed) > 0 {
		// Send the others, keeping indexes.
		var (
			idx []int
			bs  [][]byte
			ds  []time.Duration
		)
		for i := range bodies {
			if _, bad := failed[i]; !bad {
				idx, bs, ds = append(idx, i), append(bs, bodies[i]), append(ds, delays[i])
			}
		}
		if err := t.direct.SendDirect(ctx, bs, ds); err != nil {
			for _, i := range idx {
				failed[i] = fmt.Errorf("send to %s: %w", t.url, err)
			}
		}
		return failed
	}
	if err := t.direct.SendDirect(ctx, bodies, delays); err != nil {
		for i := range bodies {
			failed[i] = fmt.Errorf("send to %s: %w", t.url, err)
		}
		return failed
	}
	return nil
}

// sendBatch queues bodies through the SQS batch sender together, so that
// they go out ten to a request; bodies it cannot take go through Send.
func (t *Topic) sendBatch(ctx context.Context, bodies [][]byte, delays []time.Duration) map[int]error {
	failed := map[int]error{}
	var (
		items []*sqsSend
		idx   []int
		other sync.WaitGroup
		mu    sync.Mutex
	)
	for i, b := range bodies {
		var d time.Duration
		if delays != nil {
			d = delays[i]
		}
		switch {
		case d > t.maxDelay:
			failed[i] = fmt.Errorf("send to %s: delay %s is longer than the topic's %s maximum", t.url, d, t.maxDelay)
		case !batchable(b):
			other.Go(func() {
				if err := t.Send(ctx, b, d); err != nil {
					mu.Lock()
					failed[i] = err
					mu.Unlock()
				}
			})
		default:
			items = append(items, &sqsSend{body: b, delay: d, done: make(chan struct{})})
			idx = append(idx, i)
		}
	}
	if len(items) > 0 {
		t.batch.send(ctx, items)
	}
	other.Wait()
	for k, it := range items {
		if it.err != nil {
			failed[idx[k]] = fmt.Errorf("send to %s: %w", t.url, it.err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return failed
}

// Shutdown flushes pending sends and closes the topic.
func (t *Topic) Shutdown(ctx context.Context) error { return t.topic.Shutdown(ctx) }

// Delivery is one received message with what it takes to settle it: the
// body, the driver's lease control (nil where the driver has none), and
// ack/nack. Long-lived runners get deliveries from a Subscription; the
// Lambda entry points build them from SQS events.
type Delivery struct {
	ID    string
	Body  []byte
	Lease LeaseControl
	// Ack removes the message for good; Nack gives it back (after the
	// visibility last set through Lease, where the driver honours it).
	Ack  func()
	Nack func()
}

// Attempt is the delivery count where the driver knows it, else 1.
func (d *Delivery) Attempt() int {
	if d.Lease != nil {
		if n := d.Lease.ReceiveCount(); n > 0 {
			return n
		}
	}
	return 1
}

// Subscription receives deliveries from a gocloud subscription.
type Subscription struct {
	sub      *pubsub.Subscription
	url      string
	queueURL string         // for SQS, the queue the subscription reads
	direct   DirectReceiver // nil unless the driver has it
	acks     *sqsAcker      // nil unless the driver is awssqs with nacklazy
}

// OpenSubscription opens a subscription at a gocloud pubsub URL. For
// awssqs:// subscriptions it sets nacklazy=true, because Drover sets a
// retry's visibility itself before it nacks; with nacklazy (unless the
// URL turns it off) acks are deleted in coalesced DeleteMessageBatch
// calls (see sqsAcker) instead of through gocloud's ack batcher.
func OpenSubscription(ctx context.Context, rawURL string) (*Subscription, error) {
	u, lazy := rawURL, false
	if strings.HasPrefix(rawURL, "awssqs://") {
		if p, err := url.Parse(rawURL); err == nil {
			q := p.Query()
			if q.Get("nacklazy") == "" {
				q.Set("nacklazy", "true")
			}
			lazy, _ = strconv.ParseBool(q.Get("nacklazy"))
			p.RawQuery = q.Encode()
			u = p.String()
		}
	}
	s, err := pubsub.OpenSubscription(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open subscription %s: %w", redactURL(rawURL), err)
	}
	qURL, _ := SQSQueueURL(u)
	sub := &Subscription{sub: s, url: redactURL(rawURL), queueURL: qURL}
	var client *sqs.Client
	if qURL != "" && lazy && s.As(&client) && client != nil {
		// Only under nacklazy does gocloud's Nack, which settles the
		// message after the delete, send nothing.
		sub.acks = newSQSAcker(client, qURL)
	}
	var dr DirectReceiver
	if s.As(&dr) {
		sub.direct = dr
	}
	return sub, nil
}

// Batched reports whether ReceiveBatch can return more than one delivery
// per call (the driver is a DirectReceiver).
func (s *Subscription) Batched() bool { return s.direct != nil }

// ReceiveBatch waits for the next deliveries, up to max: as many as are
// ready where the subscription is Batched, else one.
func (s *Subscription) ReceiveBatch(ctx context.Context, max int) ([]*Delivery, error) {
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
	} else if s.queueURL != "" {
		if lc, ok := SQSLeaseOf(s.sub, s.queueURL, m); ok {
			d.Lease = lc
		}
		if s.acks != nil {
			if h, ok := sqsReceiptHandle(m); ok {
				d.Ack, d.Nack = s.acks.settlers(m, h)
			}
		}
	}
	return d, nil
}

// Shutdown stops receiving and flushes pending acks. Acks after it still
// take effect where the driver allows it (SQS).
func (s *Subscription) Shutdown(ctx context.Context) error {
	var err error
	if s.acks != nil {
		err = s.acks.flush(ctx)
	}
	return errors.Join(err, s.sub.Shutdown(ctx))
}
