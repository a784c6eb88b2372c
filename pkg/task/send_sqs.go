package task

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
	"gocloud.dev/pubsub"

	"github.com/droverhq/drover/internal/coalesce"
)

// SQS batch limits.
const (
	sqsBatchEntries = 10
	sqsBatchBytes   = 256 << 10
)

// sqsBatchSender sends to one SQS queue in SendMessageBatch calls of up
// to ten messages, coalescing concurrent sends. gocloud's awssqs topic
// batches only what is waiting when a handler is free, and it allows a
// hundred handlers, so concurrent single sends (a runner's outcome
// events, a submit request's task messages) each go out as a batch of
// one. Here sends are gathered into rounds (package coalesce), and each
// round goes out in batches of ten at once: an idle queue is sent to at
// once, a busy one in full batches, with no timer. Each Send still
// returns only once its own message is accepted (or failed), so the
// runner's rule of acking after the outcome is published holds.
type sqsBatchSender struct {
	client   *sqs.Client
	queueURL string
	rounds   coalesce.Rounds[*sqsSend]
}

type sqsSend struct {
	body  []byte
	delay time.Duration
	err   error
	done  chan struct{}
}

// newSQSBatchSender returns a sender for t when it is gocloud's awssqs
// topic opened from rawURL, else nil.
func newSQSBatchSender(t *pubsub.Topic, rawURL string) *sqsBatchSender {
	var client *sqs.Client
	if t == nil || !t.As(&client) || client == nil {
		return nil
	}
	qURL, ok := SQSQueueURL(rawURL)
	if !ok {
		return nil
	}
	s := &sqsBatchSender{client: client, queueURL: qURL}
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
func (s *sqsBatchSender) send(ctx context.Context, items []*sqsSend) {
	s.rounds.Add(items...)
	for _, it := range items {
		select {
		case <-it.done:
			continue
		case <-ctx.Done():
		}
		if s.rounds.Withdraw(it) {
			it.err = ctx.Err()
			continue
		}
		<-it.done // in flight: its outcome is known soon
	}
}

// round sends items in batches of up to ten (and 256 KiB), all at once.
func (s *sqsBatchSender) round(items []*sqsSend) {
	// The round serves several callers: none of their contexts alone
	// should cut it short.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for len(items) > 0 {
		n, size := 0, 0
		for n < len(items) && n < sqsBatchEntries && (n == 0 || size+len(items[n].body) <= sqsBatchBytes) {
			size += len(items[n].body)
			n++
		}
		batch := items[:n]
		items = items[n:]
		wg.Go(func() { s.batch(ctx, batch) })
	}
	wg.Wait()
}

func (s *sqsBatchSender) batch(ctx context.Context, items []*sqsSend) {
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.queueURL), Entries: make([]sqstypes.SendMessageBatchRequestEntry, len(items))}
	for i, it := range items {
		in.Entries[i] = sqstypes.SendMessageBatchRequestEntry{
			Id:          aws.String(strconv.Itoa(i)),
			MessageBody: aws.String(string(it.body)),
		}
		if it.delay > 0 {
			in.Entries[i].DelaySeconds = ceilSeconds(it.delay, SQSMaxDelay)
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
