// Package embedded holds the URLs of the embedded default (drover dev, and
// drover bench's embedded backend): the in-process memq queues, a file
// bucket and the in-process memstore status store.
package embedded

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// StatusKeep is how many finished tasks the embedded status store keeps
// at most (besides DROVER_RETENTION): beyond it, those finished first are
// dropped. Queued and running tasks are always kept.
const StatusKeep = 100_000

// StatusURL is the embedded default's status store: Drover's in-process
// docstore (pkg/memstore) named name, saved to filename at shutdown (none
// if empty), dropping documents at their expires_at and keeping at most
// StatusKeep finished tasks.
func StatusURL(name, filename string) string {
	u := fmt.Sprintf("memstore://%s/id?expiry_field=expires_at&cap=%d&cap_where=kind:task", name, StatusKeep)
	if filename != "" {
		u += "&filename=" + url.QueryEscape(filename)
	}
	return u
}

// MaxQueuedBytes caps the bytes of task messages the embedded tasks queue
// holds (sent and not yet acked; arguments above 192 KiB are in the
// archive, not the message). Past it a submit is refused with 503 and
// Retry-After, and nothing of it is kept: memory stays bounded however
// much is submitted ahead of the runners.
const MaxQueuedBytes = 512 << 20

// URLs are the embedded default's topics, subscriptions, bucket and store.
type URLs struct {
	TasksTopic, TasksSubscription   string
	EventsTopic, EventsSubscription string
	Bucket, Status                  string
}

// QueueURL is the URL of the embedded queue named queue, given the
// default queue's URL u (memq://tasks?...): memq://tasks/<queue>?....
// The default queue keeps u.
func QueueURL(u, queue string) string {
	if queue == "default" {
		return u
	}
	base, query, ok := strings.Cut(u, "?")
	out := base + "/" + url.PathEscape(queue)
	if ok {
		out += "?" + query
	}
	return out
}

// Durability modes of the embedded default (DROVER_DURABILITY).
const (
	// Durable journals the queues and the status store in one storage
	// engine (pkg/durable) under the data directory's StateDir: a task
	// is on disk before dispatch answers 202, and a restart resumes.
	Durable = "durable"
	// Memory keeps the queues in memory only (the status store is saved
	// at a clean shutdown): for tests and throwaway use.
	Memory = "memory"
)

// StateDir is the engine's directory under the data directory.
const StateDir = "state"

// Defaults returns the embedded URLs with data under dataDir (created if
// missing) and the given visibility timeout for the queues, durable
// (mode Durable) or in memory (Memory).
//
// The data is private to the process's user, since it holds every task's
// payload and result: dataDir is made 0700, the bucket creates its
// directories 0700, and the process's umask becomes 077 so that the files
// the bucket and the status store write are 0600.
func Defaults(dataDir string, visibility time.Duration, mode string) (URLs, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return URLs{}, fmt.Errorf("DROVER_DATA_DIR: %w", err)
	}
	privateFiles()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return URLs{}, fmt.Errorf("DROVER_DATA_DIR: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return URLs{}, fmt.Errorf("DROVER_DATA_DIR: %w", err)
	}
	vis := visibility.String()
	u := URLs{
		TasksTopic:         fmt.Sprintf("memq://tasks?maxbytes=%d", MaxQueuedBytes),
		TasksSubscription:  "memq://tasks?visibility=" + vis,
		EventsTopic:        "memq://events",
		EventsSubscription: "memq://events?visibility=" + vis,
		Bucket:             "file://" + filepath.ToSlash(filepath.Join(dir, "archive")) + "?create_dir=1&no_tmp_dir=1&dir_file_mode=0700",
		Status:             StatusURL("drover", filepath.Join(dir, "status.gob")),
	}
	switch mode {
	case Memory:
	case Durable:
		q := "dir=" + url.QueryEscape(filepath.Join(dir, StateDir))
		u.TasksTopic += "&" + q
		u.TasksSubscription += "&" + q
		// Events finish work already taken: they go on when the disk is
		// low, while new tasks are refused (memq lowspace). An event is
		// journaled ahead of the ack of its task's message in the one
		// log, so its send need not wait for a sync (memq sendsync): a
		// crash that loses it loses the ack, and the task comes back.
		u.EventsTopic += "?lowspace=drain&sendsync=ordered&" + q
		u.EventsSubscription += "&lowspace=drain&sendsync=ordered&" + q
		u.Status = StatusURL("drover", "") + "&" + q
	default:
		return URLs{}, fmt.Errorf("DROVER_DURABILITY=%q: want %s or %s", mode, Durable, Memory)
	}
	return u, nil
}
