package coalesce

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type req struct {
	n    int
	done chan struct{}
}

// TestRounds: every request is settled exactly once, rounds never
// overlap, and concurrent requests share rounds.
func TestRounds(t *testing.T) {
	var (
		running  atomic.Int32
		rounds   atomic.Int32
		settled  sync.Map
		overlaps atomic.Int32
	)
	r := &Rounds[*req]{Run: func(rs []*req) {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		rounds.Add(1)
		time.Sleep(time.Millisecond)
		for _, q := range rs {
			if _, dup := settled.LoadOrStore(q.n, true); dup {
				t.Errorf("request %d settled twice", q.n)
			}
			close(q.done)
		}
		running.Add(-1)
	}}
	const n = 2000
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			q := &req{n: i, done: make(chan struct{})}
			r.Add(q)
			<-q.done
		})
	}
	wg.Wait()
	if overlaps.Load() > 0 {
		t.Errorf("%d rounds ran concurrently", overlaps.Load())
	}
	if got := rounds.Load(); got >= n/2 {
		t.Errorf("%d rounds for %d concurrent requests: they were not coalesced", got, n)
	}
	// An idle caller leads its own round at once.
	q := &req{n: -1, done: make(chan struct{})}
	r.Add(q)
	select {
	case <-q.done:
	default:
		t.Error("an idle caller's request was not run before Add returned")
	}
}

func TestWithdraw(t *testing.T) {
	release := make(chan struct{})
	r := &Rounds[*req]{Run: func(rs []*req) {
		<-release
		for _, q := range rs {
			close(q.done)
		}
	}}
	first := &req{n: 1, done: make(chan struct{})}
	go r.Add(first) // leads, and blocks in Run
	time.Sleep(10 * time.Millisecond)
	second := &req{n: 2, done: make(chan struct{})}
	r.Add(second) // pending behind the round in flight
	if !r.Withdraw(second) {
		t.Fatal("a pending request could not be withdrawn")
	}
	if r.Withdraw(first) {
		t.Fatal("a request a round had taken was withdrawn")
	}
	close(release)
	<-first.done
	select {
	case <-second.done:
		t.Fatal("a withdrawn request was run")
	case <-time.After(20 * time.Millisecond):
	}
}
