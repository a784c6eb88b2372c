package awsq

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/droverhq/drover/pkg/task/driver"
)

// sqsWaitSeconds is the long-poll wait of a ReceiveMessage call.
const sqsWaitSeconds = 20

// receiver takes messages from one SQS queue only for a caller that
// can start them at once: one ReceiveMessage per call, for as many
// messages as the caller asks for, never a buffer. gocloud's portable
// Receive prefetches batches it sizes itself; a message waiting in that
// buffer is covered by no heartbeat, so on a slow queue it could expire
// unseen and come back, counted by SQS as a delivery though nothing ran.
type receiver struct {
	client   *sqs.Client
	queueURL string
	acks     *acker
	// waitAcks: a delivery's Ack returns once its delete is done (see
	// acker.ackHandle), for workers that take the next message only then.
	waitAcks bool
}

// receive waits (long-polling, until ctx is done) for up to n (at most
// ten) messages.
func (r *receiver) receive(ctx context.Context, n int) ([]*driver.Delivery, error) {
	for {
		ds, err := r.receiveWithin(ctx, n, sqsWaitSeconds*time.Second)
		if err != nil || len(ds) > 0 {
			return ds, err
		}
	}
}

// receiveMargin is how long past its long poll a ReceiveMessage call may
// take before it is abandoned as hung (the AWS SDK sets no response
// deadline, and one call that never returns would stop its worker for
// good, with nothing logged). Messages an abandoned call took come back
// after their visibility timeout; attempts count executions, so that
// costs a receive, not an attempt.
var receiveMargin = 40 * time.Second // a variable for tests

// receiveWithin makes one ReceiveMessage call for up to n messages that
// waits at most wait (rounded up to whole seconds, up to 20 s; 0 is a
// short poll), and gives up on it receiveMargin after that.
func (r *receiver) receiveWithin(ctx context.Context, n int, wait time.Duration) ([]*driver.Delivery, error) {
	n = min(max(n, 1), 10)
	secs := min(int32((wait+time.Second-1)/time.Second), sqsWaitSeconds)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+receiveMargin)
	defer cancel()
	out, err := r.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(r.queueURL),
		MaxNumberOfMessages:         int32(n),
		WaitTimeSeconds:             secs,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		if parent.Err() != nil {
			return nil, parent.Err()
		}
		return nil, fmt.Errorf("sqs receive from %s: %w", r.queueURL, err)
	}
	ds := make([]*driver.Delivery, 0, len(out.Messages))
	for _, m := range out.Messages {
		ds = append(ds, r.delivery(m))
	}
	return ds, nil
}

func (r *receiver) delivery(m sqstypes.Message) *driver.Delivery {
	id, handle := aws.ToString(m.MessageId), aws.ToString(m.ReceiptHandle)
	body := []byte(aws.ToString(m.Body))
	// gocloud's awssqs topic base64-encodes bodies that are not UTF-8,
	// and says so in an attribute its subscriptions decode by.
	if a, ok := m.MessageAttributes["base64encoded"]; ok && aws.ToString(a.StringValue) == "true" {
		if b, err := base64.StdEncoding.DecodeString(string(body)); err == nil {
			body = b
		}
	}
	n, err := strconv.Atoi(m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
	if err != nil || n < 1 {
		n = 1
	}
	return &driver.Delivery{
		ID: id, Body: body,
		Lease: NewLease(r.client, r.queueURL, handle, n),
		Ack:   r.acks.ackHandle(id, handle, r.waitAcks),
		// The visibility last set through the lease (a retry's backoff,
		// 0 at shutdown), or the queue's, stands.
		Nack: func() {},
	}
}
