package memstore

import (
	"context"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/durable"
	"github.com/droverhq/drover/pkg/task"
)

// BenchmarkStatusWriteRead: what the collector does per event on the
// direct path, a read of the status then a replace, on a store holding
// 10 000 documents.
func BenchmarkStatusWriteRead(b *testing.B) {
	ctx := context.Background()
	c, _ := setup(b, nil)
	now := time.Now().UTC()
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = task.NewID(now)
		st := &task.Status{ID: ids[i], Function: "resize", Queue: "default", State: task.Queued,
			MaxAttempts: 3, CreatedAt: now, Kind: task.KindTask, Phase: task.PhaseSubmitted, EventAt: now}
		if _, err := c.WriteDirect(ctx, []any{st}, []bool{true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		st := &task.Status{ID: ids[i%len(ids)]}
		if errs, err := c.GetDirect(ctx, []any{st}); err != nil || errs != nil {
			b.Fatal(err, errs)
		}
		st.State, st.Phase, st.Runner, st.Attempt = task.Succeeded, task.PhaseSucceeded, "host-1", 1
		st.StartedAt, st.FinishedAt, st.EventAt = now, now, now
		if errs, err := c.WriteDirect(ctx, []any{st}, []bool{false}); err != nil || errs != nil {
			b.Fatal(err, errs)
		}
	}
}

// BenchmarkDurableReplaceBatch: a runner's or collector's batch of status
// writes (100 replaces through WriteDirect) on a durable collection, its
// journal on disk (not synced: replaces do not wait).
func BenchmarkDurableReplaceBatch(b *testing.B) {
	ctx := context.Background()
	eng, err := durable.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	c, _ := setup(b, &Options{Engine: eng, Name: "bench"})
	now := time.Now().UTC()
	docs := make([]any, 100)
	create, replace := make([]bool, len(docs)), make([]bool, len(docs))
	for i := range docs {
		create[i] = true
		docs[i] = &task.Status{ID: task.NewID(now), Function: "resize", Queue: "default", State: task.Queued,
			MaxAttempts: 3, CreatedAt: now, Kind: task.KindTask, Phase: task.PhaseSubmitted, EventAt: now}
	}
	if errs, err := c.WriteDirect(ctx, docs, create); err != nil || errs != nil {
		b.Fatal(err, errs)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for _, d := range docs {
			st := d.(*task.Status)
			st.Attempt = i
		}
		if errs, err := c.WriteDirect(ctx, docs, replace); err != nil || errs != nil {
			b.Fatal(err, errs)
		}
	}
}
