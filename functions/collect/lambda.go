package app

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/droverhq/drover/internal/collector"
	"github.com/droverhq/drover/internal/lambdaedge"
	"github.com/droverhq/drover/pkg/task"
	"github.com/droverhq/drover/runner"
)

// The Lambda entry points. Each opens its resources once, at cold start,
// and returns the handler lambda.Start serves.

// LambdaDispatch returns the handler for function URL and API Gateway HTTP
// API (payload v2) requests.
func (c *Config) LambdaDispatch(ctx context.Context, log *slog.Logger) (any, error) {
	d, err := c.Open(ctx, PartDispatch)
	if err != nil {
		return nil, err
	}
	return lambdaedge.HTTP(c.API(d, log)), nil
}

// batchDeliveries turns a Lambda SQS batch into deliveries whose Ack and
// Nack mark them done or failed; failed() lists the failed message IDs.
func batchDeliveries(recs []lambdaedge.Record, lease func(lambdaedge.Record) task.LeaseControl) ([]*task.Delivery, func() []string) {
	var (
		mu     sync.Mutex
		failed = map[string]bool{}
	)
	ds := make([]*task.Delivery, len(recs))
	for i, r := range recs {
		id := r.MessageID
		ds[i] = &task.Delivery{
			ID: id, Body: []byte(r.Body), Ack: func() {},
			Nack: func() { mu.Lock(); failed[id] = true; mu.Unlock() },
		}
		if lease != nil {
			ds[i].Lease = lease(r)
		} else {
			ds[i].Lease = receiveCount(r.ReceiveCount)
		}
	}
	return ds, func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := make([]string, 0, len(failed))
		for _, r := range recs {
			if failed[r.MessageID] {
				out = append(out, r.MessageID)
			}
		}
		return out
	}
}

// receiveCount is a LeaseControl that only knows the delivery count.
type receiveCount int

func (n receiveCount) ReceiveCount() int                                { return int(n) }
func (receiveCount) SetVisibility(context.Context, time.Duration) error { return nil }

// LambdaCollect returns the handler for SQS batches from the events queue,
// and from the tasks dead-letter queue when DROVER_DLQ_SUBSCRIPTION names
// it (the same function may be mapped to both).
func (c *Config) LambdaCollect(ctx context.Context, log *slog.Logger) (any, error) {
	d, err := c.Open(ctx, PartCollect)
	if err != nil {
		return nil, err
	}
	col := collector.New(d.Store, d.Archive, log)
	dlqName := ""
	if u, ok := task.SQSQueueURL(c.DLQSubscription); ok {
		dlqName = path.Base(u)
	}
	return lambdaedge.SQS(func(ctx context.Context, recs []lambdaedge.Record) []string {
		var events, dead []lambdaedge.Record
		for _, r := range recs {
			if dlqName != "" && path.Base(r.QueueURL) == dlqName {
				dead = append(dead, r)
			} else {
				events = append(events, r)
			}
		}
		var failed []string
		if len(events) > 0 {
			ds, done := batchDeliveries(events, nil)
			col.Process(ctx, ds)
			failed = append(failed, done()...)
		}
		if len(dead) > 0 {
			ds, done := batchDeliveries(dead, nil)
			col.Sweep(ctx, ds)
			failed = append(failed, done()...)
		}
		return failed
	}), nil
}

// lambdaMargin is kept back from an invocation's deadline to publish the
// outcome of a task cut short and answer the runtime.
const lambdaMargin = 3 * time.Second

// LambdaRunner returns the handler for SQS batches from the tasks queue:
// each task runs bounded by the invocation's remaining time; a retry sets
// the message's visibility to its backoff and reports it failed, so it
// comes back then.
func (c *Config) LambdaRunner(ctx context.Context, log *slog.Logger, register func(*runner.Mux)) (any, error) {
	d, err := c.Open(ctx, PartRunner)
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	client := sqs.NewFromConfig(awsCfg)
	if c.StartedDelay == 0 {
		// An invocation's tasks are short-lived and its events are one
		// batch: keep one "started" event per attempt there.
		c.StartedDelay = -1
	}
	r := c.Runner(d, log, c.RunnerName, register)
	return lambdaedge.SQS(func(ctx context.Context, recs []lambdaedge.Record) []string {
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-lambdaMargin))
			defer cancel()
		}
		ds, failed := batchDeliveries(recs, func(rec lambdaedge.Record) task.LeaseControl {
			return task.NewSQSLease(client, rec.QueueURL, rec.ReceiptHandle, rec.ReceiveCount)
		})
		beat, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(r.Heartbeat())
			defer t.Stop()
			for {
				select {
				case <-beat.Done():
					return
				case <-t.C:
					r.Beat(beat)
				}
			}
		})
		sem := make(chan struct{}, c.Concurrency)
		var work sync.WaitGroup
		for _, dv := range ds {
			sem <- struct{}{}
			work.Go(func() {
				defer func() { <-sem }()
				r.Process(ctx, dv)
			})
		}
		work.Wait()
		stop()
		wg.Wait()
		return failed()
	}), nil
}
