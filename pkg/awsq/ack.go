package awsq

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"gocloud.dev/pubsub"

	"github.com/droverhq/drover/internal/coalesce"
)

// acker deletes acked deliveries of one SQS queue in DeleteMessageBatch
// calls of up to ten, coalescing concurrent acks. gocloud's awssqs ack
// batcher allows a hundred handlers, so concurrent acks each went out as
// a batch of one, and its options are not reachable through the URL.
// Here acks are gathered into rounds (package coalesce) and each round
// deletes everything waiting, ten to a request, all requests at once: no
// timer and no cap on requests in flight.
//
// Ack does not wait for the delete. The delete is sent as soon either
// way (in the round under way or the next), so waiting would not make it
// earlier or surer; it would cost each runner worker a round trip per
// task, leave messages gocloud has prefetched (which no heartbeat covers)
// waiting longer, and turn the collector's and sweeper's loops of acks
// into one round trip each. A failed delete is only logged (Ack reports
// nothing), and the message comes back after its visibility timeout, as
// the at-least-once rule expects. Subscription.Shutdown waits for the
// deletes asked for so far.
type acker struct {
	client   *sqs.Client
	queueURL string
	rounds   coalesce.Rounds[*ackItem]

	mu      sync.Mutex
	open    int             // acks not yet settled
	drained []chan struct{} // closed when open drops to zero
}

type ackItem struct {
	msg    *pubsub.Message // nil for deliveries taken by ReceiveNow
	id     string
	handle string
	done   chan struct{} // if not nil, closed once the delete is done or failed
}

func newAcker(client *sqs.Client, queueURL string) *acker {
	a := &acker{client: client, queueURL: queueURL}
	a.rounds.Run = a.round
	return a
}

// settlers returns the Ack and Nack of m, an SQS message with the given
// receipt handle. Both settle gocloud's message with Nack, which sends
// nothing on a nacklazy subscription: Ack after deleting it, Nack at once
// (the visibility set through the lease, or the queue's, then stands).
// Like gocloud's, they panic when the delivery is settled twice.
func (a *acker) settlers(m *pubsub.Message, handle string) (ack, nack func()) {
	var settled atomic.Bool
	settle := func() {
		if settled.Swap(true) {
			panic(fmt.Sprintf("awsq: Ack/Nack called twice on SQS message %s", m.LoggableID))
		}
	}
	ack = func() {
		settle()
		a.mu.Lock()
		a.open++
		a.mu.Unlock()
		// Lead or join a round in the background, so that a loop of
		// acks returns at once and its acks share requests.
		go a.rounds.Add(&ackItem{msg: m, id: m.LoggableID, handle: handle})
	}
	nack = func() {
		settle()
		m.Nack()
	}
	return ack, nack
}

// ackHandle returns the Ack of the SQS delivery with the given message ID
// and receipt handle, taken by a receiver. With wait (ReceiveNow), unlike
// the Ack of settlers, it returns once the delete is done (or has
// failed): a runner worker takes its next message only then, so a runner
// killed at any point leaves at most one finished, undeleted message per
// worker to be delivered (and perhaps run) again. Concurrent acks still
// share DeleteMessageBatch calls. Without wait (ReceiveBatch), it joins a
// round in the background as settlers' Ack does, so that the collector's
// loop of acks over a batch shares requests instead of making one round
// trip per event.
func (a *acker) ackHandle(id, handle string, wait bool) func() {
	var settled atomic.Bool
	return func() {
		if settled.Swap(true) {
			panic(fmt.Sprintf("awsq: Ack called twice on SQS message %s", id))
		}
		a.mu.Lock()
		a.open++
		a.mu.Unlock()
		it := &ackItem{id: id, handle: handle}
		if !wait {
			go a.rounds.Add(it)
			return
		}
		it.done = make(chan struct{})
		a.rounds.Add(it)
		<-it.done
	}
}

// flush waits until every delete asked for so far is done (or has
// failed), or ctx is done.
func (a *acker) flush(ctx context.Context) error {
	a.mu.Lock()
	if a.open == 0 {
		a.mu.Unlock()
		return nil
	}
	c := make(chan struct{})
	a.drained = append(a.drained, c)
	a.mu.Unlock()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// round deletes acks in batches of up to ten, all at once.
func (a *acker) round(acks []*ackItem) {
	// The round serves several callers and none waits for it: no
	// caller's context applies.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for batch := range slices.Chunk(acks, batchEntries) {
		wg.Go(func() { a.batch(ctx, batch) })
	}
	wg.Wait()
	a.mu.Lock()
	a.open -= len(acks)
	if a.open == 0 {
		for _, c := range a.drained {
			close(c)
		}
		a.drained = nil
	}
	a.mu.Unlock()
}

func (a *acker) batch(ctx context.Context, acks []*ackItem) {
	in := &sqs.DeleteMessageBatchInput{
		QueueUrl: aws.String(a.queueURL),
		Entries:  make([]sqstypes.DeleteMessageBatchRequestEntry, len(acks)),
	}
	for i, it := range acks {
		in.Entries[i] = sqstypes.DeleteMessageBatchRequestEntry{
			Id:            aws.String(strconv.Itoa(i)),
			ReceiptHandle: aws.String(it.handle),
		}
	}
	failed := make([]string, len(acks))
	out, err := a.client.DeleteMessageBatch(ctx, in)
	if err != nil {
		for i := range failed {
			failed[i] = err.Error()
		}
	} else {
		// Every entry is listed under Successful or Failed.
		for _, f := range out.Failed {
			if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < len(acks) {
				failed[i] = aws.ToString(f.Code) + ": " + aws.ToString(f.Message)
			}
		}
	}
	for i, it := range acks {
		if failed[i] != "" {
			slog.Warn("could not delete an acked SQS message; it will come back after its visibility timeout",
				"queue", a.queueURL, "message_id", it.id, "err", failed[i])
		}
		if it.msg != nil {
			it.msg.Nack() // settles gocloud's message; sends nothing (nacklazy)
		}
		if it.done != nil {
			close(it.done)
		}
	}
}

// receiptHandle returns the receipt handle of m, a message from
// gocloud's awssqs driver.
func receiptHandle(m *pubsub.Message) (string, bool) {
	var sm sqstypes.Message
	if !m.As(&sm) || sm.ReceiptHandle == nil {
		return "", false
	}
	return *sm.ReceiptHandle, true
}
