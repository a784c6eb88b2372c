package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// TestDevStats: GET /v1/stats counts what the list endpoint lists, by
// state, function and queue, and puts the finished tasks in the current
// minute; the queue filter of GET /v1/tasks lists one queue; bad input is
// a 400 problem; drover stats prints the same figures.
func TestDevStats(t *testing.T) {
	b := setupDev(t, func(e *devEnv) { e.Runner.Queues = "default,a,b" })
	var specs []map[string]any
	for i := range 30 {
		switch {
		case i < 20:
			specs = append(specs, map[string]any{"function": "echo", "queue": "a"})
		case i < 27:
			specs = append(specs, map[string]any{"function": "fail", "queue": "b", "max_attempts": 1})
		default:
			specs = append(specs, map[string]any{"function": "echo", "queue": "b", "delay": "10m"})
		}
	}
	var ids []string
	for _, st := range b.submitBatch(t, specs) {
		ids = append(ids, st.ID)
	}
	b.awaitTerminal(t, ids[:27], time.Minute)

	var st task.Stats
	if code, raw := b.do(t, "GET", "/v1/stats", "", nil, &st); code != http.StatusOK {
		t.Fatalf("GET /v1/stats: %d %s", code, raw)
	}
	if st.Total != 30 || st.States[task.Succeeded] != 20 || st.States[task.Failed] != 7 || st.States[task.Queued] != 3 {
		t.Errorf("stats total %d, states %v; want 30 with 20 succeeded, 7 failed, 3 queued", st.Total, st.States)
	}
	if st.Functions["echo"][task.Succeeded] != 20 || st.Functions["fail"][task.Failed] != 7 || st.Queues["b"][task.Queued] != 3 || st.Queues["a"][task.Succeeded] != 20 {
		t.Errorf("by function %v, by queue %v", st.Functions, st.Queues)
	}
	if st.RunnersOnline != 2 {
		t.Errorf("runners online %d, want 2", st.RunnersOnline)
	}
	finished := 0
	for _, m := range st.Minutes {
		finished += m.Succeeded + m.Failed + m.Cancelled
	}
	if len(st.Minutes) != 60 || finished != 27 {
		t.Errorf("%d minutes holding %d finished tasks, want 60 and 27", len(st.Minutes), finished)
	}
	if got := len(b.listAll(t, "&queue=b")); got != 10 {
		t.Errorf("GET /v1/tasks?queue=b lists %d, want 10", got)
	}

	code, raw := b.do(t, "GET", "/v1/stats?x=1", "", nil, nil)
	var p struct{ Status int }
	if code != http.StatusBadRequest || json.Unmarshal(raw, &p) != nil || p.Status != 400 {
		t.Errorf("GET /v1/stats?x=1: %d %s, want a 400 problem", code, raw)
	}

	t.Setenv("DROVER_URL", b.url)
	var out, errOut bytes.Buffer
	if rc := run(context.Background(), []string{"stats"}, &out, &errOut); rc != 0 {
		t.Fatalf("drover stats: exit %d: %s", rc, errOut.String())
	}
	for _, want := range []string{"30 tasks, 2 runners online", "27 finished"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("drover stats output lacks %q:\n%s", want, out.String())
		}
	}
}
