package runner

import (
	"context"
	"sync"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// stateChecks batches the status reads that concurrent Process calls make
// before running a delivery (to drop duplicates of finished or cancelled
// tasks) into one Store.States call: whoever finds no read in flight
// becomes the leader and reads for everyone waiting, so an idle runner
// reads at once and a busy one reads in batches, with no timer.
type stateChecks struct {
	store *task.Store

	mu      sync.Mutex
	pending []*stateCheck
	busy    bool
}

type stateCheck struct {
	id    string
	state task.State
	err   error
	done  chan struct{}
}

// maxLeaderRounds bounds how many batches one caller reads for others
// before it hands the rest to a new goroutine and returns to its task.
const maxLeaderRounds = 4

// state returns the state of task id ("" when it has no document).
func (c *stateChecks) state(ctx context.Context, id string) (task.State, error) {
	k := &stateCheck{id: id, done: make(chan struct{})}
	c.mu.Lock()
	c.pending = append(c.pending, k)
	if c.busy {
		c.mu.Unlock()
		select {
		case <-k.done:
			return k.state, k.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	c.busy = true
	c.mu.Unlock()
	c.lead(maxLeaderRounds)
	<-k.done
	return k.state, k.err
}

// lead reads batches until none is pending, for at most rounds batches.
func (c *stateChecks) lead(rounds int) {
	for range rounds {
		c.mu.Lock()
		batch := c.pending
		c.pending = nil
		if len(batch) == 0 {
			c.busy = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.read(batch)
	}
	go c.lead(1 << 30)
}

func (c *stateChecks) read(batch []*stateCheck) {
	// The batch serves several callers: none of their contexts alone
	// should cut it short.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids := make([]string, len(batch))
	for i, k := range batch {
		ids[i] = k.id
	}
	states, err := c.store.States(ctx, ids)
	for i, k := range batch {
		if err != nil {
			k.err = err
		} else {
			k.state = states[i]
		}
		close(k.done)
	}
}
