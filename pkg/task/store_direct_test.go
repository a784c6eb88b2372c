package task_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"gocloud.dev/docstore"
	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/memstore"
	"github.com/droverhq/drover/pkg/task"
)

func openMemstore(t *testing.T) *docstore.Collection {
	t.Helper()
	c, err := memstore.OpenCollection("id", &memstore.Options{ExpiryField: "expires_at", Cap: 1000, CapField: "kind", CapValue: task.KindTask})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStoreApplyShuffledConcurrentMemstore is the shuffled, duplicated,
// racing collectors test on memstore, through its direct path and through
// action lists.
func TestStoreApplyShuffledConcurrentMemstore(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		s := task.NewStore(openMemstore(t))
		if !s.Direct() {
			t.Fatal("memstore does not offer task.DirectCollection")
		}
		task.ApplyShuffledConcurrent(t, s)
	})
	t.Run("portable", func(t *testing.T) {
		task.ApplyShuffledConcurrent(t, task.NewPortableStore(openMemstore(t)))
	})
}

// TestDirectMatchesPortable runs the same script of Store calls on two
// memstore collections, one through the direct path and one through
// action lists, and checks that every call returns the same documents and
// the same kind of error.
func TestDirectMatchesPortable(t *testing.T) {
	ctx := context.Background()
	direct, portable := task.NewStore(openMemstore(t)), task.NewPortableStore(openMemstore(t))
	defer direct.Close()
	defer portable.Close()
	if !direct.Direct() || portable.Direct() {
		t.Fatal("the two stores do not take the two paths")
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := []string{task.NewID(base), task.NewID(base), task.NewID(base), task.NewID(base)}
	for _, s := range []*task.Store{direct, portable} {
		s.Retention = time.Hour
	}
	ev := func(id string, attempt int, phase task.Phase, at time.Duration) *task.Event {
		e := &task.Event{
			TaskID: id, Function: "f", Queue: "default", MaxAttempts: 3, CreatedAt: base,
			Attempt: attempt, Phase: phase, Runner: "r1", At: base.Add(at), StartedAt: base.Add(at / 2),
		}
		if phase == task.PhaseSucceeded {
			e.Result = []byte(`{"ok":true}`)
		}
		return e
	}
	steps := []struct {
		name string
		run  func(*task.Store) (any, error)
	}{
		{"create two", func(s *task.Store) (any, error) {
			return nil, s.CreateMany(ctx, []*task.Status{
				{ID: ids[0], Function: "f", Queue: "default", MaxAttempts: 3, CreatedAt: base},
				{ID: ids[1], Function: "g", Queue: "q", MaxAttempts: 1, CreatedAt: base},
			})
		}},
		{"create one again and a new one", func(s *task.Store) (any, error) {
			return nil, s.CreateMany(ctx, []*task.Status{
				{ID: ids[0], Function: "changed", Queue: "default", MaxAttempts: 3, CreatedAt: base},
				{ID: ids[2], Function: "h", Queue: "default", MaxAttempts: 2, CreatedAt: base},
			})
		}},
		{"runner record under a task-like key", func(s *task.Store) (any, error) {
			return nil, s.PutRunner(ctx, &task.RunnerInfo{ID: "r1", Name: "r1", SeenAt: base})
		}},
		{"get many, one missing, one not a task", func(s *task.Store) (any, error) {
			return s.GetMany(ctx, []string{ids[0], ids[3], "runner:r1", ids[1]})
		}},
		{"states", func(s *task.Store) (any, error) {
			return s.States(ctx, []string{ids[3], ids[0], "runner:r1", ids[2]})
		}},
		{"apply to existing, fresh and duplicate", func(s *task.Store) (any, error) {
			return s.Apply(ctx, []*task.Event{
				ev(ids[0], 1, task.PhaseStarted, time.Second), ev(ids[0], 1, task.PhaseSucceeded, 2*time.Second),
				ev(ids[3], 1, task.PhaseRetrying, time.Second), ev(ids[0], 1, task.PhaseStarted, time.Second),
			})
		}},
		{"get after apply", func(s *task.Store) (any, error) {
			return s.GetMany(ctx, ids)
		}},
		{"cancel a finished and a queued task", func(s *task.Store) (any, error) {
			_, err1 := s.Cancel(ctx, ids[0], "no")
			st, err2 := s.Cancel(ctx, ids[1], "yes")
			if st == nil {
				return nil, errors.Join(err1, err2)
			}
			// Cancel stamps the time: compare the rest.
			return []any{st.State, st.Phase, st.Error, st.Attempt, st.DocstoreRevision}, errors.Join(err1, err2)
		}},
		{"delete and read back", func(s *task.Store) (any, error) {
			if err := s.DeleteMany(ctx, ids[1:2]); err != nil {
				return nil, err
			}
			return s.GetMany(ctx, ids)
		}},
		{"list", func(s *task.Store) (any, error) {
			sts, next, err := s.List(ctx, task.ListQuery{Limit: 2})
			return fmt.Sprint(len(sts), next != ""), err
		}},
	}
	for _, step := range steps {
		dv, derr := step.run(direct)
		pv, perr := step.run(portable)
		if (derr == nil) != (perr == nil) || gcerrors.Code(derr) != gcerrors.Code(perr) || errors.Is(derr, task.ErrTerminal) != errors.Is(perr, task.ErrTerminal) {
			t.Fatalf("%s: direct error %v, portable error %v", step.name, derr, perr)
		}
		if !reflect.DeepEqual(dv, pv) {
			t.Fatalf("%s:\n direct   %s\n portable %s", step.name, show(dv), show(pv))
		}
	}
}

// TestDirectClosed: the direct path refuses a closed collection, as the
// portable one does, instead of answering from memory.
func TestDirectClosed(t *testing.T) {
	s := task.NewStore(openMemstore(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMany(context.Background(), []string{task.NewID(time.Now())}); err == nil {
		t.Fatal("GetMany on a closed store succeeded")
	}
	err := s.CreateMany(context.Background(), []*task.Status{{ID: task.NewID(time.Now()), Function: "f", MaxAttempts: 1}})
	if err == nil {
		t.Fatal("CreateMany on a closed store succeeded")
	}
}

func show(v any) string {
	if sts, ok := v.([]*task.Status); ok {
		out := ""
		for _, st := range sts {
			out += fmt.Sprintf("\n   %+v", st)
		}
		return out
	}
	return fmt.Sprintf("%+v", v)
}
