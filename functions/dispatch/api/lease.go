package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/pkg/task"
)

// LeaseConfig tunes the lease endpoints. Zero values take the defaults in
// parentheses.
type LeaseConfig struct {
	// MaxLeases caps the leases held at once (10,000); a take past it is
	// refused with 503 and Retry-After.
	MaxLeases int
	// MaxTake is the most messages one take may ask for (100).
	MaxTake int
	// MaxLease is the longest lease one take or extension may ask for
	// (12h, SQS's visibility cap).
	MaxLease time.Duration
	// MaxBlob caps one uploaded blob (64 MiB).
	MaxBlob int64
}

func (c *LeaseConfig) defaults() {
	if c.MaxLeases <= 0 {
		c.MaxLeases = 10000
	}
	if c.MaxTake <= 0 {
		c.MaxTake = 100
	}
	if c.MaxLease <= 0 {
		c.MaxLease = 12 * time.Hour
	}
	if c.MaxBlob <= 0 {
		c.MaxBlob = 64 << 20
	}
}

// leases is the state of the lease endpoints: the deliveries taken from
// the queues' subscriptions on behalf of remote runners, by lease ID. A
// lease is the delivery's own visibility timeout, set to the lease's
// length at each take and extension: a runner that stops extending it
// loses nothing, the queue delivers the message again when it ends. The
// table only lets later calls find the delivery, and forgets it then.
type leases struct {
	queues map[string]*leaseQueue
	names  []string // of queues, sorted
	events *task.Topic
	cfg    LeaseConfig

	mu    sync.Mutex
	held  map[string]*lease
	swept time.Time
}

// leaseQueue is one queue whose tasks the endpoints lease.
type leaseQueue struct {
	subs *task.Reopener

	mu      sync.Mutex
	version int   // of the subscription the last take used
	failed  error // that take's failure to receive, if it failed
}

type lease struct {
	id, taskID string // taskID is "" for a message that is no task
	attempt    int    // the delivery's receive count
	d          *task.Delivery
	expires    time.Time
}

// ServeLeases adds the lease endpoints, through which remote runners
// (drover runner --server) take task messages from the subscriptions
// queues opens (by queue name; "default" is the one a take names no
// queue for), publish events on events, record starts and read states in
// the store, and read and write the archive (docs/api.md: Remote
// runners).
func (s *Server) ServeLeases(queues map[string]task.Opener, events *task.Topic, cfg LeaseConfig) {
	cfg.defaults()
	l := &leases{queues: map[string]*leaseQueue{}, events: events, cfg: cfg, held: map[string]*lease{}}
	for name, open := range queues {
		what := "tasks (leases)"
		if name != task.DefaultQueue {
			what = "tasks queue " + name + " (leases)"
		}
		l.queues[name] = &leaseQueue{subs: task.NewReopener(open, s.log, what)}
		l.names = append(l.names, name)
	}
	slices.Sort(l.names)
	s.leases = l
	s.mux.HandleFunc("GET /v1/leases", s.authed(s.leaseQueues))
	s.mux.HandleFunc("POST /v1/leases", s.authed(s.takeLeases))
	s.mux.HandleFunc("POST /v1/leases/{id}/extend", s.authed(s.extendLease))
	s.mux.HandleFunc("POST /v1/leases/{id}/ack", s.authed(s.ackLease))
	s.mux.HandleFunc("POST /v1/leases/{id}/nack", s.authed(s.nackLease))
	s.mux.HandleFunc("POST /v1/events", s.authed(s.publishEvents))
	s.mux.HandleFunc("POST /v1/tasks/starts", s.authed(s.startTasks))
	s.mux.HandleFunc("POST /v1/tasks/states", s.authed(s.taskStates))
	s.mux.HandleFunc("GET /v1/blobs/{key...}", s.authed(s.getBlob))
	s.mux.HandleFunc("HEAD /v1/blobs/{key...}", s.authed(s.getBlob))
	s.mux.HandleFunc("PUT /v1/blobs/{key...}", s.authed(s.putBlob))
	s.mux.HandleFunc("DELETE /v1/blobs/{key...}", s.authed(s.deleteBlob))
}

// Close releases the deliveries still leased, so that they come back at
// once rather than when their leases end.
func (s *Server) Close() {
	l := s.leases
	if l == nil {
		return
	}
	l.mu.Lock()
	held := l.held
	l.held = map[string]*lease{}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ls := range held {
		if ls.d.Lease != nil {
			_ = ls.d.Lease.SetVisibility(ctx, 0)
		}
		ls.d.Nack()
	}
	for _, q := range l.queues {
		_ = q.subs.Close(ctx)
	}
}

const probLeaseGone = "lease-gone"

// takeRequest is the body of POST /v1/leases.
type takeRequest struct {
	// Queue is the queue to take from ("": default).
	Queue string  `json:"queue"`
	Max   int     `json:"max"`
	Lease *string `json:"lease"`
	Wait  *string `json:"wait"`
}

// Lease is one taken message in the answer of POST /v1/leases.
type Lease struct {
	ID        string `json:"id"`
	MessageID string `json:"message_id"`
	// TaskID is the task the message carries, "" if it is no task.
	TaskID string `json:"task_id,omitempty"`
	// ReceiveCount is how many times the queue has delivered the message.
	ReceiveCount int       `json:"receive_count"`
	ExpiresAt    time.Time `json:"expires_at"`
	// Body is the task message, as the queue holds it.
	Body []byte `json:"body"`
}

// parseDur reads an optional duration field within [lo, hi], def if
// absent.
func parseDur(field string, v *string, def, lo, hi time.Duration) (time.Duration, error) {
	if v == nil {
		return def, nil
	}
	d, err := time.ParseDuration(*v)
	if err != nil {
		return 0, reject(http.StatusUnprocessableEntity, probValidation, "%s: %q is not a duration such as \"30s\"", field, clip(*v))
	}
	if d < lo || d > hi {
		return 0, reject(http.StatusUnprocessableEntity, probValidation, "%s: %s is out of range, want %s to %s", field, d, lo, hi)
	}
	return d, nil
}

func (s *Server) takeLeases(w http.ResponseWriter, r *http.Request) {
	var in takeRequest
	if !s.decodeInto(w, r, &in) {
		return
	}
	l := s.leases
	if in.Max == 0 {
		in.Max = 1
	}
	if in.Max < 1 || in.Max > l.cfg.MaxTake {
		s.fail(w, r, reject(http.StatusUnprocessableEntity, probValidation, "max: %d is out of range, want 1 to %d", in.Max, l.cfg.MaxTake))
		return
	}
	leaseFor, err := parseDur("lease", in.Lease, 30*time.Second, time.Second, l.cfg.MaxLease)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := parseDur("wait", in.Wait, 20*time.Second, 0, s.cfg.MaxWait)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name := in.Queue
	if name == "" {
		name = task.DefaultQueue
	}
	q := l.queues[name]
	if q == nil {
		s.fail(w, r, reject(http.StatusUnprocessableEntity, probValidation, "queue: %q is not a queue this dispatcher leases tasks of (it leases %s)", clip(name), strings.Join(l.names, ", ")))
		return
	}
	l.mu.Lock()
	l.sweep(time.Now())
	full := len(l.held)+in.Max > l.cfg.MaxLeases
	l.mu.Unlock()
	if full {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, probUnavailable, "this dispatcher holds as many leases as it may (%d); retry shortly", l.cfg.MaxLeases)
		return
	}

	q.mu.Lock()
	version, failed := q.version, q.failed
	q.mu.Unlock()
	sub, v, err := q.subs.Current(r.Context(), version, failed)
	if err != nil {
		s.fail(w, r, fmt.Errorf("open the subscription of tasks queue %s: %w", name, err))
		return
	}
	ds, err := sub.ReceiveUpTo(r.Context(), in.Max, wait)
	q.mu.Lock()
	q.version, q.failed = v, nil
	if err != nil && r.Context().Err() == nil {
		q.failed = err
	}
	q.mu.Unlock()
	if r.Context().Err() != nil {
		// The runner is gone: what it would have leased comes back now.
		release(ds)
		return
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("receive from tasks queue %s: %w", name, err))
		return
	}

	out := make([]Lease, 0, len(ds))
	taken := make([]*lease, 0, len(ds))
	now := time.Now()
	for _, d := range ds {
		if d.Lease == nil {
			d.Nack()
			s.log.Error("the tasks subscription's driver cannot extend leases; remote runners need memq://, awssqs:// or another driver Drover supports")
			continue
		}
		setCtx, setCancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		err := d.Lease.SetVisibility(setCtx, leaseFor)
		setCancel()
		if err != nil {
			s.log.Warn("could not set a taken message's visibility to its lease; it comes back at the queue's own timeout", "message_id", d.ID, "err", err)
			d.Nack()
			continue
		}
		ls := &lease{id: newLeaseID(), d: d, attempt: d.Attempt(), expires: now.Add(leaseFor)}
		if m, err := task.DecodeMessage(d.Body); err == nil || m != nil {
			ls.taskID = m.ID
		}
		out = append(out, Lease{ID: ls.id, MessageID: d.ID, TaskID: ls.taskID, ReceiveCount: ls.attempt, ExpiresAt: ls.expires.UTC(), Body: d.Body})
		taken = append(taken, ls)
	}
	if r.Context().Err() != nil {
		// The runner went away while the leases were being set (its take
		// timed out, or it was killed): nobody will hear of them, so
		// they come back now rather than when they end.
		gone := make([]*task.Delivery, len(taken))
		for i, ls := range taken {
			gone[i] = ls.d
		}
		release(gone)
		return
	}
	l.mu.Lock()
	for _, ls := range taken {
		l.held[ls.id] = ls
	}
	l.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"leases": out})
}

// leaseQueues answers GET /v1/leases: the queues this dispatcher leases
// tasks of, which a remote runner checks its own against at start.
func (s *Server) leaseQueues(w http.ResponseWriter, r *http.Request) {
	if s.leases == nil {
		writeProblem(w, http.StatusNotFound, probNotFound, "this dispatcher serves no lease endpoints")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": s.leases.names})
}

// release gives deliveries back at once.
func release(ds []*task.Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, d := range ds {
		if d.Lease != nil {
			_ = d.Lease.SetVisibility(ctx, 0)
		}
		d.Nack()
	}
}

func newLeaseID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sweep forgets the leases that ended more than a minute ago (at most
// every 10s): their messages are back on the queue. l.mu is held.
func (l *leases) sweep(now time.Time) {
	if now.Sub(l.swept) < 10*time.Second {
		return
	}
	l.swept = now
	for id, ls := range l.held {
		if now.Sub(ls.expires) > time.Minute {
			delete(l.held, id)
		}
	}
}

// find returns the lease named in the path if it is current; remove also
// takes it out of the table (an ack or nack). Else it answers 410.
func (s *Server) findLease(w http.ResponseWriter, r *http.Request, remove bool) *lease {
	id := r.PathValue("id")
	l := s.leases
	now := time.Now()
	l.mu.Lock()
	ls := l.held[id]
	expired := ls != nil && !now.Before(ls.expires)
	if ls != nil && remove && !expired {
		delete(l.held, id) // an expired lease stays to be named until swept
	}
	l.mu.Unlock()
	switch {
	case ls == nil:
		writeProblem(w, http.StatusGone, probLeaseGone, "lease %s is unknown or ended long ago: its message is back on the queue for another runner", clip(id))
		return nil
	case expired:
		writeProblem(w, http.StatusGone, probLeaseGone, "lease %s of task %s (delivery %d) expired at %s: its message is back on the queue for another runner",
			id, ls.taskID, ls.attempt, ls.expires.UTC().Format(time.RFC3339Nano))
		return nil
	}
	return ls
}

func (s *Server) extendLease(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Lease *string `json:"lease"`
	}
	if !s.decodeInto(w, r, &in) {
		return
	}
	if in.Lease == nil {
		s.fail(w, r, reject(http.StatusUnprocessableEntity, probValidation, "lease: required, a duration such as \"30s\""))
		return
	}
	d, err := parseDur("lease", in.Lease, 0, 0, s.leases.cfg.MaxLease)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ls := s.findLease(w, r, false)
	if ls == nil {
		return
	}
	now := time.Now()
	if err := ls.d.Lease.SetVisibility(r.Context(), d); err != nil {
		if errors.Is(err, task.ErrLeaseLost) {
			s.leases.mu.Lock()
			delete(s.leases.held, ls.id)
			s.leases.mu.Unlock()
			writeProblem(w, http.StatusGone, probLeaseGone, "lease %s of task %s (delivery %d) is lost: the queue has delivered its message again", ls.id, ls.taskID, ls.attempt)
			return
		}
		s.fail(w, r, fmt.Errorf("extend lease %s of task %s: %w", ls.id, ls.taskID, err))
		return
	}
	s.leases.mu.Lock()
	ls.expires = now.Add(d)
	s.leases.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"id": ls.id, "task_id": ls.taskID, "expires_at": ls.expires.UTC()})
}

func (s *Server) ackLease(w http.ResponseWriter, r *http.Request) {
	var in struct{}
	if !s.decodeInto(w, r, &in) {
		return
	}
	ls := s.findLease(w, r, true)
	if ls == nil {
		return
	}
	ls.d.Ack()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) nackLease(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Delay *string `json:"delay"`
	}
	if !s.decodeInto(w, r, &in) {
		return
	}
	var delay time.Duration
	if in.Delay != nil {
		var err error
		if delay, err = parseDur("delay", in.Delay, 0, 0, s.leases.cfg.MaxLease); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	ls := s.findLease(w, r, true)
	if ls == nil {
		return
	}
	if in.Delay != nil {
		if err := ls.d.Lease.SetVisibility(r.Context(), delay); err != nil && !errors.Is(err, task.ErrLeaseLost) {
			s.log.Warn("could not set the visibility of a released message; it comes back when its lease ends", "task_id", ls.taskID, "lease", ls.id, "err", err)
		}
	}
	ls.d.Nack()
	w.WriteHeader(http.StatusNoContent)
}

// maxEvents is the most events (or starts, or states) one request holds.
const maxEvents = 1000

func (s *Server) publishEvents(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Events []json.RawMessage `json:"events"`
	}
	if !s.decodeInto(w, r, &in) {
		return
	}
	bodies, err := checkEvents(in.Events, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SendTimeout)
	defer cancel()
	if failed := s.leases.events.SendAll(ctx, bodies, nil); len(failed) > 0 {
		for i, err := range failed {
			s.fail(w, r, fmt.Errorf("publish event %d of %d: %w", i, len(bodies), err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkEvents decodes each event (or, unless startsOnly, runner
// heartbeat) and re-encodes it, so that only what Drover's codec knows
// goes on.
func checkEvents(raw []json.RawMessage, startsOnly bool) ([][]byte, error) {
	if len(raw) == 0 || len(raw) > maxEvents {
		return nil, reject(http.StatusUnprocessableEntity, probValidation, "events: %d given, want 1 to %d", len(raw), maxEvents)
	}
	out := make([][]byte, len(raw))
	for i, b := range raw {
		ev, info, err := task.DecodeEvent(b)
		switch {
		case err != nil:
			return nil, reject(http.StatusBadRequest, probMalformed, "events[%d]: %v", i, err)
		case info != nil && !startsOnly:
			if info.ID == "" {
				return nil, reject(http.StatusUnprocessableEntity, probValidation, "events[%d]: a runner heartbeat needs an id", i)
			}
			out[i], err = task.EncodeRunner(info)
		case ev == nil || !task.ValidID(ev.TaskID):
			return nil, reject(http.StatusUnprocessableEntity, probValidation, "events[%d]: not a task event with a valid task_id", i)
		case startsOnly && ev.Phase != task.PhaseStarted:
			return nil, reject(http.StatusUnprocessableEntity, probValidation, "events[%d]: task %s: a start has phase %q, got %q", i, ev.TaskID, task.PhaseStarted, ev.Phase)
		default:
			out[i], err = task.EncodeEvent(ev)
		}
		if err != nil {
			return nil, reject(http.StatusUnprocessableEntity, probValidation, "events[%d]: %v", i, err)
		}
	}
	return out, nil
}

// Started is one task's answer in POST /v1/tasks/starts (see
// task.Started).
type Started struct {
	Attempt int        `json:"attempt"`
	State   task.State `json:"state,omitempty"`
	GaveUp  bool       `json:"gave_up,omitempty"`
	// LastStartedAt is when the last attempt started, with GaveUp.
	LastStartedAt time.Time `json:"last_started_at,omitzero"`
}

func (s *Server) startTasks(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Events []json.RawMessage `json:"events"`
	}
	if !s.decodeInto(w, r, &in) {
		return
	}
	bodies, err := checkEvents(in.Events, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	evs := make([]*task.Event, len(bodies))
	for i, b := range bodies {
		evs[i], _, _ = task.DecodeEvent(b)
	}
	// A task named twice (a runner holding two deliveries of it) is
	// started in turn: StartMany decides the second in its next round.
	res, err := s.store.StartMany(r.Context(), evs)
	if err != nil {
		s.fail(w, r, fmt.Errorf("record the start of %d tasks (first %s, runner %s): %w", len(evs), evs[0].TaskID, evs[0].Runner, err))
		return
	}
	out := make([]Started, len(res))
	for i, st := range res {
		out[i] = Started{Attempt: st.Attempt, State: st.State, GaveUp: st.GaveUp, LastStartedAt: st.LastStartedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"started": out})
}

func (s *Server) taskStates(w http.ResponseWriter, r *http.Request) {
	var in struct {
		IDs []string `json:"ids"`
	}
	if !s.decodeInto(w, r, &in) {
		return
	}
	if len(in.IDs) == 0 || len(in.IDs) > maxEvents {
		s.fail(w, r, reject(http.StatusUnprocessableEntity, probValidation, "ids: %d given, want 1 to %d", len(in.IDs), maxEvents))
		return
	}
	for i, id := range in.IDs {
		if !task.ValidID(id) {
			s.fail(w, r, reject(http.StatusUnprocessableEntity, probValidation, "ids[%d]: %q is not a task ID", i, clip(id)))
			return
		}
	}
	states, err := s.store.States(r.Context(), in.IDs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"states": states})
}

// decodeInto reads the request body and decodes it strictly into v,
// answering the problem itself when it cannot.
func (s *Server) decodeInto(w http.ResponseWriter, r *http.Request, v any) bool {
	if s.leases == nil {
		writeProblem(w, http.StatusNotFound, probNotFound, "this dispatcher serves no lease endpoints")
		return false
	}
	body, release, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	defer release()
	if err := decodeStrict(body, v); err != nil {
		s.fail(w, r, err)
		return false
	}
	return true
}
