package runner

import (
	"context"
	"sync"
	"time"

	"github.com/droverhq/drover/internal/lambdaedge"
	"github.com/droverhq/drover/pkg/task"
)

// lambdaMargin is kept back from an invocation's deadline to publish the
// outcome of a task cut short and answer the runtime.
const lambdaMargin = 3 * time.Second

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
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-lambdaMargin))
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
