package memq

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/droverhq/drover/pkg/durable"
)

// TestPowerCut cuts the power at random instants while senders send and
// receivers take and ack: the file system keeps only what was synced
// (pebble's crashable in-memory VFS, CrashClone). Every message whose
// send had returned before the cut, and that had not been acked, must be
// in the queue rebuilt from what survived.
func TestPowerCut(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) { powerCut(t, round) })
	}
}

func powerCut(t *testing.T, round int) {
	fs := vfs.NewCrashableMem()
	dir := fmt.Sprintf("/powercut-%d", round)
	name := uniqueName(t.Name())
	eng, err := durable.Open(dir, &durable.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := Attach(name, eng); err != nil {
		t.Fatal(err)
	}
	q := getQueue(name)
	tp := &topic{q: q}
	sub, err := newSubscription(q, &SubscriptionOptions{Visibility: time.Minute, Wait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var (
		mu    sync.Mutex
		sent  = map[string]bool{} // body → acked
		seq   atomic.Int64
		cutAt atomic.Bool
		wg    sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				var bodies [][]byte
				for range 1 + rand.IntN(8) {
					bodies = append(bodies, fmt.Appendf(nil, "m%d", seq.Add(1)))
				}
				if err := tp.SendDirect(ctx, bodies, nil); err != nil {
					return
				}
				if cutAt.Load() {
					return // returned after the cut began: not counted
				}
				mu.Lock()
				for _, b := range bodies {
					if _, acked := sent[string(b)]; !acked { // a receiver may have been first
						sent[string(b)] = false
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			ds, err := sub.ReceiveDirect(ctx, 4)
			if err != nil {
				return
			}
			for _, d := range ds {
				if rand.IntN(2) == 0 {
					// Acked under mu, so before the cut's snapshot or
					// not at all: an acked message may or may not
					// survive, either is right.
					mu.Lock()
					if !cutAt.Load() {
						sent[string(d.Body)] = true
						d.Ack()
					}
					mu.Unlock()
				}
			}
		}
	})
	time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
	mu.Lock()
	cutAt.Store(true)
	must := map[string]bool{}
	for b, acked := range sent {
		if !acked {
			must[b] = true
		}
	}
	mu.Unlock()
	clone := fs.CrashClone(vfs.CrashCloneCfg{}) // only what was synced
	stop()
	wg.Wait()
	Delete(name)

	eng, err = durable.Open(dir, &durable.Options{FS: clone})
	if err != nil {
		t.Fatalf("reopen after the power cut: %v", err)
	}
	if err := Attach(name, eng); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	got := map[string]bool{}
	q = getQueue(name)
	q.mu.Lock()
	for _, e := range q.ready.buf {
		if e.m != nil && e.m.state == stReady {
			got[string(e.m.body)] = true
		}
	}
	for _, m := range q.waiting {
		got[string(m.body)] = true
	}
	q.mu.Unlock()
	lost := 0
	for b := range must {
		if !got[b] {
			lost++
			if lost < 10 {
				t.Logf("lost %s", b)
			}
		}
	}
	t.Logf("cut after %d sends answered (%d unacked); %d recovered; lost %d", len(sent), len(must), len(got), lost)
	if lost > 0 {
		t.Fatalf("%d messages whose send returned before the power cut were lost", lost)
	}
	if len(must) == 0 {
		t.Fatal("nothing was sent before the cut: the test tested nothing")
	}
}

// TestOrderedSendPowerCut: a send to a sendsync=ordered queue returns
// before its sync, and a power cut can lose it only with what was applied
// after it. A runner's flow on one engine: take a task, publish its
// outcome on the ordered events queue, ack the task. Cut before any sync:
// the event and the ack are both lost, and the task is still there. Cut
// after a later sync (any driver's on the engine, here another task's
// send): both survive.
func TestOrderedSendPowerCut(t *testing.T) {
	for _, syncAfter := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync_after=%v", syncAfter), func(t *testing.T) { orderedSendPowerCut(t, syncAfter) })
	}
}

func orderedSendPowerCut(t *testing.T, syncAfter bool) {
	ctx := context.Background()
	fs := vfs.NewCrashableMem()
	dir := fmt.Sprintf("/ordered-%v", syncAfter)
	tasks, events := uniqueName("tasks"), uniqueName("events")
	attach := func(fs vfs.FS) {
		t.Helper()
		for _, name := range []string{tasks, events} {
			eng, err := durable.Open(dir, &durable.Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			if err := Attach(name, eng); err != nil {
				t.Fatal(err)
			}
		}
		getQueue(events).ordered.Store(true)
	}
	forget := func() { Delete(tasks); Delete(events) }
	attach(fs)
	taskTopic, eventTopic := &topic{q: getQueue(tasks)}, &topic{q: getQueue(events)}
	sub, err := newSubscription(getQueue(tasks), &SubscriptionOptions{Visibility: time.Minute, Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := taskTopic.SendDirect(ctx, [][]byte{[]byte("task-1")}, nil); err != nil {
		t.Fatal(err)
	}
	ds := receiveAll(t, sub, 1, 5*time.Second)
	if len(ds) != 1 {
		t.Fatalf("received %d tasks, want 1", len(ds))
	}
	if err := eventTopic.SendDirect(ctx, [][]byte{[]byte("task-1 succeeded")}, nil); err != nil {
		t.Fatal(err)
	}
	ds[0].Ack()
	if syncAfter {
		if err := taskTopic.SendDirect(ctx, [][]byte{[]byte("task-2")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	cut := fs.CrashClone(vfs.CrashCloneCfg{}) // the power cut: only what was synced
	forget()

	attach(cut)
	defer forget()
	ev, tq := Stats(events), Stats(tasks)
	if !syncAfter {
		if ev.Len() != 0 || tq.Len() != 1 {
			t.Errorf("after a cut before any sync: %d events, %d tasks; want 0 events (lost with the ack after them) and task-1", ev.Len(), tq.Len())
		}
		return
	}
	if ev.Len() != 1 || tq.Len() != 1 {
		t.Errorf("after a cut past a later sync: %d events, %d tasks; want the event, and task-2 only (task-1 acked)", ev.Len(), tq.Len())
	}
}

// TestSendSyncParameter: sendsync takes wait or ordered, nothing else.
func TestSendSyncParameter(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		val     string
		ordered bool
		bad     bool
	}{{"wait", false, false}, {"ordered", true, false}, {"never", false, true}} {
		name := uniqueName("sendsync-" + tc.val)
		u, _ := url.Parse("memq://" + name + "?sendsync=" + tc.val + "&dir=" + url.QueryEscape(dir))
		_, err := parseURL(u, &SubscriptionOptions{}, &TopicOptions{})
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "sendsync") {
				t.Errorf("sendsync=%s: got %v, want an error naming sendsync", tc.val, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("sendsync=%s: %v", tc.val, err)
		}
		if got := getQueue(name).ordered.Load(); got != tc.ordered {
			t.Errorf("sendsync=%s: ordered %v, want %v", tc.val, got, tc.ordered)
		}
		Delete(name)
	}
}
