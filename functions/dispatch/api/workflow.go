package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/droverhq/drover/pkg/task"
)

// Workflow submissions (docs/workflows.md). Unlike a lone task, whose
// status is written after its message is published, a workflow's
// documents are all written first: a member's or a step's events must
// find the document that names its group or its successor. Only then are
// the first tasks published; the rest wait for the collector.

// stepDocs makes the documents of the steps after first (first.Then and
// on), chained by derived IDs, each waiting with its message pending. It
// archives args above the payload limit and returns their keys.
func (s *Service) stepDocs(ctx context.Context, prev string, then *task.Spec, now time.Time, callbackOf string) ([]*task.Status, []string, error) {
	var (
		docs []*task.Status
		keys []string
	)
	id := task.NextID(prev)
	if callbackOf != "" {
		id = task.CallbackID(callbackOf)
	}
	for sp := then; sp != nil; sp = sp.Then {
		m := &task.Message{
			ID: id, Function: sp.Function, Queue: sp.Queue, Args: sp.Args,
			TimeoutMS: time.Duration(sp.Timeout).Milliseconds(), MaxAttempts: sp.MaxAttempts, CreatedAt: now,
			Requires: sp.Requires,
		}
		if len(sp.Args) > s.cfg.PayloadLimit {
			m.Args, m.ArgsRef = nil, task.PayloadKey(id)
			if err := s.archive.Put(ctx, m.ArgsRef, "application/json", sp.Args); err != nil {
				return nil, keys, fmt.Errorf("archive args of step %s: %w", id, err)
			}
			keys = append(keys, m.ArgsRef)
		}
		body, err := task.EncodeMessage(m)
		if err != nil {
			return nil, keys, fmt.Errorf("encode step %s: %w", id, err)
		}
		st := &task.Status{
			ID: id, Function: task.Intern(sp.Function), Queue: task.Intern(sp.Queue), State: task.Waiting,
			MaxAttempts: sp.MaxAttempts, CreatedAt: now, Pending: string(body), CallbackOf: callbackOf,
		}
		st.SetRequires(sp.Requires)
		if callbackOf == "" {
			st.Previous = prev
		}
		callbackOf = ""
		if sp.Then != nil {
			st.Next = task.NextID(id)
		}
		docs = append(docs, st)
		prev, id = id, task.NextID(id)
	}
	return docs, keys, nil
}

// message makes the task message of spec sp for task id, archiving its
// args when large; it returns the archived key, if any.
func (s *Service) message(ctx context.Context, sp *task.Spec, id string, now time.Time) ([]byte, string, error) {
	m := &task.Message{
		ID: id, Function: sp.Function, Queue: sp.Queue, Args: sp.Args,
		TimeoutMS: time.Duration(sp.Timeout).Milliseconds(), MaxAttempts: sp.MaxAttempts, CreatedAt: now,
	}
	if len(sp.Args) > s.cfg.PayloadLimit {
		m.Args, m.ArgsRef = nil, task.PayloadKey(id)
		if err := s.archive.Put(ctx, m.ArgsRef, "application/json", sp.Args); err != nil {
			return nil, "", fmt.Errorf("archive payload of %s: %w", id, err)
		}
	}
	b, err := task.EncodeMessage(m)
	if err != nil {
		return nil, m.ArgsRef, fmt.Errorf("encode task %s: %w", id, err)
	}
	return b, m.ArgsRef, nil
}

// checkQueue checks that sp's queue, and those of the steps after it,
// are declared, and that sp's delay is one its queue can keep; prefix
// is the fields' ("tasks[3].").
func (s *Service) checkQueue(prefix string, sp *task.Spec) error {
	field := prefix
	for st := sp; st != nil; st, field = st.Then, field+"then." {
		if err := s.queues.Check(field+"queue", st.Queue); err != nil {
			return err
		}
	}
	max := s.queues.MaxDelay(sp.Queue)
	if d := time.Duration(sp.Delay); d > max {
		if max == 0 {
			return &task.FieldError{Field: prefix + "delay", Reason: fmt.Sprintf("the topic of queue %s cannot delay messages", sp.Queue)}
		}
		return &task.FieldError{Field: prefix + "delay", Reason: fmt.Sprintf("%s is longer than the %s the topic of queue %s can delay", d, max, sp.Queue)}
	}
	return nil
}

// undo deletes what a failed workflow submission wrote.
func (s *Service) undo(ctx context.Context, group string, docs []*task.Status, keys []string) {
	ctx = context.WithoutCancel(ctx)
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	for lo := 0; lo < len(ids); lo += 1000 {
		if err := s.store.DeleteMany(ctx, ids[lo:min(lo+1000, len(ids))]); err != nil {
			s.log.Warn("rollback: could not delete workflow statuses", "group", group, "err", err)
		}
	}
	if group != "" {
		if err := s.store.DeleteGroup(ctx, group); err != nil {
			s.log.Warn("rollback: could not delete group", "group", group, "err", err)
		}
	}
	for _, k := range keys {
		if err := s.archive.Delete(ctx, k); err != nil {
			s.log.Warn("rollback: could not delete payload", "key", k, "err", err)
		}
	}
}

// SubmitChain enqueues a validated spec that has a Then: it writes the
// documents of every step (the first queued, the others waiting), then
// publishes the first.
func (s *Service) SubmitChain(ctx context.Context, sp task.Spec) (*task.Status, error) {
	if err := s.checkQueue("", &sp); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	id := task.NewID(now)
	body, key, err := s.message(ctx, &sp, id, now)
	var keys []string
	if key != "" {
		keys = append(keys, key)
	}
	if err != nil {
		s.undo(ctx, "", nil, keys)
		return nil, err
	}
	first := &task.Status{
		ID: id, Function: task.Intern(sp.Function), Queue: task.Intern(sp.Queue), State: task.Queued,
		MaxAttempts: sp.MaxAttempts, CreatedAt: now, Next: task.NextID(id),
	}
	first.SetRequires(sp.Requires)
	rest, more, err := s.stepDocs(ctx, id, sp.Then, now, "")
	keys = append(keys, more...)
	docs := append([]*task.Status{first}, rest...)
	if err == nil {
		err = s.store.CreateSteps(ctx, docs)
	}
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
		err = s.queues.Topic(sp.Queue).Send(sctx, body, time.Duration(sp.Delay))
		cancel()
		if err != nil {
			err = &EnqueueError{Failed: 1, Of: 1, First: err}
		}
	}
	if err != nil {
		s.undo(ctx, "", docs, keys)
		return nil, fmt.Errorf("submit chain %s: %w", id, err)
	}
	return first, nil
}

// SubmitGroup enqueues a validated group: it writes the group document
// and the documents of its members (queued) and of its callback and the
// steps after it (waiting), then publishes the members. It returns the
// group's document with the first page of members.
func (s *Service) SubmitGroup(ctx context.Context, g task.GroupSpec) (*task.Group, error) {
	for i := range g.Tasks {
		if err := s.checkQueue(fmt.Sprintf("tasks[%d].", i), &g.Tasks[i]); err != nil {
			return nil, err
		}
	}
	now := time.Now().UTC()
	gid := task.NewID(now)
	n := len(g.Tasks)
	bodies := make([][]byte, n)
	delays := make([]time.Duration, n)
	argKeys := make([]string, n)
	docs := make([]*task.Status, n, n+1)
	var eg errgroup.Group
	eg.SetLimit(16)
	for i := range g.Tasks {
		sp := &g.Tasks[i]
		id := task.MemberID(gid, i)
		docs[i] = &task.Status{
			ID: id, Function: task.Intern(sp.Function), Queue: task.Intern(sp.Queue), State: task.Queued,
			MaxAttempts: sp.MaxAttempts, CreatedAt: now, Group: &task.GroupRef{ID: gid, Index: i},
		}
		docs[i].SetRequires(sp.Requires)
		delays[i] = time.Duration(sp.Delay)
		eg.Go(func() error {
			var err error
			bodies[i], argKeys[i], err = s.message(ctx, sp, id, now)
			return err
		})
	}
	err := eg.Wait()
	var keys []string
	for _, k := range argKeys {
		if k != "" {
			keys = append(keys, k)
		}
	}
	callback := ""
	if err == nil && g.Then != nil {
		callback = task.CallbackID(gid)
		var rest []*task.Status
		var more []string
		rest, more, err = s.stepDocs(ctx, "", g.Then, now, gid)
		keys = append(keys, more...)
		docs = append(docs, rest...)
	}
	created := false
	if err == nil {
		err = s.store.CreateGroup(ctx, gid, n, g.OnFailure, callback, now)
		created = err == nil
	}
	if err == nil {
		err = s.store.CreateSteps(ctx, docs)
	}
	if err != nil {
		group := ""
		if created {
			group = gid
		}
		s.undo(ctx, group, docs, keys)
		return nil, fmt.Errorf("submit group %s: %w", gid, err)
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
	defer cancel()
	queues := make([]string, n)
	for i := range g.Tasks {
		queues[i] = g.Tasks[i].Queue
	}
	failed := s.queues.SendAll(sctx, queues, bodies, delays)
	if len(failed) > 0 {
		// Once more for those that failed, then give the group up: its
		// members that are enqueued find themselves cancelled.
		idx := make([]int, 0, len(failed))
		for i := range failed {
			idx = append(idx, i)
		}
		retry := make([][]byte, len(idx))
		rdelays := make([]time.Duration, len(idx))
		rqueues := make([]string, len(idx))
		for k, i := range idx {
			retry[k], rdelays[k], rqueues[k] = bodies[i], delays[i], queues[i]
		}
		still := s.queues.SendAll(sctx, rqueues, retry, rdelays)
		if len(still) > 0 {
			var first error
			for _, e := range still {
				first = e
				break
			}
			if cerr := s.store.CancelGroup(context.WithoutCancel(ctx), gid, "not every member could be enqueued"); cerr != nil && !errors.Is(cerr, task.ErrTerminal) {
				s.log.Error("could not cancel a group that could not be enqueued", "group", gid, "err", cerr)
			}
			return nil, fmt.Errorf("group %s: %d of %d members could not be enqueued (%w); the group is cancelled", gid, len(still), n, first)
		}
	}
	s.log.Info("group submitted", "group", gid, "members", n, "callback", callback)
	out := &task.Group{
		ID: gid, State: task.GroupRunning, Size: n, OnFailure: g.OnFailure, CreatedAt: now,
		Counts: map[task.State]int{task.Queued: n}, Callback: callback, Members: docs[:min(n, 100)],
	}
	if callback != "" {
		out.CallbackState = task.Waiting
	}
	if n > 100 {
		out.NextCursor = 100
	}
	return out, nil
}

// submit enqueues specs, chains each on its own and the rest in one
// batch, and returns their statuses in order.
func (s *Server) submit(ctx context.Context, specs []task.Spec) ([]*task.Status, error) {
	var plain []task.Spec
	var at []int
	out := make([]*task.Status, len(specs))
	for i := range specs {
		if specs[i].Then == nil {
			plain, at = append(plain, specs[i]), append(at, i)
		}
	}
	if len(plain) > 0 {
		sts, err := s.svc.Submit(ctx, plain)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			out[i] = sts[k]
		}
	}
	for i := range specs {
		if specs[i].Then == nil {
			continue
		}
		st, err := s.svc.SubmitChain(ctx, specs[i])
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

func (s *Server) submitGroup(w http.ResponseWriter, r *http.Request) {
	body, release, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer release()
	var in submitGroup
	if err := decodeStrict(body, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	spec, err := in.spec()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	g, err := s.svc.SubmitGroup(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/groups/"+g.ID)
	writeJSON(w, http.StatusAccepted, g)
}

func (s *Server) groupID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !task.ValidID(id) {
		writeProblem(w, http.StatusNotFound, probNotFound, "%q is not a group ID", clip(id))
		return "", false
	}
	return id, true
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := s.groupID(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	cursor, limit := 0, 100
	for k := range q {
		switch k {
		case "limit", "cursor":
		default:
			writeProblem(w, http.StatusBadRequest, probMalformed, "unknown query parameter %q (allowed: limit, cursor)", clip(k))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			writeProblem(w, http.StatusBadRequest, probMalformed, "limit: %q is not a number from 0 to 1000", clip(v))
			return
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n >= task.MaxGroupMembers {
			writeProblem(w, http.StatusBadRequest, probMalformed, "cursor: %q is not a cursor this API returned", clip(v))
			return
		}
		cursor = n
	}
	g, err := s.store.GroupPage(r.Context(), id, cursor, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) cancelGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := s.groupID(w, r)
	if !ok {
		return
	}
	err := s.store.CancelGroup(r.Context(), id, "group cancelled by request")
	if errors.Is(err, task.ErrTerminal) {
		writeProblem(w, http.StatusConflict, probConflict, "%v", err)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("group cancelled", "group", id)
	g, err := s.store.GroupPage(r.Context(), id, 0, 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}
