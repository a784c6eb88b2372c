package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SDKCeiling is what the raw AWS SDK achieves against the same SQS
// endpoint: messages sent with SendMessageBatch (10), received with
// ReceiveMessage (10) and deleted with DeleteMessageBatch, senders and
// receivers running together; no Drover.
type SDKCeiling struct {
	Messages  int           `json:"messages"`
	Senders   int           `json:"senders"`
	Receivers int           `json:"receivers"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSecond float64       `json:"per_s"`
	// SendPerSecond is the send rate alone (the senders' own elapsed).
	SendPerSecond float64 `json:"send_per_s"`
}

// sqsCeiling measures SDKCeiling on a fresh queue at the endpoint of the
// environment's AWS configuration.
func sqsCeiling(ctx context.Context, o *Options) (*SDKCeiling, error) {
	if !strings.HasPrefix(os.Getenv("DROVER_TASKS_TOPIC"), "awssqs://") {
		return nil, errors.New("DROVER_TASKS_TOPIC is not an awssqs:// queue")
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	c := sqs.NewFromConfig(cfg)
	name := fmt.Sprintf("bench-sdk-%d-%d", os.Getpid(), benchSeq.Add(1))
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: map[string]string{"VisibilityTimeout": "30"}})
	if err != nil {
		return nil, fmt.Errorf("create queue %s: %w", name, err)
	}
	defer c.DeleteQueue(context.WithoutCancel(ctx), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl})

	n := min(o.Tasks, 20000)
	res := &SDKCeiling{Messages: n, Senders: o.Clients, Receivers: o.Runners * o.Concurrency}
	// A body the size of a Drover task message.
	body := `{"v":1,"id":"01JZ0000000000000000000000","function":"noop","queue":"default","timeout_ms":300000,"max_attempts":3,"created_at":"2026-01-01T00:00:00.000000000Z"}`
	var (
		next, got atomic.Int64
		wg        sync.WaitGroup
		firstErr  error
		errOnce   sync.Once
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now()
	var sendEnd atomic.Int64
	var senders sync.WaitGroup
	for range res.Senders {
		senders.Go(func() {
			for {
				first := int(next.Add(10)) - 10
				if first >= n {
					return
				}
				var entries []sqstypes.SendMessageBatchRequestEntry
				for i := first; i < min(first+10, n); i++ {
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(body)})
				}
				out, err := c.SendMessageBatch(rctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries})
				if err == nil && len(out.Failed) > 0 {
					err = fmt.Errorf("send: %d failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
				}
				if err != nil {
					fail(err)
					cancel()
					return
				}
			}
		})
	}
	wg.Go(func() { senders.Wait(); sendEnd.Store(int64(time.Since(t0))) })
	for range res.Receivers {
		wg.Go(func() {
			for rctx.Err() == nil && got.Load() < int64(n) {
				out, err := c.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					if rctx.Err() == nil {
						fail(err)
						cancel()
					}
					return
				}
				if len(out.Messages) == 0 {
					continue
				}
				var del []sqstypes.DeleteMessageBatchRequestEntry
				for i, m := range out.Messages {
					del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
				}
				if _, err := c.DeleteMessageBatch(rctx, &sqs.DeleteMessageBatchInput{QueueUrl: q.QueueUrl, Entries: del}); err != nil {
					// Another receiver may have counted the last message
					// and cancelled rctx under this delete: not a failure.
					if rctx.Err() == nil {
						fail(err)
						cancel()
					}
					return
				}
				if got.Add(int64(len(out.Messages))) >= int64(n) {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	res.Elapsed = time.Since(t0)
	res.PerSecond = float64(got.Load()) / res.Elapsed.Seconds()
	if d := time.Duration(sendEnd.Load()); d > 0 {
		res.SendPerSecond = float64(n) / d.Seconds()
	}
	return res, nil
}

// rawCeilings records what Drover's phases sent per task (when counting)
// and measures the raw SDK's ceilings on the same endpoint with Drover's
// ratios to them. Like is compared with like: the ratios take Drover's
// steady phase (submit and drain concurrently, timed from the first
// submit to the last terminal document), as the raw runs also send and
// receive concurrently, over the same number of messages.
func rawCeilings(ctx context.Context, o *Options, rep *Report) {
	var (
		done      int
		drover    float64
		hasSteady bool
	)
	for _, p := range rep.Phases {
		done += p.Completed
		if p.Name == "steady" {
			drover, hasSteady = p.Throughput, true
		}
	}
	if o.counter != nil {
		rep.Requests = o.counter.since(o.count0, done)
	}
	if !o.SDKCeiling {
		return
	}
	if !hasSteady {
		for _, p := range rep.Phases {
			if p.Name == "burn-down" {
				drover = p.Throughput
			}
		}
		rep.Notes = append(rep.Notes, "no steady phase: the ratios use the burn-down, which drains a queue filled first (on moto, whose SQS costs grow with queue depth, its worst case), while the raw runs send and receive together")
	}
	if c, err := sqsCeiling(ctx, o); err != nil {
		rep.Notes = append(rep.Notes, "SDK ceiling: "+err.Error())
	} else {
		rep.SDK = c
		if c.PerSecond > 0 {
			rep.Ratio = drover / c.PerSecond
		}
	}
	if ctx.Err() != nil {
		return
	}
	if sp, req, err := samePathCeiling(ctx, o); err != nil {
		rep.Notes = append(rep.Notes, "SDK same-path ceiling: "+err.Error())
	} else {
		rep.SamePath, rep.SamePathRequests = sp, req
		if sp.PerSecond > 0 {
			rep.RatioSamePath = drover / sp.PerSecond
		}
	}
}
