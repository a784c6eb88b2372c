package main

import (
	"context"
	"path"

	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/internal/lambdaedge"
	"github.com/droverhq/drover/pkg/awsq"
)

// lambdaHandler returns the handler for SQS batches from the events
// queue, and from the tasks dead-letter queue when dlqSubscription names
// it (the same function may be mapped to both).
func lambdaHandler(col *collector.Collector, dlqSubscription string) any {
	dlqName := ""
	if u, ok := awsq.QueueURL(dlqSubscription); ok {
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
			ds, done := lambdaedge.Deliveries(events, nil)
			col.Process(ctx, ds)
			failed = append(failed, done()...)
		}
		if len(dead) > 0 {
			ds, done := lambdaedge.Deliveries(dead, nil)
			col.Sweep(ctx, ds)
			failed = append(failed, done()...)
		}
		return failed
	})
}
