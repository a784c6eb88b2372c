package awsq

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/droverhq/drover/internal/coalesce"
	"github.com/droverhq/drover/pkg/task/driver"
)

// SQS batch limits.
const (
	batchEntries = 10
	batchBytes   = 256 << 10
)

// batchSender sends to one SQS queue in SendMessageBatch calls of up
// to ten messages, coalescing concurrent sends. gocloud's awssqs topic
// batches only what is waiting when a handler is free, and it allows a
// hundred handlers, so concurrent single sends (a runner's outcome
// events, a submit request's task messages) each go out as a batch of
// one. Here sends are gathered into rounds (package coalesce), and each
// round goes out in batches of ten at once: an idle queue is sent to at
// once, a busy one in full batches, with no timer. Each Send still
// returns only once its own message is accepted (or failed), so the
// runner's rule of acking after the outcome is published holds.
type batchSender struct {
	client   *sqs.Client
	queueURL string
	rounds   coalesce.Rounds[*sendItem]
}

type sendItem struct {
	body  []byte
	delay time.Duration
	err   error
	done  chan struct{}
}

// newBatchSender returns a sender to the queue at queueURL.
func newBatchSender(client *sqs.Client, queueURL string) *batchSender {
	s := &batchSender{client: client, queueURL: queueURL}
	s.rounds.Run = s.round
	return s
}

// batchable reports whether body can go out through the batch sender:
// SQS bodies are text, and gocloud base64-encodes other bodies (with an
// attribute its subscriptions decode), which the portable path keeps
// doing.
func batchable(body []byte) bool { return utf8.Valid(body) }

// send sends items and returns when each has its outcome, or when ctx is
// done for those no round has taken yet (they are then not sent).
func (s *batchSender) send(ctx context.Context, items []*sendItem) {
	s.rounds.Add(items...)
	for _, it := range items {
		select {
		case <-it.done:
			continue
		case <-ctx.Done():
		}
		if s.rounds.Withdraw(it) {
			// Never handed to SQS: certainly not enqueued.
			it.err = fmt.Errorf("%w: %w", driver.ErrNotSent, ctx.Err())
			continue
		}
		<-it.done // in flight: its outcome is known soon
	}
}

// round sends items in batches of up to ten (and 256 KiB), all at once.
func (s *batchSender) round(items []*sendItem) {
	// The round serves several callers: none of their contexts alone
	// should cut it short.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for len(items) > 0 {
		n, size := 0, 0
		for n < len(items) && n < batchEntries && (n == 0 || size+len(items[n].body) <= batchBytes) {
			size += len(items[n].body)
			n++
		}
		batch := items[:n]
		items = items[n:]
		wg.Go(func() { s.batch(ctx, batch) })
	}
	wg.Wait()
}

func (s *batchSender) batch(ctx context.Context, items []*sendItem) {
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.queueURL), Entries: make([]sqstypes.SendMessageBatchRequestEntry, len(items))}
	for i, it := range items {
		in.Entries[i] = sqstypes.SendMessageBatchRequestEntry{
			Id:          aws.String(strconv.Itoa(i)),
			MessageBody: aws.String(string(it.body)),
		}
		if it.delay > 0 {
			in.Entries[i].DelaySeconds = ceilSeconds(it.delay, MaxDelay)
		}
	}
	out, err := s.client.SendMessageBatch(ctx, in)
	if err == nil {
		for _, f := range out.Failed {
			i, convErr := strconv.Atoi(aws.ToString(f.Id))
			if convErr != nil || i < 0 || i >= len(items) {
				continue
			}
			items[i].err = fmt.Errorf("sqs SendMessageBatch: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	for _, it := range items {
		if err != nil {
			it.err = err
		}
		close(it.done)
	}
}
