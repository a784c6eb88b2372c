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

// TestWithdraw synchronises on events, never on sleeps: the first
// request's round signals that it is running before the second is added,
// and a third request proves that the withdrawn one was never run.
func TestWithdraw(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var ran sync.Map
	r := &Rounds[*req]{Run: func(rs []*req) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		for _, q := range rs {
			ran.Store(q.n, true)
			close(q.done)
		}
	}}
	first := &req{n: 1, done: make(chan struct{})}
	go r.Add(first) // leads, and blocks in Run
	<-entered       // the first round is in flight and has taken first
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
	// Rounds run in order: once a later request is settled, every request
	// still pending before it has been run too.
	third := &req{n: 3, done: make(chan struct{})}
	r.Add(third)
	<-third.done
	if _, ok := ran.Load(2); ok {
		t.Fatal("a withdrawn request was run")
	}
}
