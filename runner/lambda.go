package runner

import (
	"context"
	"sync"
	"time"

	"github.com/droverhq/drover/internal/lambdaedge"
	"github.com/droverhq/drover/pkg/task"
)

// lambdaMargin is how much of an invocation's remaining time left is
// kept back to publish the outcome of a task cut short, hand messages
// back and answer the runtime: a tenth of it, from 200 ms to 3 s. A fixed
// 3 s left nothing of a 3 s function (Lambda's default timeout): every
// task started with an expired context. A task left less than
// minStartTime is handed back with a backoff, not started (Process).
func lambdaMargin(left time.Duration) time.Duration {
	return min(max(left/10, 200*time.Millisecond), 3*time.Second)
}

// LambdaHandler returns the Lambda handler for SQS batches from the tasks
// queue (lambdaedge.Start serves it): each task runs bounded by the
// invocation's remaining time, Concurrency at once, with the same
// heartbeats as Run; a retry sets the message's visibility to its backoff
// and reports it failed, so it comes back then. lease gives each record's
// lease control (awsq.NewLease over the record's queue and receipt
// handle).
func (r *Runner) LambdaHandler(lease func(lambdaedge.Record) task.LeaseControl) any {
	return lambdaedge.SQS(func(ctx context.Context, recs []lambdaedge.Record) []string {
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-lambdaMargin(time.Until(dl))))
			defer cancel()
		}
		ds, failed := lambdaedge.Deliveries(recs, lease)
		stopHB := r.heartbeats(ctx, false)
		sem := make(chan struct{}, r.cfg.Concurrency)
		var work sync.WaitGroup
		for _, d := range ds {
			sem <- struct{}{}
			work.Go(func() {
				defer func() { <-sem }()
				r.Process(ctx, d)
			})
		}
		work.Wait()
		stopHB()
		return failed()
	})
}
