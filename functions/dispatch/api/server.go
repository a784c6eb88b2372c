// Package api is the dispatch function: the submit Service (claim keys,
// claim-check, publish, statuses, roll back) and the HTTP API of DESIGN.md
// over it as an http.Handler: submit (single and batch), read with
// long-poll, list, cancel, results, runners, and health. It validates
// before it touches anything: a rejected request enqueues and archives
// nothing. Env and Run are the dispatch process (functions/dispatch and
// drover dispatch).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/functions/dispatch/dashboard"
	"github.com/droverhq/drover/internal/metrics"
	"github.com/droverhq/drover/pkg/task"
)

// Config tunes the API. Zero values take the defaults in parentheses.
type Config struct {
	// APIKeys are the accepted bearer tokens; empty disables auth
	// unless APIKeysLoader is set.
	APIKeys []string
	// APIKeysLoader, if set, reloads the keys (from a secret) once they
	// are older than APIKeysRefresh (0: never), and for a token that
	// matches none at most every 30s; APIKeys are the keys it gave at
	// start.
	APIKeysLoader  KeyLoader
	APIKeysRefresh time.Duration
	// MaxBody caps a request body (16 MiB).
	MaxBody int64
	// PayloadLimit is the largest args kept inline in the task message;
	// larger args are archived (task.DefaultPayloadLimit).
	PayloadLimit int
	// IdempotencyWindow is how long an idempotency key maps to its first
	// task (24h).
	IdempotencyWindow time.Duration
	// SendTimeout bounds enqueueing one request's tasks (10s); past it the
	// request fails with 503.
	SendTimeout time.Duration
	// MaxWait caps ?wait= long-polls (60s).
	MaxWait time.Duration
	// Queues are the declared task queues, each its own topic; nil is
	// one queue, "default", on the tasks topic New is given. A task for
	// a queue not declared here is refused with 422.
	Queues *task.Queues
	// RunnerWindow is how recently a runner must have been seen to be
	// listed (1m).
	RunnerWindow time.Duration
	// Metrics, if set, receives dispatch's Prometheus metrics (submitted,
	// cancelled, retried, tasks queue depth, runners online) and is
	// served at GET /metrics, behind the API keys like the rest. A
	// process running other parts registers theirs on the same registry.
	Metrics *prometheus.Registry
	// BodyTimeout bounds reading one request body (30s); a client that
	// sends it slower gets 408 and its connection is closed.
	BodyTimeout time.Duration
	// MaxInflight caps the bytes of request bodies held at once, read or
	// being read (2 × MaxBody); a request past it is refused with 503 and
	// Retry-After before its body is read.
	MaxInflight int64
	// KeyWait is how long a request whose idempotency key is claimed by a
	// request still enqueueing waits for it before answering 409 (60s).
	KeyWait time.Duration
	// KeyTakeover is how long a pending idempotency claim is left to its
	// request before another may try to fence it off (2m, at least
	// 4 × SendTimeout). See task.Store.TakeOverKey.
	KeyTakeover time.Duration
	// TracerProvider, if set, traces submissions: each task submitted
	// gets a "submit <function>" span, a child of the request's W3C
	// traceparent header if it has one, whose context its message
	// carries to the runner (docs/operations.md, Traces). Nil: no spans,
	// no trace context.
	TracerProvider trace.TracerProvider
}

func (c *Config) defaults() {
	if c.MaxBody <= 0 {
		c.MaxBody = 16 << 20
	}
	if c.PayloadLimit <= 0 {
		c.PayloadLimit = task.DefaultPayloadLimit
	}
	if c.IdempotencyWindow <= 0 {
		c.IdempotencyWindow = 24 * time.Hour
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 60 * time.Second
	}
	if c.RunnerWindow <= 0 {
		c.RunnerWindow = time.Minute
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = 30 * time.Second
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 2 * c.MaxBody
	}
	c.MaxInflight = max(c.MaxInflight, c.MaxBody)
	if c.KeyWait <= 0 {
		c.KeyWait = 60 * time.Second
	}
	if c.KeyTakeover <= 0 {
		c.KeyTakeover = max(2*time.Minute, 4*c.SendTimeout)
	}
	// Keys as configured ("k1, k2") are trimmed; empty ones dropped.
	keys := make([]string, 0, len(c.APIKeys))
	for _, k := range c.APIKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	c.APIKeys = keys
}

// Server serves the API.
type Server struct {
	svc     *Service
	tasks   *task.Queues
	archive *task.Archive
	store   *task.Store
	log     *slog.Logger
	cfg     Config
	mux     *http.ServeMux
	flow    *task.Workflow
	// keys are the accepted API keys, fixed or read from a secret.
	keys     *apiKeys
	inflight inflight
	// leases, if set (ServeLeases), serves remote runners.
	leases *leases
}

// New returns a Server whose submit endpoints call a Service over tasks,
// archive and store (see NewService), and that enqueues on tasks, archives large payloads in
// archive and reads statuses from store.
func New(tasks *task.Topic, archive *task.Archive, store *task.Store, log *slog.Logger, cfg Config) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svc := NewService(tasks, archive, store, log, cfg)
	s := &Server{
		svc:   svc,
		tasks: svc.queues, archive: archive, store: store, log: log, cfg: cfg, mux: http.NewServeMux(),
		flow: &task.Workflow{Store: store, Archive: archive, Queues: svc.queues, PayloadLimit: cfg.PayloadLimit, Log: log},
	}
	s.keys = newAPIKeys(cfg.APIKeys, cfg.APIKeysLoader, cfg.APIKeysRefresh, log)
	s.inflight.limit = cfg.MaxInflight
	s.mux.HandleFunc("POST /v1/tasks", s.authed(s.submitOne))
	s.mux.HandleFunc("POST /v1/tasks/batch", s.authed(s.submitBatch))
	s.mux.HandleFunc("GET /v1/tasks", s.authed(s.list))
	s.mux.HandleFunc("GET /v1/tasks/{id}", s.authed(s.get))
	s.mux.HandleFunc("DELETE /v1/tasks/{id}", s.authed(s.cancel))
	s.mux.HandleFunc("GET /v1/tasks/{id}/result", s.authed(s.result))
	s.mux.HandleFunc("GET /v1/tasks/{id}/args", s.authed(s.args))
	s.mux.HandleFunc("GET /v1/tasks/{id}/logs/{attempt}/{stream}", s.authed(s.logs))
	s.mux.HandleFunc("GET /v1/runners", s.authed(s.runners))
	s.mux.HandleFunc("GET /v1/stats", s.authed(s.stats))
	s.mux.HandleFunc("POST /v1/groups", s.authed(s.submitGroup))
	s.mux.HandleFunc("GET /v1/groups/{id}", s.authed(s.getGroup))
	s.mux.HandleFunc("DELETE /v1/groups/{id}", s.authed(s.cancelGroup))
	s.mux.HandleFunc("POST /v1/tasks/{id}/retry", s.authed(s.retry))
	s.mux.HandleFunc("GET /v1/deadletters", s.authed(s.deadLetters))
	s.mux.HandleFunc("POST /v1/deadletters/redrive", s.authed(s.redrive))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	// The dashboard's page and assets need no key: it asks for one and
	// sends it with each API call.
	ui := dashboard.Handler()
	s.mux.Handle("GET /{$}", ui)
	s.mux.Handle("GET /ui/", ui)
	if cfg.Metrics != nil {
		s.gauges(cfg.Metrics)
		s.mux.Handle("GET /metrics", s.authed(metrics.Handler(cfg.Metrics).ServeHTTP))
	}
	return s
}

// gauges registers the values read at each scrape: the tasks queue's
// depth where its driver tells it, and the runners seen within
// RunnerWindow.
func (s *Server) gauges(reg prometheus.Registerer) {
	scrape := func(f func(ctx context.Context) (float64, bool)) func() (float64, bool) {
		return func() (float64, bool) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return f(ctx)
		}
	}
	metrics.Gauge(reg, "tasks_queue_depth", "Task messages not yet acked in the tasks queue (memq counts; SQS ApproximateNumberOfMessages, ...NotVisible and ...Delayed).",
		scrape(func(ctx context.Context) (float64, bool) {
			n, ok, err := s.tasks.Depth(ctx)
			return float64(n), ok && err == nil
		}))
	metrics.Gauge(reg, "runners_online", "Runners whose heartbeat was seen within the runner window.",
		scrape(func(ctx context.Context) (float64, bool) {
			rs, err := s.store.Runners(ctx, time.Now().Add(-s.cfg.RunnerWindow))
			return float64(len(rs)), err == nil
		}))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// The mux answers 404, or 405 with Allow: as a problem document.
		s.mux.ServeHTTP(&statusSniffer{ResponseWriter: w}, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// statusSniffer turns the mux's plain-text 404 and 405 into problems.
type statusSniffer struct {
	http.ResponseWriter
	done bool
}

func (s *statusSniffer) WriteHeader(code int) {
	s.done = true
	switch code {
	case http.StatusNotFound:
		writeProblem(s.ResponseWriter, code, probNotFound, "no such endpoint")
	case http.StatusMethodNotAllowed:
		writeProblem(s.ResponseWriter, code, probMethod, "method not allowed here; allowed: %s", s.Header().Get("Allow"))
	default:
		s.ResponseWriter.WriteHeader(code)
	}
}

func (s *statusSniffer) Write(b []byte) (int, error) {
	if s.done {
		return len(b), nil
	}
	return s.ResponseWriter.Write(b)
}

func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	if !s.keys.enabled() {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		// Decided from the headers alone: no body is read, and the
		// connection is closed rather than drained for reuse.
		if !s.validToken(r.Context(), r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
			writeProblem(closing(w), http.StatusUnauthorized, probAuth, "a valid API key is required: Authorization: Bearer <key>")
			return
		}
		h(w, r)
	}
}

// validToken reports whether the Authorization header value carries one
// of the API keys (see apiKeys).
func (s *Server) validToken(ctx context.Context, header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return s.keys.valid(ctx, strings.TrimSpace(token))
}

// closing marks the response as the connection's last and stops reading
// the request: net/http would otherwise read up to 256 KiB of an unread
// body after the handler returns (to reuse the connection), at whatever
// pace the client sends it.
func closing(w http.ResponseWriter) http.ResponseWriter {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	return w
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		re *requestError
		fe *task.FieldError
		ee *EnqueueError
	)
	switch {
	case errors.As(err, &ee):
		// A full queue (the embedded default's cap) or a slow one:
		// worth retrying shortly.
		w.Header().Set("Retry-After", "1")
		p := &Problem{
			Type: "urn:drover:problem:" + probUnavailable, Title: http.StatusText(http.StatusServiceUnavailable),
			Status: http.StatusServiceUnavailable, Detail: ee.Error(),
		}
		for _, st := range ee.Enqueued {
			p.Enqueued = append(p.Enqueued, st)
		}
		writeProblemDoc(w, p)
	case errors.As(err, &re):
		if re.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(re.retryAfter))
		}
		if re.closeConn {
			w = closing(w)
		}
		writeProblem(w, re.status, re.kind, "%s", re.detail)
	case errors.As(err, &fe):
		writeProblem(w, http.StatusUnprocessableEntity, probValidation, "%s", fe.Error())
	case errors.Is(err, task.ErrNotFound), errors.Is(err, task.ErrGroupNotFound):
		writeProblem(w, http.StatusNotFound, probNotFound, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeProblem(w, http.StatusServiceUnavailable, probUnavailable, "timed out: %v", err)
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, http.StatusServiceUnavailable, probUnavailable, "%v", err)
	}
}

func (s *Server) submitOne(w http.ResponseWriter, r *http.Request) {
	body, release, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer release()
	var in submitSpec
	if err := decodeStrict(body, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := exactFields(body, false); err != nil {
		s.fail(w, r, err)
		return
	}
	spec, err := in.spec("")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sts, err := s.submit(s.traced(r), []task.Spec{spec})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.svc.Explain(r.Context(), sts[0])
	w.Header().Set("Location", "/v1/tasks/"+sts[0].ID)
	writeStatus(w, http.StatusAccepted, sts[0])
}

func (s *Server) submitBatch(w http.ResponseWriter, r *http.Request) {
	body, release, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer release()
	var in struct {
		Tasks []submitSpec `json:"tasks"`
	}
	if err := decodeStrict(body, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := exactFields(body, true); err != nil {
		s.fail(w, r, err)
		return
	}
	switch n := len(in.Tasks); {
	case n == 0:
		s.fail(w, r, &task.FieldError{Field: "tasks", Reason: "is empty; a batch needs at least one task"})
		return
	case n > MaxBatch:
		s.fail(w, r, &task.FieldError{Field: "tasks", Reason: fmt.Sprintf("holds %d tasks, more than the %d a batch may hold", n, MaxBatch)})
		return
	}
	specs := make([]task.Spec, len(in.Tasks))
	for i := range in.Tasks {
		if specs[i], err = in.Tasks[i].spec(fmt.Sprintf("tasks[%d].", i)); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	sts, err := s.submit(s.traced(r), specs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.svc.Explain(r.Context(), sts...)
	writeStatusList(w, http.StatusAccepted, sts)
}

// traced returns r's context, carrying the W3C trace context of r's
// traceparent and tracestate headers when tracing is on.
func (s *Server) traced(r *http.Request) context.Context {
	if s.cfg.TracerProvider == nil || r.Header.Get("Traceparent") == "" {
		return r.Context()
	}
	return propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
}

func (s *Server) taskID(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := r.PathValue("id")
	id, ok := task.CanonicalID(raw) // ULIDs are case-insensitive
	if !ok {
		writeProblem(w, http.StatusNotFound, probNotFound, "%q is not a task ID", clip(raw))
		return "", false
	}
	return id, true
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeProblem(w, http.StatusBadRequest, probMalformed, "wait: %q is not a duration such as \"30s\"", clip(v))
			return
		}
		wait = min(d, s.cfg.MaxWait)
	}
	st, err := s.store.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wait > 0 && !st.State.Terminal() {
		st, err = s.poll(r.Context(), id, st, wait)
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.svc.Explain(r.Context(), st)
	writeStatus(w, http.StatusOK, st)
}

// poll re-reads a status until it is terminal or wait has passed.
func (s *Server) poll(ctx context.Context, id string, st *task.Status, wait time.Duration) (*task.Status, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for step := 5 * time.Millisecond; !st.State.Terminal(); step = min(step*2, 250*time.Millisecond) {
		select {
		case <-ctx.Done():
			return st, nil
		case <-deadline.C:
			return st, nil
		case <-time.After(step):
		}
		next, err := s.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		st = next
	}
	return st, nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "state", "function", "queue", "limit", "cursor":
		default:
			writeProblem(w, http.StatusBadRequest, probMalformed, "unknown query parameter %q (allowed: state, function, queue, limit, cursor)", clip(k))
			return
		}
	}
	lq := task.ListQuery{State: task.State(q.Get("state")), Function: q.Get("function"), Queue: q.Get("queue"), Cursor: q.Get("cursor"), Limit: 50}
	if lq.State != "" && !lq.State.Valid() {
		writeProblem(w, http.StatusBadRequest, probMalformed, "state: %q is not one of queued, waiting, running, retrying, succeeded, failed, cancelled", clip(string(lq.State)))
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeProblem(w, http.StatusBadRequest, probMalformed, "limit: %q is not a number from 1 to 1000", clip(v))
			return
		}
		lq.Limit = n
	}
	if lq.Cursor != "" {
		c, ok := task.CanonicalID(lq.Cursor)
		if !ok {
			writeProblem(w, http.StatusBadRequest, probMalformed, "cursor: %q is not a cursor this API returned", clip(lq.Cursor))
			return
		}
		lq.Cursor = c
	}
	sts, next, err := s.store.List(r.Context(), lq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if sts == nil {
		sts = []*task.Status{}
	}
	s.svc.Explain(r.Context(), sts...)
	writeJSON(w, http.StatusOK, map[string]any{"tasks": sts, "next_cursor": next})
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	st, err := s.store.Cancel(r.Context(), id, "cancelled by request")
	switch {
	case errors.Is(err, task.ErrTerminal):
		writeProblem(w, http.StatusConflict, probConflict, "task %s already ended %s", id, st.State)
	case err != nil:
		s.fail(w, r, err)
	default:
		s.svc.metrics.Cancelled(st.Function, st.Queue)
		s.log.Info("task cancelled", "task_id", id, "attempt", st.Attempt)
		if task.Linked(st) {
			// A member's group records it as ended; a chain's later
			// steps are cancelled with it.
			if err := s.flow.Advance(r.Context(), []*task.Status{st}); err != nil {
				s.log.Error("cancelled task's workflow did not move on", "task_id", id, "err", err)
			}
		}
		writeJSON(w, http.StatusOK, st)
	}
}

func (s *Server) result(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	st, err := s.store.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if st.State != task.Succeeded {
		writeProblem(w, http.StatusConflict, probConflict, "task %s is %s; only a succeeded task has a result", id, st.State)
		return
	}
	if st.ResultRef == "" {
		body := []byte(st.Result)
		if len(body) == 0 {
			body = []byte("null")
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
		return
	}
	rd, err := s.archive.Open(r.Context(), st.ResultRef)
	if err != nil {
		if errors.Is(err, task.ErrNoBlob) {
			writeProblem(w, http.StatusNotFound, probNotFound, "result of task %s (%s) is no longer in the archive", id, st.ResultRef)
			return
		}
		s.fail(w, r, err)
		return
	}
	defer rd.Close()
	ct := rd.ContentType()
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	if _, err := io.Copy(w, rd); err != nil {
		s.log.Warn("result stream interrupted", "task_id", id, "err", err)
	}
}

func (s *Server) runners(w http.ResponseWriter, r *http.Request) {
	rs, err := s.store.Runners(r.Context(), time.Now().Add(-s.cfg.RunnerWindow))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rs == nil {
		rs = []*task.RunnerInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runners": rs})
}

// retry answers POST /v1/tasks/{id}/retry (no body): 202 with the new
// task's status (see Service.Retry).
func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	if r.ContentLength != 0 {
		body, release, err := s.readBody(w, r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer release()
		if b := strings.TrimSpace(string(body)); b != "" && b != "{}" {
			writeProblem(w, http.StatusBadRequest, probMalformed, "POST /v1/tasks/{id}/retry takes no body (or {})")
			return
		}
	}
	st, err := s.svc.Retry(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/tasks/"+st.ID)
	writeStatus(w, http.StatusAccepted, st)
}

// redriveLimit parses a limit of 1 to maxDeadLetterScan (default
// maxDeadLetterScan).
func redriveLimit(n *int) error {
	switch {
	case *n == 0:
		*n = maxDeadLetterScan
	case *n < 0 || *n > maxDeadLetterScan:
		return &task.FieldError{Field: "limit", Reason: fmt.Sprintf("%d is not from 1 to %d", *n, maxDeadLetterScan)}
	}
	return nil
}

// deadLetters answers GET /v1/deadletters?queue=&limit=.
func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "queue" && k != "limit" {
			writeProblem(w, http.StatusBadRequest, probMalformed, "unknown query parameter %q (allowed: queue, limit)", clip(k))
			return
		}
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeadLetterScan {
			writeProblem(w, http.StatusBadRequest, probMalformed, "limit: %q is not a number from 1 to %d", clip(v), maxDeadLetterScan)
			return
		}
		limit = n
	}
	_ = redriveLimit(&limit)
	dls, err := s.svc.DeadLetters(r.Context(), q.Get("queue"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": dls})
}

// redrive answers POST /v1/deadletters/redrive {"queue": "", "limit": N}:
// 200 with the new tasks' statuses (see Service.Redrive).
func (s *Server) redrive(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Queue string `json:"queue"`
		Limit int    `json:"limit"`
	}
	var body []byte
	if r.ContentLength != 0 {
		var (
			release func()
			err     error
		)
		if body, release, err = s.readBody(w, r); err != nil {
			s.fail(w, r, err)
			return
		}
		defer release()
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &in); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if err := redriveLimit(&in.Limit); err != nil {
		s.fail(w, r, err)
		return
	}
	sts, err := s.svc.Redrive(r.Context(), in.Queue, in.Limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"redriven": sts})
}

// stats answers GET /v1/stats: counts by state, function and queue, the
// last hour minute by minute, and the runners online.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		writeProblem(w, http.StatusBadRequest, probMalformed, "GET /v1/stats takes no query parameters")
		return
	}
	now := time.Now()
	st, err := s.store.Stats(r.Context(), now)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rs, err := s.store.Runners(r.Context(), now.Add(-s.cfg.RunnerWindow))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st.RunnersOnline = len(rs)
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	checks := map[string]string{}
	okAll := true
	for name, ping := range map[string]func(context.Context) error{
		"store": s.store.Ping, "bucket": s.archive.Ping, "queue": s.tasks.Ping,
	} {
		if err := ping(ctx); err != nil {
			checks[name], okAll = err.Error(), false
		} else {
			checks[name] = "ok"
		}
	}
	if !okAll {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"type": "urn:drover:problem:" + probUnavailable, "title": "Service Unavailable",
			"status": http.StatusServiceUnavailable, "detail": "a dependency is unreachable", "checks": checks,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}
