package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/droverhq/drover/pkg/durable"
	"github.com/droverhq/drover/pkg/memstore"
	"github.com/droverhq/drover/pkg/task"
)

// TestCancelSurvivesPowerCut: a cancel answered to the client is on disk
// (task.Store syncs a durable memstore through taskdriver.Syncer), so a
// power cut right after it cannot bring the task back queued, to run.
func TestCancelSurvivesPowerCut(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewCrashableMem()
	open := func(fs vfs.FS) (*task.Store, func()) {
		eng, err := durable.Open("/cancel", &durable.Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		c, err := memstore.OpenCollection("id", &memstore.Options{Engine: eng, Name: "drover"})
		if err != nil {
			t.Fatal(err)
		}
		return task.NewStore(c), func() { memstore.Crash(c) }
	}
	s, crash := open(fs)
	id := task.NewID(time.Now())
	if err := s.CreateMany(ctx, []*task.Status{{ID: id, Function: "echo", Queue: "default", MaxAttempts: 1, CreatedAt: time.Now().UTC()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, id, "by test"); err != nil {
		t.Fatal(err)
	}
	clone := fs.CrashClone(vfs.CrashCloneCfg{}) // the power cut: only what was synced
	crash()

	s, crash = open(clone)
	defer crash()
	st, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != task.Cancelled {
		t.Fatalf("after a power cut the cancelled task is %s", st.State)
	}
}

// TestCreateManySurvivesPowerCut: a batch of creations is synced once,
// after the last of them, before CreateMany returns (dispatch's 202 for a
// batch): a power cut right after it keeps every one.
func TestCreateManySurvivesPowerCut(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewCrashableMem()
	open := func(fs vfs.FS) (*task.Store, func()) {
		eng, err := durable.Open("/createmany", &durable.Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		c, err := memstore.OpenCollection("id", &memstore.Options{Engine: eng, Name: "drover"})
		if err != nil {
			t.Fatal(err)
		}
		return task.NewStore(c), func() { memstore.Crash(c) }
	}
	s, crash := open(fs)
	var sts []*task.Status
	for range 300 {
		sts = append(sts, &task.Status{ID: task.NewID(time.Now()), Function: "echo", Queue: "default", MaxAttempts: 1, CreatedAt: time.Now().UTC()})
	}
	if err := s.CreateMany(ctx, sts); err != nil {
		t.Fatal(err)
	}
	clone := fs.CrashClone(vfs.CrashCloneCfg{}) // the power cut: only what was synced
	crash()

	s, crash = open(clone)
	defer crash()
	for _, want := range sts {
		st, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("after a power cut, task %s created by CreateMany: %v", want.ID, err)
		}
		if st.State != task.Queued {
			t.Fatalf("after a power cut, task %s is %s, want queued", want.ID, st.State)
		}
	}
}
