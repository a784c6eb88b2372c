package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// RetryKeyPrefix starts the idempotency key of a retry: a retry of task
// ID is a new task with the key "retry:ID". The key links the new task to
// the old one (its status shows it), and makes a retry idempotent: asking
// again within the idempotency window, or a redrive that was interrupted
// and runs again, returns the same new task and enqueues nothing more.
const RetryKeyPrefix = "retry:"

// Retry re-runs a failed or cancelled task as a new task with the same
// function, queue, arguments, timeout and max_attempts, and the
// idempotency key RetryKeyPrefix+id; the old task keeps its status. It
// reads the task's message from the archive, where the runner keeps it
// when a task ends failed or cancelled (task.RetainedKey) and the sweeper
// when it is dead-lettered (task.DeadLetterKey).
func (s *Service) Retry(ctx context.Context, id string) (*task.Status, error) {
	st, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.State != task.Failed && st.State != task.Cancelled {
		return nil, reject(http.StatusConflict, probConflict, "task %s is %s; only a failed or cancelled task can be retried", id, st.State)
	}
	body, err := s.archive.Get(ctx, task.RetainedKey(id), s.cfg.MaxBody)
	if errors.Is(err, task.ErrNoBlob) {
		body, err = s.archive.Get(ctx, task.DeadLetterKey(id), s.cfg.MaxBody)
	}
	if errors.Is(err, task.ErrNoBlob) {
		return nil, reject(http.StatusConflict, probConflict, "task %s cannot be retried: its message is not in the archive (it is kept once a runner or the dead-letter sweeper has seen the task end; a cancelled task that was never delivered has none yet)", id)
	}
	if err != nil {
		return nil, fmt.Errorf("retry %s: %w", id, err)
	}
	return s.resubmit(ctx, id, body)
}

// resubmit submits the task message body again as a new task keyed
// RetryKeyPrefix+id.
func (s *Service) resubmit(ctx context.Context, id string, body []byte) (*task.Status, error) {
	m, err := task.DecodeMessage(body)
	if err != nil || m.ID != id {
		return nil, fmt.Errorf("retry %s: the kept message is not this task's: %v", id, err)
	}
	args := m.Args
	if m.ArgsRef != "" {
		if args, err = s.archive.Get(ctx, m.ArgsRef, s.cfg.MaxBody); err != nil {
			if errors.Is(err, task.ErrNoBlob) {
				return nil, reject(http.StatusConflict, probConflict, "task %s cannot be retried: its arguments (%s) are no longer in the archive", id, m.ArgsRef)
			}
			return nil, fmt.Errorf("retry %s: %w", id, err)
		}
	}
	sp := task.Spec{
		Function: m.Function, Queue: m.Queue, Args: args, Timeout: task.Duration(m.Timeout()),
		MaxAttempts: m.MaxAttempts, IdempotencyKey: RetryKeyPrefix + id,
	}
	if err := sp.Normalize(); err != nil {
		return nil, fmt.Errorf("retry %s: %w", id, err)
	}
	began := time.Now().UTC()
	sts, err := s.Submit(ctx, []task.Spec{sp})
	if err != nil {
		return nil, err
	}
	if !sts[0].CreatedAt.Before(began) { // a new task, not the first retry again
		s.metrics.Retried(sts[0].Function, sts[0].Queue)
	}
	return sts[0], nil
}

// DeadLetter is a dead-lettered task kept in the archive for redrive.
type DeadLetter struct {
	ID       string    `json:"id"`
	Function string    `json:"function"`
	Queue    string    `json:"queue"`
	At       time.Time `json:"at"` // when the sweeper kept it
}

// DeadLetters lists up to limit dead letters (of queue, if not empty), in
// task ID order.
func (s *Service) DeadLetters(ctx context.Context, queue string, limit int) ([]DeadLetter, error) {
	ls, err := s.archive.List(ctx, task.PrefixDeadLetters, maxDeadLetterScan)
	if err != nil {
		return nil, err
	}
	out := []DeadLetter{}
	for _, l := range ls {
		if len(out) == limit {
			break
		}
		id := strings.TrimPrefix(l.Key, task.PrefixDeadLetters)
		body, err := s.archive.Get(ctx, l.Key, s.cfg.MaxBody)
		if errors.Is(err, task.ErrNoBlob) {
			continue // redriven meanwhile
		}
		if err != nil {
			return nil, err
		}
		m, err := task.DecodeMessage(body)
		if err != nil {
			m = &task.Message{ID: id}
		}
		if queue != "" && m.Queue != queue {
			continue
		}
		out = append(out, DeadLetter{ID: id, Function: m.Function, Queue: m.Queue, At: l.ModTime.UTC()})
	}
	return out, nil
}

// maxDeadLetterScan bounds how many dead letters one listing or redrive
// reads.
const maxDeadLetterScan = 10_000

// Redrive submits up to limit dead letters (of queue, if not empty) again,
// each as a retry of its task (a new task keyed RetryKeyPrefix+ID), and
// deletes each dead letter only once its new task is enqueued. A redrive
// killed midway loses nothing: the dead letters not yet deleted are
// redriven by the next one, and those already enqueued get their first
// retry back (same key) instead of a second one. A dead letter whose task
// succeeded after all is deleted without a retry.
func (s *Service) Redrive(ctx context.Context, queue string, limit int) ([]*task.Status, error) {
	dls, err := s.DeadLetters(ctx, queue, limit)
	if err != nil {
		return nil, err
	}
	out := []*task.Status{}
	for _, dl := range dls {
		key := task.DeadLetterKey(dl.ID)
		body, err := s.archive.Get(ctx, key, s.cfg.MaxBody)
		if errors.Is(err, task.ErrNoBlob) {
			continue
		}
		if err != nil {
			return out, err
		}
		if st, err := s.store.Get(ctx, dl.ID); err == nil && st.State == task.Succeeded {
			if err := s.archive.Delete(ctx, key); err != nil {
				return out, err
			}
			continue
		}
		st, err := s.resubmit(ctx, dl.ID, body)
		if err != nil {
			return out, fmt.Errorf("redrive %s: %w", dl.ID, err)
		}
		if err := s.archive.Delete(ctx, key); err != nil {
			return out, fmt.Errorf("redrive %s: enqueued as %s, but the dead letter stays: %w", dl.ID, st.ID, err)
		}
		s.log.Info("dead letter redriven", "task_id", dl.ID, "new_task_id", st.ID)
		out = append(out, st)
	}
	return out, nil
}
