package runner

import (
	"context"
	"time"

	"github.com/droverhq/drover/internal/coalesce"
	"github.com/droverhq/drover/pkg/task"
)

// stateChecks batches the status reads that concurrent Process calls make
// before running a delivery (to drop duplicates of finished or cancelled
// tasks) into one Store.States call per round (package coalesce): an idle
// runner reads at once and a busy one reads in batches, with no timer.
type stateChecks struct {
	store  *task.Store
	rounds coalesce.Rounds[*stateCheck]
}

func newStateChecks(store *task.Store) *stateChecks {
	c := &stateChecks{store: store}
	c.rounds.Run = c.read
	return c
}

type stateCheck struct {
	id    string
	state task.State
	err   error
	done  chan struct{}
}

// state returns the state of task id ("" when it has no document).
func (c *stateChecks) state(ctx context.Context, id string) (task.State, error) {
	k := &stateCheck{id: id, done: make(chan struct{})}
	c.rounds.Add(k)
	select {
	case <-k.done:
		return k.state, k.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
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
