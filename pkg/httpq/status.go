package httpq

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// Statuses is a remote runner's view of the status store (it satisfies
// runner.Statuses): the dispatcher records starts and reads states.
type Statuses struct{ r *Remote }

// StartMany records the start of each event's execution (POST
// /v1/tasks/starts; see task.Store.StartMany). It is not retried: a start
// whose answer was lost may have been recorded, and the runner hands the
// message back rather than guess.
func (s *Statuses) StartMany(ctx context.Context, evs []*task.Event) ([]task.Started, error) {
	raw := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		e := *ev
		e.Phase = task.PhaseStarted // what it records; StartMany numbers the attempt
		b, err := task.EncodeEvent(&e)
		if err != nil {
			return nil, fmt.Errorf("encode the start of %s: %w", ev.TaskID, err)
		}
		raw[i] = b
	}
	var out struct {
		Started []struct {
			Attempt int        `json:"attempt"`
			State   task.State `json:"state"`
			GaveUp  bool       `json:"gave_up"`
			Last    time.Time  `json:"last_started_at"`
		} `json:"started"`
	}
	if err := s.r.call(ctx, http.MethodPost, "/v1/tasks/starts", map[string]any{"events": raw}, &out); err != nil {
		return nil, fmt.Errorf("record the start of %d tasks (first %s): %w", len(evs), evs[0].TaskID, err)
	}
	if len(out.Started) != len(evs) {
		return nil, fmt.Errorf("record the start of %d tasks: the dispatcher answered %d", len(evs), len(out.Started))
	}
	res := make([]task.Started, len(evs))
	for i, st := range out.Started {
		res[i] = task.Started{Attempt: st.Attempt, State: st.State, GaveUp: st.GaveUp, LastStartedAt: st.Last}
	}
	return res, nil
}

// GetMany returns the states of ids (POST /v1/tasks/states) as statuses
// with only ID and State set, nil where a task has no document.
func (s *Statuses) GetMany(ctx context.Context, ids []string) ([]*task.Status, error) {
	var out struct {
		States []task.State `json:"states"`
	}
	if err := s.r.call(ctx, http.MethodPost, "/v1/tasks/states", map[string]any{"ids": ids}, &out); err != nil {
		return nil, fmt.Errorf("read the states of %d running tasks: %w", len(ids), err)
	}
	if len(out.States) != len(ids) {
		return nil, fmt.Errorf("read the states of %d tasks: the dispatcher answered %d", len(ids), len(out.States))
	}
	sts := make([]*task.Status, len(ids))
	for i, st := range out.States {
		if st != "" {
			sts[i] = &task.Status{ID: ids[i], State: st}
		}
	}
	return sts, nil
}
