// Package awsq is Drover's extension of gocloud's awssqs driver through the
// AWS SDK: lease extension (ChangeMessageVisibility) and delivery counts,
// per-message delays, sends and acks coalesced into SendMessageBatch and
// DeleteMessageBatch calls, and a health check. Importing it registers the
// extension for awssqs:// URLs with package task (see package
// task/driver); the Lambda runner uses NewLease directly.
//
// This is the only package of Drover's core that imports the AWS SDK.
package awsq

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"gocloud.dev/pubsub"

	"github.com/droverhq/drover/pkg/task/driver"
)

func init() { driver.RegisterQueueExtension("awssqs", extension{}) }

type extension struct{}

// Topic implements driver.QueueExtension for a topic of gocloud's awssqs
// driver.
func (extension) Topic(t *pubsub.Topic, rawURL string) driver.TopicExtension {
	if !TopicDelay(t) {
		return nil
	}
	te := &topic{topic: t}
	if qURL, ok := QueueURL(rawURL); ok {
		var client *sqs.Client
		t.As(&client)
		te.client, te.queueURL = client, qURL
		te.batch = newBatchSender(client, qURL)
	}
	return te
}

// OpenSubscription implements driver.QueueExtension. It sets
// nacklazy=true, because Drover sets a retry's visibility itself before
// it nacks; with nacklazy (unless the URL turns it off) acks are deleted
// in coalesced DeleteMessageBatch calls (see acker) instead of through
// gocloud's ack batcher.
func (extension) OpenSubscription(ctx context.Context, rawURL string) (*pubsub.Subscription, driver.SubscriptionExtension, error) {
	u, lazy := rawURL, false
	if p, err := url.Parse(rawURL); err == nil {
		q := p.Query()
		if q.Get("nacklazy") == "" {
			q.Set("nacklazy", "true")
		}
		lazy, _ = strconv.ParseBool(q.Get("nacklazy"))
		p.RawQuery = q.Encode()
		u = p.String()
	}
	s, err := pubsub.OpenSubscription(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	qURL, ok := QueueURL(u)
	if !ok {
		return s, nil, nil
	}
	se := &subscription{sub: s, queueURL: qURL}
	var client *sqs.Client
	if lazy && s.As(&client) && client != nil {
		// Only under nacklazy does gocloud's Nack, which settles the
		// message after the delete, send nothing.
		se.acks = newAcker(client, qURL)
		return s, &nowSubscription{subscription: se,
			now:   &receiver{client: client, queueURL: qURL, acks: se.acks, waitAcks: true},
			batch: &receiver{client: client, queueURL: qURL, acks: se.acks}}, nil
	}
	return s, se, nil
}

// topic is the extension of one awssqs topic.
type topic struct {
	topic    *pubsub.Topic
	client   *sqs.Client
	queueURL string
	batch    *batchSender // nil without a queue URL
}

func (t *topic) MaxDelay() time.Duration { return MaxDelay }

// SendBatch sends text bodies through the batch sender, ten to a request,
// and others through the portable topic (gocloud base64-encodes them,
// with an attribute its subscriptions decode).
func (t *topic) SendBatch(ctx context.Context, bodies [][]byte, delays []time.Duration) []error {
	var (
		items []*sendItem
		idx   []int
		other sync.WaitGroup
		errs  = make([]error, len(bodies))
	)
	for i, b := range bodies {
		var d time.Duration
		if delays != nil {
			d = delays[i]
		}
		if t.batch == nil || !batchable(b) {
			other.Go(func() {
				m := &pubsub.Message{Body: b}
				if d > 0 {
					WithDelay(m, d)
				}
				errs[i] = t.topic.Send(ctx, m)
			})
			continue
		}
		items = append(items, &sendItem{body: b, delay: d, done: make(chan struct{})})
		idx = append(idx, i)
	}
	if len(items) > 0 {
		t.batch.send(ctx, items)
	}
	other.Wait()
	failed := false
	for k, it := range items {
		errs[idx[k]] = it.err
	}
	for _, err := range errs {
		failed = failed || err != nil
	}
	if !failed {
		return nil
	}
	return errs
}

// Ping asks for the queue's ARN (GetQueueAttributes).
func (t *topic) Ping(ctx context.Context) error {
	if t.client == nil {
		return nil
	}
	_, err := t.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(t.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	return err
}

// Depth implements driver.QueueDepth: ApproximateNumberOfMessages plus
// ...NotVisible and ...Delayed, so it counts what memq's Depth counts.
func (t *topic) Depth(ctx context.Context) (int, error) {
	if t.client == nil {
		return 0, fmt.Errorf("awssqs topic without a queue URL cannot tell its depth")
	}
	out, err := t.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(t.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range out.Attributes {
		k, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("queue attribute %q: %w", v, err)
		}
		n += k
	}
	return n, nil
}

// subscription is the extension of one awssqs subscription.
type subscription struct {
	sub      *pubsub.Subscription
	queueURL string
	acks     *acker // nil unless the subscription is nacklazy
}

// nowSubscription is a nacklazy subscription's extension: it can also
// receive for callers ready to start what they get.
type nowSubscription struct {
	*subscription
	now   *receiver
	batch *receiver // acks in the background
}

// ReceiveNow implements driver.NowReceiver: one ReceiveMessage call for
// up to max messages (see receiver).
func (s *nowSubscription) ReceiveNow(ctx context.Context, max int) ([]*driver.Delivery, error) {
	return s.now.receive(ctx, max)
}

// ReceiveWithin implements driver.WaitReceiver (see receiver.receiveWithin).
func (s *nowSubscription) ReceiveWithin(ctx context.Context, max int, wait time.Duration) ([]*driver.Delivery, error) {
	return s.now.receiveWithin(ctx, max, wait)
}

// ReceiveBatch implements driver.BatchReceiver: ReceiveNow, but the
// deliveries' acks do not wait for their deletes.
func (s *nowSubscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Delivery, error) {
	return s.batch.receive(ctx, max)
}

func (s *subscription) Settlers(m *pubsub.Message) (lease driver.LeaseControl, ack, nack func()) {
	if lc, ok := LeaseOf(s.sub, s.queueURL, m); ok {
		lease = lc
	}
	if s.acks != nil {
		if h, ok := receiptHandle(m); ok {
			ack, nack = s.acks.settlers(m, h)
		}
	}
	return lease, ack, nack
}

func (s *subscription) Flush(ctx context.Context) error {
	if s.acks == nil {
		return nil
	}
	return s.acks.flush(ctx)
}
