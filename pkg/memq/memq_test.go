package memq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/driver"

	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

var nameSeq atomic.Int64

// uniqueName returns a queue name no other test uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(prefix, "/", "_"), nameSeq.Add(1))
}

// newPair returns a driver topic and subscription on a fresh queue.
func newPair(t *testing.T, opts SubscriptionOptions) (*topic, *subscription) {
	t.Helper()
	name := uniqueName(t.Name())
	t.Cleanup(func() { Delete(name) })
	s, err := newSubscription(getQueue(name), &opts)
	if err != nil {
		t.Fatal(err)
	}
	return &topic{q: getQueue(name)}, s
}

func send(t *testing.T, tp *topic, bodies ...string) {
	t.Helper()
	ms := make([]*driver.Message, len(bodies))
	for i, b := range bodies {
		ms[i] = &driver.Message{Body: []byte(b)}
	}
	if err := tp.SendBatch(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
}

// receive calls ReceiveBatch until it returns a message or timeout passes.
func receive(t *testing.T, s *subscription, timeout time.Duration) []*driver.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		ms, err := s.ReceiveBatch(ctx, 10)
		if len(ms) > 0 {
			return ms
		}
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
	}
	return nil
}

func lease(t *testing.T, m *driver.Message) taskdriver.LeaseControl {
	t.Helper()
	var lc taskdriver.LeaseControl
	if !m.AsFunc(&lc) {
		t.Fatal("As(*taskdriver.LeaseControl) = false")
	}
	return lc
}

func ack(t *testing.T, s *subscription, ms ...*driver.Message) {
	t.Helper()
	ids := make([]driver.AckID, len(ms))
	for i, m := range ms {
		ids[i] = m.AckID
	}
	if err := s.SendAcks(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
}

func nack(t *testing.T, s *subscription, m *driver.Message) {
	t.Helper()
	if err := s.SendNacks(context.Background(), []driver.AckID{m.AckID}); err != nil {
		t.Fatal(err)
	}
}

func TestSendBeforeSubscribe(t *testing.T) {
	ctx := context.Background()
	name := uniqueName(t.Name())
	top, err := pubsub.OpenTopic(ctx, "memq://"+name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := top.Send(ctx, &pubsub.Message{Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := top.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := Stats(name); got.Ready != 3 {
		t.Fatalf("Stats before subscribe = %+v, want 3 ready", got)
	}
	sub, err := pubsub.OpenSubscription(ctx, "memq://"+name+"?visibility=1m&wait=100ms")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != strconv.Itoa(i) {
			t.Errorf("message %d: body %q, want FIFO order", i, m.Body)
		}
		m.Ack()
	}
	if err := sub.Shutdown(ctx); err != nil { // flushes acks
		t.Fatal(err)
	}
	if got := Stats(name); got.Len() != 0 || got.Sent != 3 || got.Acked != 3 {
		t.Fatalf("Stats after acks = %+v", got)
	}
}

// TestSemantics checks the queue's rules by outcome, never by how fast
// the machine is: a redelivery that must come at once is asked for with
// an hour's visibility (so that only the rule under test can explain
// it), and a redelivery that must wait is checked against its lower
// bound only (timers never fire early; a loaded machine makes them late).
func TestSemantics(t *testing.T) {
	const vis = 60 * time.Millisecond
	tests := []struct {
		name string
		vis  time.Duration // the subscription's visibility; 0: vis
		run  func(t *testing.T, tp *topic, s *subscription)
	}{
		{"VisibilityExpiryRedelivers", 0, func(t *testing.T, tp *topic, s *subscription) {
			send(t, tp, "a")
			start := time.Now()
			m1 := receive(t, s, time.Minute)[0]
			if n := lease(t, m1).ReceiveCount(); n != 1 {
				t.Fatalf("first ReceiveCount = %d", n)
			}
			m2 := receive(t, s, time.Minute)
			if len(m2) != 1 || string(m2[0].Body) != "a" {
				t.Fatalf("no redelivery: %v", m2)
			}
			if el := time.Since(start); el < vis {
				t.Errorf("redelivered after %v, before visibility %v", el, vis)
			}
			if n := lease(t, m2[0]).ReceiveCount(); n != 2 {
				t.Errorf("second ReceiveCount = %d, want 2", n)
			}
		}},
		{"SetVisibilityExtends", 0, func(t *testing.T, tp *topic, s *subscription) {
			send(t, tp, "a")
			lc := lease(t, receive(t, s, time.Minute)[0])
			// Each renewal hides the message for an hour from now: a
			// competing receive lasting several times the subscription's
			// visibility gets nothing. (Were SetVisibility ignored, the
			// message would be back 60 ms after it was taken.)
			for range 3 {
				if err := lc.SetVisibility(context.Background(), time.Hour); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*vis)
				ms, _ := s.ReceiveBatch(ctx, 10)
				cancel()
				if len(ms) > 0 {
					t.Fatalf("redelivered while lease extended, count %d", lease(t, ms[0]).ReceiveCount())
				}
			}
			if st := Stats(s.q.name); st.InFlight != 1 {
				t.Errorf("Stats = %+v, want 1 in flight", st)
			}
			// A renewal counts from the call, not from the receive.
			renewed := time.Now()
			if err := lc.SetVisibility(context.Background(), vis); err != nil {
				t.Fatal(err)
			}
			ms := receive(t, s, time.Minute)
			if el := time.Since(renewed); len(ms) != 1 || el < vis {
				t.Fatalf("got %d messages %v after renewing for %v", len(ms), el, vis)
			}
		}},
		{"SetVisibilityThenNackDelaysRetry", time.Hour, func(t *testing.T, tp *topic, s *subscription) {
			send(t, tp, "a")
			m := receive(t, s, time.Minute)[0]
			const delay = 150 * time.Millisecond
			start := time.Now()
			if err := lease(t, m).SetVisibility(context.Background(), delay); err != nil {
				t.Fatal(err)
			}
			nack(t, s, m)
			ms := receive(t, s, time.Minute)
			if el := time.Since(start); len(ms) != 1 || el < delay {
				t.Errorf("got %d messages after %v, want 1 no sooner than %v", len(ms), el, delay)
			}
		}},
		{"NackRedeliversAtOnce", time.Hour, func(t *testing.T, tp *topic, s *subscription) {
			send(t, tp, "a")
			m := receive(t, s, time.Minute)[0]
			nack(t, s, m)
			// Visible now, not in an hour: no wait is needed to take it.
			ms, err := s.ReceiveBatch(context.Background(), 10)
			if err != nil || len(ms) != 1 {
				t.Fatalf("after nack: got %d messages, %v", len(ms), err)
			}
			if n := lease(t, ms[0]).ReceiveCount(); n != 2 {
				t.Errorf("ReceiveCount = %d, want 2", n)
			}
		}},
		{"SetVisibilityZero", time.Hour, func(t *testing.T, tp *topic, s *subscription) {
			send(t, tp, "a")
			m := receive(t, s, time.Minute)[0]
			if err := lease(t, m).SetVisibility(context.Background(), 0); err != nil {
				t.Fatal(err)
			}
			if ms, err := s.ReceiveBatch(context.Background(), 10); err != nil || len(ms) != 1 {
				t.Fatalf("after SetVisibility(0): got %d messages, %v", len(ms), err)
			}
		}},
		{"DelayedSend", 0, func(t *testing.T, tp *topic, s *subscription) {
			const delay = 100 * time.Millisecond
			start := time.Now()
			err := tp.SendBatch(context.Background(), []*driver.Message{{
				Body:     []byte("later"),
				Metadata: map[string]string{taskdriver.MetadataDelay: strconv.Itoa(int(delay.Milliseconds())), "k": "v"},
			}})
			if err != nil {
				t.Fatal(err)
			}
			if st := Stats(s.q.name); st.Delayed != 1 || st.Ready != 0 {
				t.Errorf("Stats = %+v, want 1 delayed", st)
			}
			ms := receive(t, s, time.Minute)
			if el := time.Since(start); len(ms) != 1 || el < delay {
				t.Fatalf("got %d messages after %v, want 1 after %v", len(ms), el, delay)
			}
			if md := ms[0].Metadata; len(md) != 1 || md["k"] != "v" {
				t.Errorf("metadata = %v, want delay key stripped", md)
			}
		}},
		{"InvalidDelay", 0, func(t *testing.T, tp *topic, s *subscription) {
			for _, v := range []string{"soon", "-1", "99999999999999"} {
				err := tp.SendBatch(context.Background(), []*driver.Message{
					{Body: []byte("ok")},
					{Metadata: map[string]string{taskdriver.MetadataDelay: v}},
				})
				if err == nil || tp.ErrorCode(err) != gcerrors.InvalidArgument {
					t.Errorf("delay %q: err = %v, want InvalidArgument", v, err)
				}
			}
			if st := Stats(s.q.name); st.Len() != 0 {
				t.Errorf("failed batch was partly queued: %+v", st)
			}
		}},
		{"StaleAckIgnored", 0, func(t *testing.T, tp *topic, s *subscription) {
			send(t, tp, "a")
			old := receive(t, s, time.Minute)[0]
			cur := receive(t, s, time.Minute)[0] // after the visibility expired
			if lease(t, cur).ReceiveCount() != 2 {
				t.Fatal("want a redelivery")
			}
			ack(t, s, old)
			nack(t, s, old)
			if err := lease(t, old).SetVisibility(context.Background(), 0); err != ErrStaleDelivery {
				t.Errorf("stale SetVisibility = %v, want ErrStaleDelivery", err)
			}
			if st := Stats(s.q.name); st.InFlight != 1 || st.Acked != 0 {
				t.Fatalf("stale ack/nack touched the new delivery: %+v", st)
			}
			ack(t, s, cur)
			ack(t, s, cur) // double ack is fine
			if st := Stats(s.q.name); st.Len() != 0 || st.Acked != 1 {
				t.Fatalf("Stats after ack = %+v", st)
			}
		}},
		{"LateAckBeforeRedelivery", 0, func(t *testing.T, tp *topic, s *subscription) {
			send(t, tp, "a")
			m := receive(t, s, time.Minute)[0]
			time.Sleep(vis + 10*time.Millisecond)
			ack(t, s, m) // expired but nobody took it again: still current
			if st := Stats(s.q.name); st.Len() != 0 {
				t.Fatalf("Stats = %+v, want empty", st)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if ms, _ := s.ReceiveBatch(ctx, 1); len(ms) != 0 {
				t.Fatal("acked message delivered")
			}
		}},
		{"EmptyReceiveReturnsAfterWait", 0, func(t *testing.T, tp *topic, s *subscription) {
			// Returns empty, not before the wait (30 ms), and not as
			// late as the context's deadline: it gave up on its own.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			ms, err := s.ReceiveBatch(ctx, 1)
			if el := time.Since(start); err != nil || len(ms) != 0 || el < 30*time.Millisecond {
				t.Fatalf("ReceiveBatch = %d, %v after %v; want empty after wait", len(ms), err, el)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := tt.vis
			if v == 0 {
				v = vis
			}
			tp, s := newPair(t, SubscriptionOptions{Visibility: v, Wait: 30 * time.Millisecond})
			tt.run(t, tp, s)
		})
	}
}

// parked reports how many receivers are blocked on s's queue.
func parked(s *subscription) int {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	return len(s.q.waiters)
}

// waitParked waits until n receivers are blocked on s's queue: an event,
// not a guess at how long blocking takes.
func waitParked(t *testing.T, s *subscription, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for parked(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d receivers blocked, want %d", parked(s), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWakeUp checks that a blocked receive returns when a message is
// sent, or when an earlier delay deadline appears, without polling: the
// receive would otherwise sleep for its whole hour-long wait (and end
// with an empty batch at the test's one-minute deadline).
func TestWakeUp(t *testing.T) {
	for _, delay := range []time.Duration{0, 30 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			tp, s := newPair(t, SubscriptionOptions{Wait: time.Hour})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			type result struct {
				n   int
				err error
				at  time.Time
			}
			got := make(chan result, 1)
			go func() {
				ms, err := s.ReceiveBatch(ctx, 1)
				got <- result{len(ms), err, time.Now()}
			}()
			waitParked(t, s, 1)
			sent := time.Now()
			err := tp.SendBatch(context.Background(), []*driver.Message{{
				Body:     []byte("x"),
				Metadata: map[string]string{taskdriver.MetadataDelay: strconv.Itoa(int(delay.Milliseconds()))},
			}})
			if err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.err != nil || r.n != 1 {
				t.Fatalf("blocked ReceiveBatch = %d messages, %v; want woken with 1", r.n, r.err)
			}
			if el := r.at.Sub(sent); el < delay {
				t.Errorf("received %v after sending, before its delay %v", el, delay)
			}
		})
	}
}

func TestReceiveCancel(t *testing.T) {
	_, s := newPair(t, SubscriptionOptions{Wait: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.ReceiveBatch(ctx, 1)
		done <- err
	}()
	waitParked(t, s, 1)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("ReceiveBatch = %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("ReceiveBatch still blocked a minute after its context was cancelled")
	}
}

// TestCompetingConsumers sends 10k messages to one queue read by several
// subscriptions with several goroutines each: every message must be
// received exactly once. The deadline only bounds a hang: on a loaded
// 2-core machine under -race, 10k deliveries took more than 20 s.
func TestCompetingConsumers(t *testing.T) {
	const n, nSubs, perSub = 10000, 4, 4
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := uniqueName(t.Name())
	defer Delete(name)

	var (
		mu   sync.Mutex
		seen = make(map[string]bool, n)
		dups int
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	for range nSubs {
		sub, err := OpenSubscription(name, &SubscriptionOptions{Visibility: time.Minute, Wait: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Shutdown(context.Background())
		for range perSub {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					m, err := sub.Receive(ctx)
					if err != nil {
						return
					}
					m.Ack()
					mu.Lock()
					if seen[string(m.Body)] {
						dups++
					}
					seen[string(m.Body)] = true
					if len(seen) == n {
						close(done)
					}
					mu.Unlock()
				}
			}()
		}
	}
	top := OpenTopic(name, nil)
	defer top.Shutdown(context.Background())
	var sg sync.WaitGroup
	for g := range 10 {
		sg.Add(1)
		go func() {
			defer sg.Done()
			for i := g; i < n; i += 10 {
				if err := top.Send(ctx, &pubsub.Message{Body: []byte(strconv.Itoa(i))}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	sg.Wait()
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	if len(seen) != n || dups != 0 {
		t.Fatalf("received %d distinct of %d, %d duplicates", len(seen), n, dups)
	}
}

// TestMemoryReleased checks that acked messages leave nothing behind in the
// queue's FIFO and heap.
func TestMemoryReleased(t *testing.T) {
	n := 200000
	if testing.Short() {
		n = 20000
	}
	tp, s := newPair(t, SubscriptionOptions{Wait: 10 * time.Millisecond})
	ctx := context.Background()
	batch := make([]*driver.Message, 1000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = &driver.Message{Body: []byte("x")}
		}
		if err := tp.SendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for got := 0; got < n; {
		ms, err := s.ReceiveBatch(ctx, 1000)
		if err != nil || len(ms) == 0 {
			t.Fatalf("ReceiveBatch = %d, %v", len(ms), err)
		}
		ack(t, s, ms...)
		got += len(ms)
	}
	q := s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.nReady+q.nInFlight+q.nDelayed != 0 || len(q.waiting) != 0 || q.ready.n != 0 {
		t.Fatalf("queue not empty: %+v", Stats(q.name))
	}
	if len(q.ready.buf) > 2048 || cap(q.waiting) > 2048 {
		t.Errorf("buffers not shrunk: fifo %d, heap %d", len(q.ready.buf), cap(q.waiting))
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		url     string
		wantErr string // substring of the error, for topics and subscriptions alike; "" for success
	}{
		{"memq://q1", ""},
		{"memq://q1/sub/path?visibility=5m&wait=250ms", ""},
		{"memq://q1?bogus=1", `"bogus"`},
		{"memq://q1?visibility=soon", "visibility"},
		{"memq://q1?visibility=13h", "visibility"},
		{"memq://q1?wait=-1s", "wait"},
		{"memq://q1?maxbytes=1048576", ""},
		{"memq://q1?maxbytes=lots", "maxbytes"},
		{"memq://", "queue name"},
	}
	for _, tt := range tests {
		top, terr := pubsub.OpenTopic(ctx, tt.url)
		sub, serr := pubsub.OpenSubscription(ctx, tt.url)
		for i, err := range []error{terr, serr} {
			kind := []string{"topic", "subscription"}[i]
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("open %s %s: %v", kind, tt.url, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("open %s %s: err = %v, want one mentioning %s", kind, tt.url, err, tt.wantErr)
			}
		}
		if top != nil {
			top.Shutdown(ctx)
		}
		if sub != nil {
			sub.Shutdown(ctx)
		}
	}
}

func TestTopicAs(t *testing.T) {
	top := OpenTopic(uniqueName(t.Name()), nil)
	defer top.Shutdown(context.Background())
	var tf taskdriver.TopicFeatures
	if !top.As(&tf) || tf.MaxDelay() < time.Hour {
		t.Fatal("Topic.As(*taskdriver.TopicFeatures) missing or MaxDelay too small")
	}
}

// TestWakeOne: a message wakes one blocked receiver, not all of them.
//
// The visibility outlasts the receivers' wait, so that taking the message
// schedules no deadline before theirs: such a deadline wakes a second
// receiver (wakeBefore) to re-arm its timer, and the count of receivers
// parked would then depend on how soon that one is scheduled again.
func TestWakeOne(t *testing.T) {
	tp, s := newPair(t, SubscriptionOptions{Wait: time.Hour, Visibility: 2 * time.Hour})
	const n = 8
	var got atomic.Int32
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	for range n {
		wg.Go(func() {
			ds, err := s.ReceiveDirect(ctx, 1)
			if err == nil && len(ds) == 1 {
				got.Add(1)
			}
		})
	}
	waitParked(t, s, n)
	send(t, tp, "one")
	// The send woke one receiver, under the queue's lock: the others are
	// still registered (were they all woken, none would be until each
	// had found the queue empty and parked again).
	if p := parked(s); p != n-1 {
		t.Fatalf("%d receivers still blocked after one message, want %d", p, n-1)
	}
	deadline := time.Now().Add(time.Minute)
	for got.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if g, p := got.Load(), parked(s); g != 1 || p != n-1 {
		t.Fatalf("%d receivers returned and %d blocked for one message, want 1 and %d", g, p, n-1)
	}
	send(t, tp, "2", "3", "4", "5", "6", "7", "8")
	deadline = time.Now().Add(time.Minute)
	for got.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if g := got.Load(); g != n {
		t.Fatalf("%d of %d receivers got a message", g, n)
	}
}

// TestNoLostWakeUps: long-blocked receivers, among short-lived ones
// that give up (cancelled) at random moments, never leave a ready message
// waiting: every message is received promptly, exactly once. A wake-up
// lost to a receiver that gave up would leave its message for the
// blocked receivers' minute-long wait.
func TestNoLostWakeUps(t *testing.T) {
	tp, s := newPair(t, SubscriptionOptions{Wait: time.Minute, Visibility: time.Minute})
	const n = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	take := func(rctx context.Context, max int) {
		ds, _ := s.ReceiveDirect(rctx, max)
		mu.Lock()
		for _, d := range ds {
			seen[string(d.Body)]++
			d.Ack()
		}
		done := len(seen) == n
		mu.Unlock()
		if done {
			cancel()
		}
	}
	for range 6 {
		wg.Go(func() {
			for ctx.Err() == nil {
				take(ctx, 1)
			}
		})
	}
	for i := range n {
		if i%3 == 0 {
			// A receiver that gives up within a few microseconds, often
			// just after being woken.
			wg.Go(func() {
				rctx, rcancel := context.WithTimeout(ctx, time.Duration(i%7)*10*time.Microsecond)
				defer rcancel()
				take(rctx, 1)
			})
		}
		send(t, tp, strconv.Itoa(i))
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("received %d of %d messages before the deadline", len(seen), n)
	}
	for b, c := range seen {
		if c != 1 {
			t.Fatalf("message %s received %d times", b, c)
		}
	}
}
