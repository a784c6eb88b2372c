package collector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/docstore/memdocstore"

	"github.com/droverhq/drover/functions/collect/collector"
	"github.com/droverhq/drover/pkg/memq"
	_ "github.com/droverhq/drover/pkg/memstore"
	"github.com/droverhq/drover/pkg/task"
)

var seq atomic.Int64

// The status stores the collector is tested on: gocloud's memory docstore
// and Drover's embedded one.
var storeURLs = map[string]string{
	"memdocstore": "mem://collect-%d/id",
	"memstore":    "memstore://collect-%d/id",
}

type bundle struct {
	ctx     context.Context
	store   *task.Store
	archive *task.Archive
	col     *collector.Collector
	// writes counts the task documents process wrote, by task.
	mu     sync.Mutex
	writes map[string]int
}

func setup(t *testing.T, storeURL string) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	store, err := task.OpenStore(ctx, fmt.Sprintf(storeURL, seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	archive, err := task.OpenArchive(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{ctx: ctx, store: store, archive: archive, col: collector.New(store, archive, nil), writes: map[string]int{}}
}

// process has the collector process ds, counting the documents it wrote.
func (b *bundle) process(ds []*task.Delivery) {
	for _, st := range b.col.Process(b.ctx, ds) {
		b.mu.Lock()
		b.writes[st.ID]++
		b.mu.Unlock()
	}
}

func (b *bundle) writesOf(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writes[id]
}

// settled counts how each delivery of a batch was settled.
type settled struct {
	mu          sync.Mutex
	acks, nacks map[string]int
}

func (s *settled) delivery(t *testing.T, id string, body []byte) *task.Delivery {
	t.Helper()
	if s.acks == nil {
		s.acks, s.nacks = map[string]int{}, map[string]int{}
	}
	return &task.Delivery{
		ID: id, Body: body,
		Ack:  func() { s.mu.Lock(); s.acks[id]++; s.mu.Unlock() },
		Nack: func() { s.mu.Lock(); s.nacks[id]++; s.mu.Unlock() },
	}
}

func event(t *testing.T, id string, attempt int, phase task.Phase, at time.Time) *task.Event {
	t.Helper()
	e := &task.Event{
		TaskID: id, Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: at.Add(-time.Minute),
		Attempt: attempt, Phase: phase, Runner: fmt.Sprintf("r-%d", attempt), At: at, StartedAt: at.Add(-time.Second),
	}
	switch phase {
	case task.PhaseSucceeded:
		e.Result = json.RawMessage(fmt.Sprintf(`{"attempt":%d}`, attempt))
	case task.PhaseRetrying:
		e.Error, e.NextAttemptAt = "boom", at.Add(time.Second)
	case task.PhaseFailed:
		e.Error = "gave up"
	}
	return e
}

func encode(t *testing.T, e *task.Event) []byte {
	t.Helper()
	b, err := task.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// history is the events of one task that succeeds on its second attempt.
func history(t *testing.T, id string, at time.Time) []*task.Event {
	return []*task.Event{
		event(t, id, 1, task.PhaseStarted, at),
		event(t, id, 1, task.PhaseRetrying, at.Add(time.Second)),
		event(t, id, 2, task.PhaseStarted, at.Add(2*time.Second)),
		event(t, id, 2, task.PhaseSucceeded, at.Add(3*time.Second)),
	}
}

func checkSucceededOnSecond(t *testing.T, b *bundle, id string) {
	t.Helper()
	st, err := b.store.Get(b.ctx, id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	if st.State != task.Succeeded || st.Attempt != 2 || st.Runner != "r-2" || string(st.Result) != `{"attempt":2}` || st.Error != "" {
		t.Errorf("task %s ended %+v; want succeeded on attempt 2 by r-2 with its result", id, st)
	}
}

// TestProcessBatch: a batch holding several events (and duplicates) per
// task, in any order, yields each task's final document with one write
// per task, and every delivery is acked once.
func TestProcessBatch(t *testing.T) {
	for name, url := range storeURLs {
		t.Run(name, func(t *testing.T) {
			b := setup(t, url)
			at := time.Now().UTC().Truncate(time.Millisecond)
			var (
				s   settled
				ds  []*task.Delivery
				ids []string
			)
			for range 20 {
				id := task.NewID(at)
				ids = append(ids, id)
				for k, e := range history(t, id, at) {
					body := encode(t, e)
					ds = append(ds, s.delivery(t, fmt.Sprintf("%s-%d", id, k), body))
					if k%2 == 0 { // a duplicate delivery of every other event
						ds = append(ds, s.delivery(t, fmt.Sprintf("%s-%d-dup", id, k), body))
					}
				}
			}
			rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
			b.process(ds)

			for _, id := range ids {
				checkSucceededOnSecond(t, b, id)
				if n := b.writesOf(id); n != 1 {
					t.Errorf("task %s written %d times by one batch; want 1", id, n)
				}
			}
			for _, d := range ds {
				if s.acks[d.ID] != 1 || s.nacks[d.ID] != 0 {
					t.Errorf("delivery %s: %d acks, %d nacks; want 1 ack", d.ID, s.acks[d.ID], s.nacks[d.ID])
				}
			}

			// The same batch delivered again changes nothing and writes
			// nothing.
			var again settled
			redelivered := make([]*task.Delivery, len(ds))
			for i, d := range ds {
				redelivered[i] = again.delivery(t, d.ID, d.Body)
			}
			b.process(redelivered)
			for _, id := range ids {
				checkSucceededOnSecond(t, b, id)
				if n := b.writesOf(id); n != 1 {
					t.Errorf("task %s written %d times after a redelivered batch; want still 1", id, n)
				}
			}
			for _, d := range redelivered {
				if again.acks[d.ID] != 1 {
					t.Errorf("redelivered %s: %d acks; want 1", d.ID, again.acks[d.ID])
				}
			}
		})
	}
}

// TestProcessConcurrentCollectors: collectors applying the same events
// concurrently, each in its own order and batches, conflict on the
// documents' revisions; every task still ends as the events rank, never
// regressed by a lower event written over a higher one.
func TestProcessConcurrentCollectors(t *testing.T) {
	for name, url := range storeURLs {
		t.Run(name, func(t *testing.T) {
			b := setup(t, url)
			at := time.Now().UTC().Truncate(time.Millisecond)
			var (
				evs []*task.Event
				ids []string
			)
			for range 50 {
				id := task.NewID(at)
				ids = append(ids, id)
				evs = append(evs, history(t, id, at)...)
			}
			var wg sync.WaitGroup
			for c := range 4 {
				col := collector.New(b.store, b.archive, nil)
				rng := rand.New(rand.NewPCG(uint64(c), 7))
				order := rng.Perm(len(evs))
				wg.Go(func() {
					var s settled
					for len(order) > 0 {
						n := min(1+rng.IntN(8), len(order))
						var ds []*task.Delivery
						for _, i := range order[:n] {
							ds = append(ds, s.delivery(t, fmt.Sprint(i), encode(t, evs[i])))
						}
						order = order[n:]
						col.Process(b.ctx, ds)
					}
					for id, n := range s.nacks {
						t.Errorf("collector %d nacked %s %d times: a conflict was not retried", c, id, n)
					}
				})
			}
			wg.Wait()
			for _, id := range ids {
				checkSucceededOnSecond(t, b, id)
			}
		})
	}
}

// TestProcessPoisonAndRunners: an undecodable body is archived and acked,
// leaving no status; runner heartbeats keep the latest per runner.
func TestProcessPoisonAndRunners(t *testing.T) {
	b := setup(t, storeURLs["memstore"])
	at := time.Now().UTC().Truncate(time.Second)
	beat := func(seen time.Time, active int) []byte {
		raw, err := task.EncodeRunner(&task.RunnerInfo{ID: "r-1", Name: "r-1", Functions: []string{"echo"}, Concurrency: 4, Active: active, StartedAt: at, SeenAt: seen})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	var s settled
	ds := []*task.Delivery{
		s.delivery(t, "poison-1", []byte(`{"not":"an event"`)),
		s.delivery(t, "beat-new", beat(at.Add(time.Second), 3)),
		s.delivery(t, "beat-old", beat(at, 1)),
	}
	b.col.Process(b.ctx, ds)
	for _, d := range ds {
		if s.acks[d.ID] != 1 || s.nacks[d.ID] != 0 {
			t.Errorf("delivery %s: %d acks, %d nacks; want 1 ack", d.ID, s.acks[d.ID], s.nacks[d.ID])
		}
	}
	got, err := b.archive.Get(b.ctx, task.PoisonKey("poison-1"), 1<<20)
	if err != nil || string(got) != `{"not":"an event"` {
		t.Errorf("archived poison = %q, %v; want the body", got, err)
	}
	if sts, _, err := b.store.List(b.ctx, task.ListQuery{Limit: 10}); err != nil || len(sts) != 0 {
		t.Errorf("statuses after poison: %d, %v; want none", len(sts), err)
	}
	rs, err := b.store.Runners(b.ctx, at.Add(-time.Minute))
	if err != nil || len(rs) != 1 || rs[0].Active != 3 || !rs[0].SeenAt.Equal(at.Add(time.Second)) {
		t.Errorf("runners = %+v, %v; want r-1 as last seen (active 3)", rs, err)
	}
}

// TestProcessStoreDown: when the store cannot be written, the events are
// nacked (they come back), not acked.
func TestProcessStoreDown(t *testing.T) {
	b := setup(t, storeURLs["memdocstore"])
	if err := b.store.Close(); err != nil {
		t.Fatal(err)
	}
	var s settled
	d := s.delivery(t, "e-1", encode(t, event(t, task.NewID(time.Now()), 1, task.PhaseStarted, time.Now().UTC())))
	b.col.Process(b.ctx, []*task.Delivery{d})
	if s.nacks["e-1"] != 1 || s.acks["e-1"] != 0 {
		t.Errorf("with the store closed: %d acks, %d nacks; want 1 nack", s.acks["e-1"], s.nacks["e-1"])
	}
}

// leased is a delivery's lease that knows only its receive count.
type leased int

func (n leased) ReceiveCount() int                                { return int(n) }
func (leased) SetVisibility(context.Context, time.Duration) error { return nil }

// TestSweep: a dead-lettered task message becomes a failed status naming
// its deliveries; a task that already succeeded keeps its outcome.
func TestSweep(t *testing.T) {
	b := setup(t, storeURLs["memstore"])
	at := time.Now().UTC().Truncate(time.Millisecond)
	lost, done := task.NewID(at), task.NewID(at)
	for _, e := range history(t, done, at) {
		var s settled
		b.col.Process(b.ctx, []*task.Delivery{s.delivery(t, "h", encode(t, e))})
	}
	var s settled
	var ds []*task.Delivery
	for _, id := range []string{lost, done} {
		raw, err := task.EncodeMessage(&task.Message{ID: id, Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: at, TimeoutMS: 1000})
		if err != nil {
			t.Fatal(err)
		}
		d := s.delivery(t, "dlq-"+id, raw)
		d.Lease = leased(5)
		ds = append(ds, d)
	}
	ds = append(ds, s.delivery(t, "dlq-garbage", []byte("garbage")))
	b.col.Sweep(b.ctx, ds)
	for _, d := range ds {
		if s.acks[d.ID] != 1 {
			t.Errorf("dead letter %s: %d acks; want 1", d.ID, s.acks[d.ID])
		}
	}
	st, err := b.store.Get(b.ctx, lost)
	// Five deliveries, none of which started it: attempt 0 (attempts
	// count executions), the deliveries named in the error.
	if err != nil || st.State != task.Failed || st.Attempt != 0 || st.Error != "dead-lettered after 5 deliveries without an outcome" {
		t.Errorf("dead-lettered task = %+v, %v; want failed at attempt 0 after 5 deliveries", st, err)
	}
	checkSucceededOnSecond(t, b, done)
	if _, err := b.archive.Get(b.ctx, task.PoisonKey("dlq-garbage"), 1<<20); err != nil {
		t.Errorf("undecodable dead letter not archived: %v", err)
	}
}

// TestRun: events published on a memq topic reach the store through Run,
// which stops when its context ends.
func TestRun(t *testing.T) {
	b := setup(t, storeURLs["memstore"])
	q := fmt.Sprintf("collect-run-%d", seq.Add(1))
	t.Cleanup(func() { memq.Delete(q) })
	topic, err := task.OpenTopic(b.ctx, "memq://"+q)
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(b.ctx)
	at := time.Now().UTC().Truncate(time.Millisecond)
	var ids []string
	var bodies [][]byte
	for range 30 {
		id := task.NewID(at)
		ids = append(ids, id)
		for _, e := range history(t, id, at) {
			bodies = append(bodies, encode(t, e))
		}
	}
	if failed := topic.SendAll(b.ctx, bodies, nil); len(failed) > 0 {
		t.Fatal(failed)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- b.col.Run(ctx, task.URLOpener("memq://"+q+"?visibility=10s")) }()
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			st, err := b.store.Get(b.ctx, id)
			if err == nil && st.State == task.Succeeded {
				break
			}
			if err != nil && !errors.Is(err, task.ErrNotFound) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s not collected: %+v", id, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
		checkSucceededOnSecond(t, b, id)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if st := memq.Stats(q); st.Ready+st.InFlight+st.Delayed != 0 {
		t.Errorf("events left on the queue after collection: %+v", st)
	}
}
