package embedded_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/droverhq/drover/internal/embedded"
	_ "github.com/droverhq/drover/pkg/memstore"
	"github.com/droverhq/drover/pkg/task"
)

// TestStatusCap: the embedded status store, opened from the URL drover
// dev uses (see TestStatusURLIsDevs) with dev's default retention, keeps at most StatusKeep
// finished tasks, dropping those that finished first, and every queued
// task however many finished ones arrive after it.
func TestStatusCap(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100,000 documents")
	}
	ctx := context.Background()
	// The URL Defaults gives drover dev, without the file it saves at
	// shutdown (gob-encoding 100,000 documents would be most of the test).
	store, err := task.OpenStore(ctx, embedded.StatusURL("cap-test", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	store.Retention = 168 * time.Hour // DROVER_RETENTION's default

	const extra = 10
	n := embedded.StatusKeep + extra
	now := time.Now().UTC()
	created := now.Add(-time.Duration(n+1) * time.Second)
	queued := []*task.Status{}
	for range 5 {
		queued = append(queued, &task.Status{ID: task.NewID(created), Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: created})
	}
	if err := store.CreateMany(ctx, queued); err != nil {
		t.Fatal(err)
	}
	// Finished tasks, task i finishing i seconds after the first: the
	// first extra of them are the ones over the cap.
	ids := make([]string, n)
	batch := make([]*task.Event, 0, 1000)
	for i := range n {
		ids[i] = task.NewID(created)
		at := created.Add(time.Duration(i+1) * time.Second)
		batch = append(batch, &task.Event{TaskID: ids[i], Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: created,
			Attempt: 1, Phase: task.PhaseSucceeded, Runner: "r", At: at, StartedAt: at})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := store.Apply(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i, id := range ids {
		if i >= 2*extra && i < n-extra && i%997 != 0 {
			continue // a sample of the middle
		}
		_, err := store.Get(ctx, id)
		switch {
		case i < extra && !errors.Is(err, task.ErrNotFound):
			t.Errorf("finished task %d (of the first %d to finish) kept: %v", i, extra, err)
		case i >= extra && err != nil:
			t.Fatalf("finished task %d dropped, with %d finished after it: %v", i, n-1-i, err)
		}
	}
	for _, st := range queued {
		if got, err := store.Get(ctx, st.ID); err != nil || got.State != task.Queued {
			t.Errorf("queued task %s = %v, %v; want kept", st.ID, got, err)
		}
	}
}

// TestStatusURLIsDevs: the status store Defaults gives drover dev is
// StatusURL's: saved under the data directory in memory mode, journaled
// in the engine under it in durable mode.
func TestStatusURLIsDevs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d, err := embedded.Defaults(dir, time.Minute, embedded.Durable)
	if err != nil {
		t.Fatal(err)
	}
	state, err := filepath.Abs(filepath.Join(dir, embedded.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	if want := embedded.StatusURL("drover", "") + "&dir=" + url.QueryEscape(state); d.Status != want {
		t.Fatalf("Defaults durable status URL %q, want %q", d.Status, want)
	}
	u, err := embedded.Defaults(dir, time.Minute, embedded.Memory)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, "status.gob"))
	if err != nil {
		t.Fatal(err)
	}
	if want := embedded.StatusURL("drover", abs); u.Status != want {
		t.Fatalf("Defaults status URL %q, want %q", u.Status, want)
	}
}
