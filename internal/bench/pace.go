package bench

import "time"

// A pacer puts an open-loop client to sleep until its next task is due.
//
// On Linux it sleeps on a timerfd read through the network poller, not on
// a runtime timer. The bench runs the system in its own process, and while
// the garbage collector's idle mark workers hold every P, runtime timers
// fire late, by up to the length of the mark phase
// (https://github.com/golang/go/issues/45632); the poller is checked by
// those workers, timers are not. With time.Sleep, every task due during a
// mark phase was sent late and the lateness, the load generator's and not
// the system's, dominated p99 at 15 000 tasks/s (docs/performance.md,
// round 5).
type pacer interface {
	sleep(d time.Duration)
	close()
}

// timerPacer is the portable pacer.
type timerPacer struct{}

func (timerPacer) sleep(d time.Duration) { time.Sleep(d) }
func (timerPacer) close()                {}
