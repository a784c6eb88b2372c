package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// TestWriteStatusMatchesWriteJSON: writeStatus and writeStatusList answer
// exactly as writeJSON did (status code, headers, body), whether or not
// task's encoder takes the status.
func TestWriteStatusMatchesWriteJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	queued := &task.Status{ID: task.NewID(at), Function: "echo", Queue: "default", State: task.Queued, MaxAttempts: 3,
		CreatedAt: at, IdempotencyKey: "k<&>"}
	done := &task.Status{ID: queued.ID, Function: "echo", Queue: "default", State: task.Succeeded, Attempt: 1,
		MaxAttempts: 3, CreatedAt: at, StartedAt: at.Add(time.Second), FinishedAt: at.Add(2 * time.Second),
		Runner: "r", Result: json.RawMessage(` {"html": "<b>"} `)}
	badTime := &task.Status{ID: "x", CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	badResult := &task.Status{ID: "x", Result: json.RawMessage(`{`)}
	same := func(name string, write, want func(w http.ResponseWriter)) {
		t.Helper()
		got, exp := httptest.NewRecorder(), httptest.NewRecorder()
		write(got)
		want(exp)
		if got.Code != exp.Code || !reflect.DeepEqual(got.Header(), exp.Header()) || got.Body.String() != exp.Body.String() {
			t.Errorf("%s: %d %v %q, writeJSON gives %d %v %q", name, got.Code, got.Header(), got.Body,
				exp.Code, exp.Header(), exp.Body)
		}
	}
	for _, st := range []*task.Status{queued, done, badTime, badResult, {}} {
		same(st.ID, func(w http.ResponseWriter) { writeStatus(w, http.StatusAccepted, st) },
			func(w http.ResponseWriter) { writeJSON(w, http.StatusAccepted, st) })
	}
	for _, sts := range [][]*task.Status{nil, {}, {queued}, {queued, done, nil}, {queued, badTime}, {badResult}} {
		same("list", func(w http.ResponseWriter) { writeStatusList(w, http.StatusOK, sts) },
			func(w http.ResponseWriter) { writeJSON(w, http.StatusOK, map[string]any{"tasks": sts}) })
	}
}
