package bench

import (
	"testing"
	"time"
)

// TestScheduleLinger: with a linger, an open-loop client holds due tasks
// back until the oldest has waited the linger, unless a full request is
// waiting; without one it sends whatever is due.
func TestScheduleLinger(t *testing.T) {
	t0 := time.Now().Add(-10 * time.Millisecond) // at 1000/s, about 11 tasks are due
	for _, c := range []struct {
		name     string
		linger   time.Duration
		max      int
		wantSend bool
	}{
		{"no linger", 0, 1000, true},
		{"oldest has waited long enough", 5 * time.Millisecond, 1000, true},
		{"oldest is still lingering", time.Hour, 1000, false},
		{"full request goes at once", time.Hour, 5, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &schedule{count: 100000, rate: 1000, t0: t0, linger: c.linger}
			first, n, wait := g.take(c.max)
			if c.wantSend {
				if first != 0 || n < min(10, c.max) || n > c.max {
					t.Fatalf("take = %d, %d, %v; want the first %d-odd tasks", first, n, wait, min(11, c.max))
				}
				return
			}
			if n != 0 || wait < 59*time.Minute {
				t.Fatalf("take = %d, %d, %v; want nothing for about the linger", first, n, wait)
			}
		})
	}
}
