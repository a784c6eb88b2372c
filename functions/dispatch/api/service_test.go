package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/droverhq/drover/pkg/memq"
	"github.com/droverhq/drover/pkg/task"
)

type serviceBundle struct {
	ctx    context.Context
	svc    *Service
	topic  *task.Topic
	store  *task.Store
	bucket *blob.Bucket
	queue  string
}

// setupService is a Service over a fresh memq queue, memory bucket and
// store, archiving args above 1 KiB; no HTTP.
func setupService(t *testing.T) *serviceBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	q := fmt.Sprintf("service-%d", fuzzSeq.Add(1))
	tp, err := task.OpenTopic(ctx, "memq://"+q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blob.OpenBucket(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	st, err := task.OpenStore(ctx, "mem://"+q+"/id")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()); memq.Delete(q) })
	svc := NewService(tp, task.NewArchive(b), st, nil, Config{PayloadLimit: 1 << 10})
	return &serviceBundle{ctx: ctx, svc: svc, topic: tp, store: st, bucket: b, queue: q}
}

// received takes the task messages waiting on the bundle's queue.
func (b *serviceBundle) received(t *testing.T, n int) []*task.Message {
	t.Helper()
	sub, err := task.OpenSubscription(b.ctx, "memq://"+b.queue+"?visibility=10s")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(context.Background())
	var out []*task.Message
	for len(out) < n {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		d, err := sub.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("received %d of %d messages: %v", len(out), n, err)
		}
		m, err := task.DecodeMessage(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		d.Ack()
		out = append(out, m)
	}
	return out
}

func spec(function, args, key string) task.Spec {
	s := task.Spec{Function: function, Args: json.RawMessage(args), IdempotencyKey: key}
	if err := s.Normalize(); err != nil {
		panic(err)
	}
	return s
}

// TestServiceSubmit: small args travel inline, large ones through the
// archive (claim check); each task has a queued status; the same request
// again with its idempotency key returns the first task and enqueues
// nothing; the key with another request, or twice in a batch, is refused.
func TestServiceSubmit(t *testing.T) {
	b := setupService(t)
	big := `"` + strings.Repeat("x", 2000) + `"`
	var fe *task.FieldError
	if _, err := b.svc.Submit(b.ctx, []task.Spec{spec("echo", big, "k-1"), spec("echo", `2`, "k-1")}); !errors.As(err, &fe) || !strings.Contains(fe.Reason, "k-1") {
		t.Fatalf("one key twice in a batch: %v; want a FieldError naming the key", err)
	}
	sts, err := b.svc.Submit(b.ctx, []task.Spec{spec("echo", `{"x":1}`, ""), spec("echo", big, "k-1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 || sts[0].ID == sts[1].ID {
		t.Fatalf("statuses %+v: want two tasks", sts)
	}
	msgs := b.received(t, 2)
	byID := map[string]*task.Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	if m := byID[sts[0].ID]; m == nil || string(m.Args) != `{"x":1}` || m.ArgsRef != "" {
		t.Errorf("small task's message = %+v; want its args inline", m)
	}
	m := byID[sts[1].ID]
	if m == nil || m.Args != nil || m.ArgsRef != task.PayloadKey(sts[1].ID) {
		t.Fatalf("large task's message = %+v; want a claim check", m)
	}
	if got, err := b.bucket.ReadAll(b.ctx, m.ArgsRef); err != nil || string(got) != big {
		t.Errorf("archived args = %d bytes, %v; want the args", len(got), err)
	}
	for _, st := range sts[:2] {
		doc, err := b.store.Get(b.ctx, st.ID)
		if err != nil || doc.State != task.Queued || doc.Function != "echo" {
			t.Errorf("status of %s = %+v, %v; want queued", st.ID, doc, err)
		}
	}
	again, err := b.svc.Submit(b.ctx, []task.Spec{spec("echo", big, "k-1")})
	if err != nil || again[0].ID != sts[1].ID {
		t.Fatalf("resubmit with the key = %+v, %v; want task %s", again, err, sts[1].ID)
	}
	if _, err := b.svc.Submit(b.ctx, []task.Spec{spec("echo", `3`, "k-1")}); !errors.As(err, &fe) || !strings.Contains(fe.Reason, "k-1") {
		t.Fatalf("the key with another request: %v; want a FieldError naming the key", err)
	}
	if st := memq.Stats(b.queue); st.Sent != 2 {
		t.Errorf("sent %d messages; want 2 (replays enqueue nothing)", st.Sent)
	}
}

// TestServiceRollback: when the tasks cannot be enqueued, Submit fails
// with an EnqueueError and keeps nothing for them: no payload in the
// archive, no idempotency key held, no status.
func TestServiceRollback(t *testing.T) {
	b := setupService(t)
	if err := b.topic.Shutdown(b.ctx); err != nil { // sends fail from now on
		t.Fatal(err)
	}
	big := `"` + strings.Repeat("y", 2000) + `"`
	_, err := b.svc.Submit(b.ctx, []task.Spec{spec("echo", big, "k-2")})
	var ee *EnqueueError
	if !errors.As(err, &ee) || ee.Failed != 1 || len(ee.Enqueued) != 0 {
		t.Fatalf("Submit to a deleted queue: %v; want an EnqueueError for the one task", err)
	}
	it := b.bucket.List(nil)
	if obj, err := it.Next(b.ctx); err == nil {
		t.Errorf("archive still holds %s after the rollback", obj.Key)
	}
	if sts, _, err := b.store.List(b.ctx, task.ListQuery{Limit: 10}); err != nil || len(sts) != 0 {
		t.Errorf("statuses after the rollback: %d, %v; want none", len(sts), err)
	}
	// The key was released: claiming it now gets it.
	if c, err := b.store.ReadKey(b.ctx, "k-2"); err != nil || c != nil {
		t.Errorf("claim after rollback = %+v, %v; want the key free", c, err)
	}
}
