package main

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/droverhq/drover/internal/embedded"
	"github.com/droverhq/drover/pkg/task"
)

// setupDurableDev starts drover dev on its durable embedded default with
// its data in dataDir: the queues are memq "tasks" and "events" on the
// engine in dataDir/state, shared with the status store.
func setupDurableDev(t *testing.T, dataDir string, tune func(*devEnv)) *devBundle {
	t.Helper()
	b := setupDevWith(t, func(e *devEnv) {
		e.DataDir, e.Durability = dataDir, embedded.Durable
		e.Dispatch.TasksTopic, e.Runner.TasksSubscription = "", ""
		e.Runner.EventsTopic, e.Collect.EventsSubscription = "", ""
		e.Dispatch.Status, e.Runner.Status, e.Collect.Status = "", "", ""
		if tune != nil {
			tune(e)
		}
	}, nil)
	b.tasks, b.events = "tasks", "events"
	return b
}

// TestDevDurableShutdownClosesEngine: a drover dev that stops closes its
// storage engine (the queues give back their references, then the status
// store), so the database is released for the next process.
func TestDevDurableShutdownClosesEngine(t *testing.T) {
	dir := t.TempDir()
	b := setupDurableDev(t, dir, nil)
	var st task.Status
	if code, raw := b.do(t, "POST", "/v1/tasks", "application/json", []byte(`{"function":"echo","args":1}`), &st); code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", code, raw)
	}
	b.awaitTerminal(t, []string{st.ID}, time.Minute)
	b.stop()
	// pebble refuses a second open of a directory its process holds.
	db, err := pebble.Open(filepath.Join(dir, embedded.StateDir), &pebble.Options{})
	if err != nil {
		t.Fatalf("the engine is still open after drover dev stopped: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
