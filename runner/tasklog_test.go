package runner

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/droverhq/drover/pkg/task"
)

// TestTaskLogNamesTheAttempt: a line logged before the attempt is known
// says attempt 0, and every line after it names the attempt, though the
// logger was built (and kept) for the first.
func TestTaskLogNamesTheAttempt(t *testing.T) {
	var buf bytes.Buffer
	l := taskLog{base: slog.New(slog.NewTextHandler(&buf, nil)), m: &task.Message{ID: "t1", Function: "echo", Queue: "default"}}
	l.Warn("lease lost")
	l.setAttempt(2)
	l.Info("task failed")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "attempt=0") || !strings.Contains(lines[1], "task_id=t1 attempt=2 ") {
		t.Fatalf("log lines %q: want attempt=0, then attempt=2", lines)
	}
}
