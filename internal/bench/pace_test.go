package bench

import (
	"testing"
	"time"
)

// TestPacerSleeps: the pacer sleeps at least as long as asked, again and
// again on one descriptor, and returns at once for nothing.
func TestPacerSleeps(t *testing.T) {
	p := newPacer()
	defer p.close()
	for _, d := range []time.Duration{0, time.Millisecond, 3 * time.Millisecond, 50 * time.Microsecond} {
		start := time.Now()
		p.sleep(d)
		if got := time.Since(start); got < d {
			t.Fatalf("sleep(%v) returned after %v", d, got)
		}
	}
}
