package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/droverhq/drover/internal/embedded"
	"github.com/droverhq/drover/pkg/memq"
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
// storage engine (the queues give back their references, every declared
// queue's too, then the status store), so the database is released for
// the next process.
func TestDevDurableShutdownClosesEngine(t *testing.T) {
	for _, c := range []struct{ name, queues, queue string }{{"default", "", "default"}, {"gpu queue", "gpu,default", "gpu"}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			b := setupDurableDev(t, dir, func(e *devEnv) { e.Runner.Queues = c.queues })
			var st task.Status
			body := fmt.Sprintf(`{"function":"echo","args":1,"queue":%q}`, c.queue)
			if code, raw := b.do(t, "POST", "/v1/tasks", "application/json", []byte(body), &st); code != http.StatusAccepted {
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
		})
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted
// when the test ends. It skips only where mounting is not permitted (not
// root).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mounting a tmpfs is not permitted here (%v): run as root to test a full disk", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the file system has about leave bytes
// free.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*int64(st.Bsize) - leave
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for n > 0 {
		w, err := f.Write(buf[:min(int64(len(buf)), n)])
		if err != nil {
			t.Fatalf("fill %s: %v", dir, err)
		}
		n -= int64(w)
	}
	return name
}

// TestDevDiskFull: on a full disk (a 16 MiB tmpfs filled to under the
// engine's reserve) submits answer 503 and keep nothing (not the task, nor
// its idempotency key), the runners take no task, and once space is freed
// everything goes on: the tasks accepted before run, and a refused submit
// retried with its key is a new task that runs.
func TestDevDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, 16<<20)
	b := setupDurableDev(t, filepath.Join(mnt, "data"), nil)

	// Accepted before the disk fills; due once it is full.
	var due []string
	for _, st := range b.submitBatch(t, []map[string]any{
		{"function": "echo", "args": 1, "delay": "2s"},
		{"function": "echo", "args": 2, "delay": "2s"},
		{"function": "echo", "args": 3, "delay": "2s"},
	}) {
		due = append(due, st.ID)
	}
	filler := fill(t, mnt, 256<<10) // under the 1 MiB reserve
	full := time.Now()

	body := []byte(`{"function":"echo","args":"late","idempotency_key":"late-1"}`)
	// The engine looks at the free space at most 100ms after the last
	// look: the next submit sees the disk full.
	time.Sleep(250 * time.Millisecond)
	code, raw := b.do(t, "POST", "/v1/tasks", "application/json", body, nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(raw), "free") {
		t.Fatalf("submit on a full disk: %d %s, want 503 saying the disk is full", code, raw)
	}
	sent := memq.Stats("tasks").Sent
	if code, raw := b.do(t, "POST", "/v1/tasks/batch", "application/json", []byte(`{"tasks":[{"function":"echo"},{"function":"echo"}]}`), nil); code != http.StatusServiceUnavailable {
		t.Fatalf("batch on a full disk: %d %s, want 503", code, raw)
	}
	if got := memq.Stats("tasks").Sent; got != sent {
		t.Errorf("refused submits queued %d messages", got-sent)
	}
	if n := len(b.listAll(t, "")); n != len(due) {
		t.Errorf("%d task documents after refused submits, want the %d accepted before", n, len(due))
	}

	// The accepted tasks fall due while the disk is full: no runner takes
	// them.
	time.Sleep(time.Until(full.Add(4 * time.Second)))
	for _, id := range due {
		if st := b.get(t, id, 0); st.State != task.Queued || st.Attempt != 0 {
			t.Errorf("task %s is %s (attempt %d) on a full disk, want queued and not taken", id, st.State, st.Attempt)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var late task.Status
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		code, raw := b.do(t, "POST", "/v1/tasks", "application/json", body, &late)
		if code == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("submit after space was freed: %d %s", code, raw)
		}
	}
	for id, st := range b.awaitTerminal(t, append(due, late.ID), 2*time.Minute) {
		if st.State != task.Succeeded {
			t.Errorf("task %s ended %s (%s), want succeeded", id, st.State, st.Error)
		}
	}
}
