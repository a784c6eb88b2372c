package task

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/pubsub"
	"golang.org/x/sync/errgroup"
)

// Claim-check thresholds: arguments and results larger than these travel
// as blob references instead of inline.
const (
	DefaultPayloadLimit = 192 << 10
	DefaultResultLimit  = 4 << 10
)

// Topic publishes task messages or events on a gocloud topic.
type Topic struct {
	topic    *pubsub.Topic
	url      string // redacted, for messages
	rawURL   string
	maxDelay time.Duration
	sqs      bool
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
	}
	return tp
}

// MaxDelay is the longest first-delivery delay the topic supports.
func (t *Topic) MaxDelay() time.Duration { return t.maxDelay }

// Send publishes one message body, held back for delay before its first
// delivery.
func (t *Topic) Send(ctx context.Context, body []byte, delay time.Duration) error {
	m := &pubsub.Message{Body: body}
	if delay > 0 {
		if delay > t.maxDelay {
			return fmt.Errorf("send to %s: delay %s is longer than the topic's %s maximum", t.url, delay, t.maxDelay)
		}
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
	queueURL string // for SQS, the queue the subscription reads
}

// OpenSubscription opens a subscription at a gocloud pubsub URL. For
// awssqs:// subscriptions it sets nacklazy=true, because Drover sets a
// retry's visibility itself before it nacks.
func OpenSubscription(ctx context.Context, rawURL string) (*Subscription, error) {
	u := rawURL
	if strings.HasPrefix(rawURL, "awssqs://") {
		if p, err := url.Parse(rawURL); err == nil {
			q := p.Query()
			if q.Get("nacklazy") == "" {
				q.Set("nacklazy", "true")
			}
			p.RawQuery = q.Encode()
			u = p.String()
		}
	}
	s, err := pubsub.OpenSubscription(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open subscription %s: %w", redactURL(rawURL), err)
	}
	qURL, _ := SQSQueueURL(u)
	return &Subscription{sub: s, url: redactURL(rawURL), queueURL: qURL}, nil
}

// Receive waits for the next delivery.
func (s *Subscription) Receive(ctx context.Context) (*Delivery, error) {
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
	}
	return d, nil
}

// Shutdown stops receiving and flushes pending acks.
func (s *Subscription) Shutdown(ctx context.Context) error { return s.sub.Shutdown(ctx) }
