package memq

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/durable"
	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// reopen forgets the queue in this process and attaches it again from
// dir, as a restart does.
func reopen(t *testing.T, name, dir string) {
	t.Helper()
	Delete(name)
	eng, err := durable.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Attach(name, eng); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Delete(name) })
}

func receiveAll(t *testing.T, s *subscription, n int, within time.Duration) []*taskdriver.Delivery {
	t.Helper()
	var got []*taskdriver.Delivery
	deadline := time.Now().Add(within)
	for len(got) < n && time.Now().Before(deadline) {
		ds, err := s.ReceiveDirect(context.Background(), n-len(got))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
	}
	return got
}

// TestDurableRestart: after a restart on the same data directory, acked
// messages stay gone, ready ones are delivered, an in-flight one comes
// back only when its lease ends with its delivery count kept, and a
// delayed one keeps its due time.
func TestDurableRestart(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName(t.Name())
	reopen(t, name, dir)
	tp := &topic{q: getQueue(name)}
	ctx := context.Background()
	bodies := [][]byte{[]byte("acked"), []byte("inflight"), []byte("ready")}
	if err := tp.SendDirect(ctx, bodies, nil); err != nil {
		t.Fatal(err)
	}
	if err := tp.SendDirect(ctx, [][]byte{[]byte("delayed")}, []time.Duration{3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	sub, err := newSubscription(getQueue(name), &SubscriptionOptions{Visibility: time.Minute, Wait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ds := receiveAll(t, sub, 2, 5*time.Second)
	if len(ds) != 2 {
		t.Fatalf("received %d, want 2", len(ds))
	}
	ds[0].Ack()
	if err := ds[1].Lease.SetVisibility(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()

	reopen(t, name, dir) // nothing synced since the sends but the journal's order
	ready, inFlight, delayed := Recovered(name)
	if ready != 1 || inFlight != 1 || delayed != 1 {
		t.Fatalf("recovered ready=%d in-flight=%d delayed=%d, want 1 each", ready, inFlight, delayed)
	}
	sub, err = newSubscription(getQueue(name), &SubscriptionOptions{Visibility: time.Minute, Wait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]time.Time{}
	counts := map[string]int{}
	for _, d := range receiveAll(t, sub, 3, 30*time.Second) {
		seen[string(d.Body)] = time.Now()
		counts[string(d.Body)] = d.Lease.ReceiveCount()
		d.Ack()
	}
	if len(seen) != 3 {
		t.Fatalf("after restart got %v, want ready, inflight and delayed", seen)
	}
	if _, ok := seen["acked"]; ok {
		t.Fatal("an acked message came back")
	}
	if at := seen["inflight"]; at.Sub(sent) < 2*time.Second {
		t.Errorf("in-flight message delivered %v after its lease was set to 2s", at.Sub(sent))
	}
	if counts["inflight"] != 2 {
		t.Errorf("in-flight message's receive count %d, want 2", counts["inflight"])
	}
	if at := seen["delayed"]; at.Sub(sent) < 2500*time.Millisecond {
		t.Errorf("delayed message delivered %v after send, want ≥ its 3s delay", at.Sub(sent))
	}
	reopen(t, name, dir)
	if r, i, d := Recovered(name); r+i+d != 0 {
		t.Errorf("after acking all, recovered %d %d %d", r, i, d)
	}
}

// TestMaxBytes: a topic's cap on the bytes its queue holds refuses a
// batch that would pass it whole (ResourceExhausted, ErrNotSent), counts
// bytes free again once acked, and counts what a restart recovers.
func TestMaxBytes(t *testing.T) {
	for _, durableQueue := range []bool{false, true} {
		name := uniqueName(t.Name())
		dir := t.TempDir()
		if durableQueue {
			reopen(t, name, dir)
		} else {
			t.Cleanup(func() { Delete(name) })
		}
		tp := &topic{q: getQueue(name), maxBytes: 10}
		ctx := context.Background()
		if err := tp.SendDirect(ctx, [][]byte{[]byte("123456")}, nil); err != nil {
			t.Fatal(err)
		}
		err := tp.SendDirect(ctx, [][]byte{[]byte("12"), []byte("345")}, nil)
		if taskdriver.Code(err) != gcerrors.ResourceExhausted || !errors.Is(err, taskdriver.ErrNotSent) || !strings.Contains(err.Error(), "full") {
			t.Fatalf("durable=%v: over the cap: %v, want ResourceExhausted, ErrNotSent, naming the full queue", durableQueue, err)
		}
		if st := Stats(name); st.Len() != 1 || st.Bytes != 6 {
			t.Fatalf("durable=%v: after a refused batch: %+v, want the first message only (6 bytes)", durableQueue, st)
		}
		if durableQueue {
			reopen(t, name, dir)
			if st := Stats(name); st.Bytes != 6 {
				t.Fatalf("after a restart: %d bytes held, want 6", st.Bytes)
			}
			tp = &topic{q: getQueue(name), maxBytes: 10}
		}
		sub, err := newSubscription(getQueue(name), &SubscriptionOptions{Wait: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ds := receiveAll(t, sub, 1, 30*time.Second)
		if len(ds) != 1 {
			t.Fatalf("durable=%v: received %d, want 1", durableQueue, len(ds))
		}
		ds[0].Ack()
		if err := tp.SendDirect(ctx, [][]byte{[]byte("12"), []byte("345")}, nil); err != nil {
			t.Fatalf("durable=%v: after the ack: %v", durableQueue, err)
		}
		if st := Stats(name); st.Bytes != 5 {
			t.Fatalf("durable=%v: %d bytes held, want 5", durableQueue, st.Bytes)
		}
	}
}
