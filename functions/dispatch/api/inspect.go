package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/droverhq/drover/pkg/task"
)

// maxKeptMessage bounds a kept task message read to find its arguments.
const maxKeptMessage = 32 << 20

// args serves GET /v1/tasks/{id}/args: the task's arguments, where the
// archive keeps them: claim-checked arguments (payloads/), and the
// messages of failed and cancelled tasks (retained/) and of dead letters
// (deadletters/). Other tasks' arguments travel only in their message,
// which is gone once it is acked: 404, saying so.
func (s *Server) args(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	if _, err := s.store.Get(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	for _, key := range []string{task.RetainedKey(id), task.DeadLetterKey(id)} {
		b, err := s.archive.Get(ctx, key, maxKeptMessage)
		if errors.Is(err, task.ErrNoBlob) {
			continue
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		m, err := task.DecodeMessage(b)
		if err != nil {
			s.log.Warn("kept task message does not decode", "task_id", id, "key", key, "err", err)
			continue
		}
		if m.ArgsRef == "" {
			args := []byte(m.Args)
			if len(args) == 0 {
				args = []byte("null")
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(args)
			return
		}
		break // claim-checked: the payload below
	}
	s.stream(w, r, id, task.PayloadKey(id), "application/json",
		"the arguments of task %s are not kept: only those above the claim-check threshold, and those of failed, cancelled and dead-lettered tasks, are")
}

// logs serves GET /v1/tasks/{id}/logs/{attempt}/{stream}: what an exec
// attempt wrote to stdout or stderr, kept at logs/{id}/{attempt}/.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	attempt, err := strconv.Atoi(r.PathValue("attempt"))
	if err != nil || attempt < 1 || attempt > task.MaxAttemptsLimit {
		writeProblem(w, http.StatusNotFound, probNotFound, "%q is not an attempt number", clip(r.PathValue("attempt")))
		return
	}
	stream := r.PathValue("stream")
	if stream != "stdout" && stream != "stderr" {
		writeProblem(w, http.StatusNotFound, probNotFound, "%q is not a log stream (stdout or stderr)", clip(stream))
		return
	}
	if _, err := s.store.Get(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.stream(w, r, id, task.LogKey(id, attempt, stream), "text/plain; charset=utf-8",
		"task %s has no "+stream+" log for attempt "+strconv.Itoa(attempt)+" (only exec keeps logs)")
}

// stream copies the archive's key to w with content type ct, or answers
// 404 with notFound (a format taking task id) if it is not there.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, id, key, ct, notFound string) {
	rd, err := s.archive.Open(r.Context(), key)
	if errors.Is(err, task.ErrNoBlob) {
		writeProblem(w, http.StatusNotFound, probNotFound, notFound, id)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	if _, err := io.Copy(w, rd); err != nil {
		s.log.Warn("archive stream interrupted", "key", key, "err", err)
	}
}
