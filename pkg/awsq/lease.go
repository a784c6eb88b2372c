package awsq

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"gocloud.dev/pubsub"

	"github.com/droverhq/drover/pkg/task/driver"
)

// SQS limits that shape leases and delays.
const (
	// MaxVisibility is the longest SQS keeps a delivery hidden, counted
	// from the ReceiveMessage that made it: ChangeMessageVisibility calls
	// that would reach beyond it are refused.
	MaxVisibility = 12 * time.Hour
	// MaxDelay is the longest SQS holds a sent message back before its
	// first delivery (the DelaySeconds cap).
	MaxDelay = 15 * time.Minute
)

// leaseMargin is taken off MaxVisibility for the time between the
// ReceiveMessage call and the lease's creation (gocloud may prefetch).
const leaseMargin = time.Minute

// lease is a driver.LeaseControl over one SQS delivery, identified by its
// receipt handle.
type lease struct {
	client        *sqs.Client
	queueURL      string
	receiptHandle string
	receiveCount  int
	receivedAt    time.Time
	lost          atomic.Bool
}

// NewLease returns the LeaseControl of the SQS delivery with the given
// receipt handle; create it as soon as the message is received, as it
// counts SQS's 12-hour limit from then. receiveCount is the message's
// ApproximateReceiveCount attribute.
func NewLease(client *sqs.Client, queueURL, receiptHandle string, receiveCount int) driver.LeaseControl {
	return &lease{
		client:        client,
		queueURL:      queueURL,
		receiptHandle: receiptHandle,
		receiveCount:  receiveCount,
		receivedAt:    time.Now(),
	}
}

// ReceiveCount implements driver.LeaseControl.
func (l *lease) ReceiveCount() int { return l.receiveCount }

// SetVisibility implements driver.LeaseControl with ChangeMessageVisibility. d is
// rounded up to whole seconds and clamped to [0, 12h], and further to what
// is left of SQS's 12 hours since the delivery (less a minute's margin).
// When nothing is left, it returns an error and leaves the visibility as
// it was.
func (l *lease) SetVisibility(ctx context.Context, d time.Duration) error {
	if l.lost.Load() {
		return fmt.Errorf("sqs change visibility on %s: %w", l.queueURL, driver.ErrLeaseLost)
	}
	if left := MaxVisibility - leaseMargin - time.Since(l.receivedAt); d > left {
		if left < time.Second {
			return fmt.Errorf("sqs change visibility on %s: delivery is %s old, SQS keeps one hidden for at most %s",
				l.queueURL, time.Since(l.receivedAt).Round(time.Second), MaxVisibility)
		}
		d = left.Truncate(time.Second)
	}
	_, err := l.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(l.queueURL),
		ReceiptHandle:     aws.String(l.receiptHandle),
		VisibilityTimeout: ceilSeconds(d, MaxVisibility),
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if staleReceipt(err) {
			l.lost.Store(true)
			return fmt.Errorf("sqs change visibility on %s: %w (%v)", l.queueURL, driver.ErrLeaseLost, err)
		}
		return fmt.Errorf("sqs change visibility on %s: %w", l.queueURL, err)
	}
	return nil
}

// staleReceipt reports whether err is SQS refusing a receipt handle that
// is no longer current: the message was received again (the handle
// expired) or deleted.
func staleReceipt(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight":
		return true
	case "InvalidParameterValue":
		return strings.Contains(strings.ToLower(ae.ErrorMessage()), "receipt handle")
	}
	return false
}

// LeaseOf returns the LeaseControl of m, a message received from sub,
// when sub is an SQS subscription (gocloud's awssqs driver); queueURL is
// the URL the subscription was opened on (see QueueURL). It reports
// false for any other driver.
func LeaseOf(sub *pubsub.Subscription, queueURL string, m *pubsub.Message) (driver.LeaseControl, bool) {
	var client *sqs.Client
	if sub == nil || m == nil || !sub.As(&client) || client == nil {
		return nil, false
	}
	var sm sqstypes.Message
	if !m.As(&sm) || sm.ReceiptHandle == nil {
		return nil, false
	}
	// The awssqs driver asks for All attributes, so the count is there;
	// a delivery counts itself, hence at least 1.
	n, err := strconv.Atoi(sm.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	if err != nil || n < 1 {
		n = 1
	}
	return NewLease(client, queueURL, *sm.ReceiptHandle, n), true
}

// QueueURL returns the SQS queue URL that gocloud's awssqs driver uses
// for the pubsub URL u ("awssqs://HOST/PATH?..." gives "https://HOST/PATH").
// It reports false when u is not an awssqs URL.
func QueueURL(u string) (string, bool) {
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "awssqs" || pu.Host == "" {
		return "", false
	}
	return "https://" + path.Join(pu.Host, pu.Path), true
}

// TopicDelay reports whether topic sends to an SQS queue (gocloud's
// awssqs driver), so that WithDelay takes effect on its messages, for
// up to MaxDelay.
func TopicDelay(topic *pubsub.Topic) bool {
	var client *sqs.Client
	return topic != nil && topic.As(&client) && client != nil
}

// WithDelay asks SQS to hold m back for d (rounded up to whole seconds,
// clamped to [0, MaxDelay]) before its first delivery, by setting the
// batch entry's DelaySeconds in m.BeforeSend. Any BeforeSend already set
// still runs, after it. On other drivers it does nothing, so it is safe to
// call whatever the topic is; use TopicDelay to know whether it applies.
// FIFO queues reject per-message delays.
func WithDelay(m *pubsub.Message, d time.Duration) {
	secs := ceilSeconds(d, MaxDelay)
	prev := m.BeforeSend
	m.BeforeSend = func(asFunc func(any) bool) error {
		var entry *sqstypes.SendMessageBatchRequestEntry
		if asFunc(&entry) && entry != nil {
			entry.DelaySeconds = secs
		}
		if prev != nil {
			return prev(asFunc)
		}
		return nil
	}
}

// ceilSeconds converts d to whole seconds, rounding up, within [0, limit].
func ceilSeconds(d, limit time.Duration) int32 {
	d = min(max(d, 0), limit)
	return int32((d + time.Second - 1) / time.Second)
}
