package task_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// TestRunnersAmongOtherDocuments: Runners returns exactly the runners seen
// since the given time, whatever else the store holds (tasks, members, a
// group, an idempotency claim) and in whatever order they were written.
func TestRunnersAmongOtherDocuments(t *testing.T) {
	s := cappedStore(t, 1000)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	put := func(id string, seen time.Time) {
		t.Helper()
		if err := s.PutRunner(ctx, &task.RunnerInfo{ID: id, Name: id, Functions: []string{"echo"}, StartedAt: seen, SeenAt: seen}); err != nil {
			t.Fatal(err)
		}
	}
	put("a-old", now.Add(-time.Hour))
	var sts []*task.Status
	for range 50 {
		sts = append(sts, accepted(now))
	}
	if err := s.CreateMany(ctx, sts); err != nil {
		t.Fatal(err)
	}
	put("b", now)
	gid := task.NewID(now)
	if err := s.CreateGroup(ctx, gid, 3, "", task.CallbackID(gid), now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimKey(ctx, "key-1", accepted(now), terms, now); err != nil {
		t.Fatal(err)
	}
	put("~z", now) // ids sort after the prefix whatever their first byte
	put("0", now)

	rs, err := s.Runners(ctx, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.ID)
	}
	slices.Sort(got)
	if want := []string{"0", "b", "~z"}; !slices.Equal(got, want) {
		t.Errorf("runners seen in the last minute: %v, want %v", got, want)
	}
}

// BenchmarkRunners: the runners of a store holding 100,000 finished tasks
// (the embedded default's cap), as dispatch's runner cache reads them
// once a second.
func BenchmarkRunners(b *testing.B) {
	s := cappedStore(b, 200_000)
	ctx := context.Background()
	now := time.Now().UTC()
	for i := range 100 {
		sts := make([]*task.Status, 1000)
		for j := range sts {
			sts[j] = accepted(now)
		}
		if err := s.CreateMany(ctx, sts); err != nil {
			b.Fatal(err)
		}
		if i%25 == 0 {
			id := fmt.Sprint("r", i)
			if err := s.PutRunner(ctx, &task.RunnerInfo{ID: id, Name: id, SeenAt: now}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		rs, err := s.Runners(ctx, now.Add(-time.Minute))
		if err != nil || len(rs) != 4 {
			b.Fatalf("runners %d, %v; want 4", len(rs), err)
		}
	}
}

// TestRunnerIDsSortLast: Runners walks the store's key order from the
// runner prefix, so every other kind's ids must sort below it.
func TestRunnerIDsSortLast(t *testing.T) {
	id := task.NewID(time.Now())
	for what, other := range map[string]string{
		"task": id, "member": task.MemberID(id, 7), "callback": task.CallbackID(id), "chain step": task.NextID(id),
		"group": task.GroupDocID(id), "idempotency claim": task.KeyDocID("any key"), "largest task id": "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
	} {
		if other >= task.RunnerIDPrefix {
			t.Errorf("%s id %q sorts at or above the runner prefix %q", what, other, task.RunnerIDPrefix)
		}
	}
}
