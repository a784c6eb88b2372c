package collector

import (
	"context"
	"fmt"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// Sweep turns task messages that landed in the dead-letter queue (the
// queue's redrive policy gave up on them) into failed statuses, and acks
// them. A task that already ended keeps its outcome: a failed event never
// outranks an earlier terminal one.
func (c *Collector) Sweep(ctx context.Context, ds []*task.Delivery) {
	var (
		events  []*task.Event
		holders []*task.Delivery
		ids     []string
	)
	for _, d := range ds {
		m, err := task.DecodeMessage(d.Body)
		if err != nil {
			c.poison(ctx, d, err)
			continue
		}
		e := task.NewEvent(m, 0, "dead-letter-sweeper", time.Now().UTC())
		e.Phase, e.Error = task.PhaseFailed, fmt.Sprintf("dead-lettered after %d deliveries without an outcome", d.Attempt())
		events = append(events, &e)
		holders = append(holders, d)
		ids = append(ids, m.ID)
	}
	// The failure is of the last attempt that started (the status
	// counts them), not of the delivery count: deliveries that started
	// nothing are no attempts.
	cur, err := c.store.GetMany(ctx, ids)
	if err != nil {
		c.log.Error("could not read dead-lettered tasks; they will come back", "tasks", len(events), "err", err)
		for _, d := range holders {
			d.Nack()
		}
		return
	}
	for i, st := range cur {
		if st != nil {
			events[i].Attempt, events[i].StartedAt = st.Attempt, st.StartedAt
		}
	}
	if _, err := c.store.Apply(ctx, events); err != nil {
		c.log.Error("could not record dead-lettered tasks; they will come back", "tasks", len(events), "err", err)
		for _, d := range holders {
			d.Nack()
		}
		return
	}
	for i, d := range holders {
		c.metrics.DeadLettered(events[i].Function, events[i].Queue)
		c.log.Warn("dead-lettered task marked failed", "task_id", events[i].TaskID, "attempt", events[i].Attempt)
		d.Ack()
	}
}

// RunSweeper sweeps the dead-letter queue until ctx is done.
func (c *Collector) RunSweeper(ctx context.Context, open task.Opener) error {
	return Receive(ctx, c.log, "dead letters", open, 100, func(ds []*task.Delivery) {
		c.Sweep(context.WithoutCancel(ctx), ds)
	})
}
