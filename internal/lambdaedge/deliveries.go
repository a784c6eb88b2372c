package lambdaedge

import (
	"context"
	"sync"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// Deliveries turns an SQS batch into deliveries whose Ack and Nack mark
// them done or failed; failed lists the MessageIDs of those nacked, for
// SQS to return. lease gives each record's lease control; with lease nil,
// a delivery's lease knows only the receive count.
func Deliveries(recs []Record, lease func(Record) task.LeaseControl) (ds []*task.Delivery, failed func() []string) {
	var (
		mu     sync.Mutex
		nacked = map[string]bool{}
	)
	ds = make([]*task.Delivery, len(recs))
	for i, r := range recs {
		id := r.MessageID
		ds[i] = &task.Delivery{
			ID: id, Body: []byte(r.Body), Ack: func() {},
			Nack: func() { mu.Lock(); nacked[id] = true; mu.Unlock() },
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
		out := make([]string, 0, len(nacked))
		for _, r := range recs {
			if nacked[r.MessageID] {
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
