// Package coalesce gathers concurrent requests into rounds without a
// timer: whoever finds no round in flight becomes the leader and runs
// everything pending as one round; requests that arrive meanwhile wait for
// the next one. An idle caller is served at once, busy callers share
// rounds. The runner's status checks and the SQS batch sender use it.
package coalesce

import "sync"

// MaxLeaderRounds bounds how many rounds one caller runs for others
// before it hands the rest to a new goroutine and returns to its own
// work.
const MaxLeaderRounds = 4

// Rounds coalesces requests of type T. Run is called with each round,
// never concurrently; it must settle every request it is given (each
// request carries its own way of reporting back, such as a channel).
type Rounds[T comparable] struct {
	Run func([]T)

	mu      sync.Mutex
	pending []T
	busy    bool
}

// Add queues reqs. If no round is in flight the caller leads: it runs
// rounds until none is pending, for at most MaxLeaderRounds, before Add
// returns. Either way the caller then waits for its requests' outcomes
// in its own way.
func (r *Rounds[T]) Add(reqs ...T) {
	r.mu.Lock()
	r.pending = append(r.pending, reqs...)
	if r.busy {
		r.mu.Unlock()
		return
	}
	r.busy = true
	r.mu.Unlock()
	r.lead(MaxLeaderRounds)
}

// Withdraw takes req out of the pending requests, and reports whether it
// was there: false means a round has taken it and will settle it.
func (r *Rounds[T]) Withdraw(req T) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, p := range r.pending {
		if p == req {
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			return true
		}
	}
	return false
}

func (r *Rounds[T]) lead(rounds int) {
	for range rounds {
		r.mu.Lock()
		round := r.pending
		r.pending = nil
		if len(round) == 0 {
			r.busy = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.Run(round)
	}
	go r.lead(1 << 30)
}
