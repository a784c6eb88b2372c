package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strings"
	"time"

	"gocloud.dev/docstore"
	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/task/driver"
)

// Errors of the status store.
var (
	ErrNotFound = errors.New("task not found")
	ErrTerminal = errors.New("task already finished")
)

// The documents the store writes, for drivers that load them typed
// (driver.DocumentTypes).
func init() {
	for _, t := range []reflect.Type{
		reflect.TypeFor[Status](), reflect.TypeFor[keyDoc](),
		reflect.TypeFor[groupDoc](), reflect.TypeFor[RunnerInfo](),
	} {
		driver.RegisterDocumentType(t)
	}
}

// Store is the status collection: one document per task, plus runner
// heartbeats and idempotency keys, told apart by their kind field. Every
// write that depends on a read is checked against the document's revision
// (optimistic concurrency) and retried on conflict.
type Store struct {
	coll *docstore.Collection
	// Retention is how long finished task documents are kept (their
	// expires_at, honoured by stores with TTL such as DynamoDB). Zero
	// keeps them forever.
	Retention time.Duration
	// Terminal, if not nil, is called once per task whose document Apply
	// moved from a non-terminal state (or none) to a terminal one, after
	// the write succeeded: under the store's revisions, one call per task
	// however many collectors and duplicate events there are. Metrics use
	// it; it must not block or modify the document.
	Terminal func(*Status)
	// direct is the driver's DirectCollection, nil if it has none.
	direct driver.DirectCollection
	// syncer is the driver's Syncer, nil if its writes are durable when
	// they return.
	syncer driver.Syncer
}

// OpenStore opens the status collection at a gocloud docstore URL
// (mem://, dynamodb://, ...). The collection's key field must be "id".
func OpenStore(ctx context.Context, url string) (*Store, error) {
	c, err := docstore.OpenCollection(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open status store %s: %w", redactURL(url), err)
	}
	return NewStore(c), nil
}

// NewStore wraps an open collection keyed by "id".
func NewStore(c *docstore.Collection) *Store {
	s := &Store{coll: c}
	var d driver.DirectCollection
	if c.As(&d) {
		s.direct = d
	}
	var sy driver.Syncer
	if c.As(&sy) {
		s.syncer = sy
	}
	return s
}

// Close closes the collection (the embedded store saves its file then).
func (s *Store) Close() error { return s.coll.Close() }

// getAll reads docs in one batch, through the driver's DirectCollection
// when it has one and as one action list otherwise. errs is nil when every
// read succeeded, else errs[i] is document i's error (or nil); err is a
// failure of the batch as a whole.
func (s *Store) getAll(ctx context.Context, docs []any, fields ...string) (errs []error, err error) {
	if s.direct != nil {
		return s.direct.GetDirect(ctx, docs, fields...)
	}
	fps := make([]docstore.FieldPath, len(fields))
	for i, f := range fields {
		fps[i] = docstore.FieldPath(f)
	}
	al := s.coll.Actions()
	for _, d := range docs {
		al.Get(d, fps...)
	}
	return actionErrors(al.Do(ctx), len(docs))
}

// writeAll creates docs[i] where create[i] and replaces it under its
// revision otherwise, in batches of maxConcurrentWrites (one on a direct
// store); it returns as getAll does.
func (s *Store) writeAll(ctx context.Context, docs []any, create []bool) (errs []error, err error) {
	if s.direct != nil {
		return s.direct.WriteDirect(ctx, docs, create)
	}
	for lo := 0; lo < len(docs); lo += maxConcurrentWrites {
		hi := min(lo+maxConcurrentWrites, len(docs))
		al := s.coll.Actions()
		for i := lo; i < hi; i++ {
			if create[i] {
				al.Create(docs[i])
			} else {
				al.Replace(docs[i])
			}
		}
		part, err := actionErrors(al.Do(ctx), hi-lo)
		if err != nil {
			return nil, err
		}
		if part != nil {
			if errs == nil {
				errs = make([]error, len(docs))
			}
			copy(errs[lo:hi], part)
		}
	}
	return errs, nil
}

// maxConcurrentWrites bounds the writes of one action list: gocloud's
// DynamoDB driver makes each conditional write its own request, all at
// once, and a thousand at once reset connections (moto) or meet
// throttling (DynamoDB) where a hundred at a time go through.
const maxConcurrentWrites = 100

// actionErrors splits the error of an action list of n actions into one
// per action, or returns it whole when it is not about single actions.
func actionErrors(err error, n int) ([]error, error) {
	if err == nil {
		return nil, nil
	}
	var ale docstore.ActionListError
	if !errors.As(err, &ale) {
		return nil, err
	}
	errs := make([]error, n)
	for _, e := range ale {
		if e.Index < 0 || e.Index >= n {
			return nil, e.Err // the collection is closed, say
		}
		errs[e.Index] = e.Err
	}
	return errs, nil
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	doc := &Status{ID: "ping:readyz"}
	err := s.coll.Get(ctx, doc, "id")
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("status store: %w", err)
	}
	return nil
}

// maxConflictRetries bounds the read-apply-write loop of one document.
const maxConflictRetries = 20

func conflict(err error) bool {
	c := driver.Code(err)
	return c == gcerrors.FailedPrecondition || c == gcerrors.AlreadyExists
}

// Get returns the status document of task id.
func (s *Store) Get(ctx context.Context, id string) (*Status, error) {
	st := &Status{ID: id}
	if err := s.coll.Get(ctx, st); err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("get status %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("get status %s: %w", id, err)
	}
	if st.Kind != KindTask {
		return nil, fmt.Errorf("get status %s: %w", id, ErrNotFound)
	}
	st.loaded()
	return st, nil
}

// GetMany returns the documents of ids, in order, nil where a task has no
// document.
func (s *Store) GetMany(ctx context.Context, ids []string) ([]*Status, error) {
	out := make([]*Status, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	// One get per document: an action list naming a key twice fails
	// whole (gocloud docstore), and a runner's batch may hold two
	// deliveries of one task.
	first := make(map[string]int, len(ids))
	var docs []any
	var got []*Status
	for i, id := range ids {
		if _, dup := first[id]; dup {
			continue
		}
		first[id] = i
		out[i] = &Status{ID: id}
		docs, got = append(docs, out[i]), append(got, out[i])
	}
	errs, err := s.getAll(ctx, docs)
	if err != nil {
		return nil, fmt.Errorf("get %d statuses: %w", len(docs), err)
	}
	for k, err := range errs {
		if err == nil {
			continue
		}
		if driver.Code(err) != gcerrors.NotFound {
			return nil, fmt.Errorf("get status %s: %w", got[k].ID, err)
		}
		out[first[got[k].ID]] = nil
	}
	for i, id := range ids {
		j := first[id]
		switch st := out[j]; {
		case st != nil && st.Kind != KindTask:
			out[i] = nil
		case j != i:
			if st != nil {
				c := *st // its own copy: callers change what they get
				out[i] = &c
			}
		case st != nil:
			st.loaded()
		}
	}
	return out, nil
}

// States returns the states of the tasks ids, in order, "" where a task
// has no document. It reads only the state (and kind) of each document,
// all in one action list, which is what a runner needs before it runs a
// delivery.
func (s *Store) States(ctx context.Context, ids []string) ([]State, error) {
	out := make([]State, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	docs := make([]Status, len(ids))
	ptrs := make([]any, len(ids))
	for i, id := range ids {
		docs[i].ID = id
		ptrs[i] = &docs[i]
	}
	errs, err := s.getAll(ctx, ptrs, "state", "kind")
	if err != nil {
		return nil, fmt.Errorf("get %d states: %w", len(ids), err)
	}
	for i := range docs {
		if errs != nil && errs[i] != nil {
			if driver.Code(errs[i]) != gcerrors.NotFound {
				return nil, fmt.Errorf("get state of %s: %w", ids[i], errs[i])
			}
			continue
		}
		if docs[i].Kind == KindTask {
			out[i] = docs[i].State
		}
	}
	return out, nil
}

// loaded restores fields the store keeps in another form.
func (st *Status) loaded() {
	if st.ResultJSON != "" {
		st.Result = json.RawMessage(st.ResultJSON)
	}
	if st.GroupID != "" {
		st.Group = &GroupRef{ID: st.GroupID, Index: st.GroupIndex}
	}
	if st.RequiresText != "" {
		st.Requires = ParseRequiresText(st.RequiresText)
	}
	if st.MatchedText != "" {
		st.Matched, _ = ParseTraits(st.MatchedText)
	}
}

func (s *Store) expiry(st *Status) {
	st.ExpiresAt = 0
	if s.Retention > 0 && st.State.Terminal() && !st.FinishedAt.IsZero() {
		st.ExpiresAt = st.FinishedAt.Add(s.Retention).Unix()
	}
}

// CreateMany writes the first documents of new tasks. A task whose document
// already exists (its events overtook the dispatcher) is left as it is.
func (s *Store) CreateMany(ctx context.Context, sts []*Status) error {
	for _, st := range sts {
		st.State = Queued
	}
	return s.createAll(ctx, sts, true)
}

// createAll writes the first documents of tasks as given (phase
// submitted), in the batches of writeAll. A document that exists already
// is an error unless existing is true.
func (s *Store) createAll(ctx context.Context, sts []*Status, existing bool) error {
	if len(sts) == 0 {
		return nil
	}
	docs := make([]any, len(sts))
	create := make([]bool, len(sts))
	for i, st := range sts {
		st.Kind = KindTask
		st.Phase = PhaseSubmitted
		st.EventAt = st.CreatedAt
		st.DocstoreRevision = nil
		if st.Group != nil {
			st.GroupID, st.GroupIndex = st.Group.ID, st.Group.Index
		}
		s.expiry(st)
		docs[i], create[i] = st, true
	}
	errs, err := s.writeAll(ctx, docs, create)
	if err != nil {
		return fmt.Errorf("create %d statuses: %w", len(sts), err)
	}
	for i, err := range errs {
		if err != nil && !(existing && driver.Code(err) == gcerrors.AlreadyExists) {
			return fmt.Errorf("create status %s: %w", sts[i].ID, err)
		}
	}
	return nil
}

// DeleteMany removes task documents (used to roll back a submission that
// could not be enqueued).
func (s *Store) DeleteMany(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	for lo := 0; lo < len(ids); lo += maxConcurrentWrites {
		al := s.coll.Actions()
		for _, id := range ids[lo:min(lo+maxConcurrentWrites, len(ids))] {
			al.Delete(&Status{ID: id})
		}
		if err := al.Do(ctx); err != nil {
			return fmt.Errorf("delete %d statuses: %w", len(ids), err)
		}
	}
	return nil
}

// Apply applies events to the status documents by the ranking of
// machine.go, reading each affected document once and writing it back
// under its revision; documents that changed underneath are re-read and
// retried. Events for one task may come in any order, duplicated. It
// returns the task documents it wrote, as written (one per task whose
// document changed), also when it fails part way.
func (s *Store) Apply(ctx context.Context, events []*Event) ([]*Status, error) {
	written, _, err := s.apply(ctx, events, false)
	return written, err
}

// ApplyLinked is Apply that also returns the documents, as they are after
// the events, of the tasks that ended and belong to a workflow (Linked),
// whether or not these events changed them: a workflow step cut short by
// a crash is taken up again by a duplicate of its event.
func (s *Store) ApplyLinked(ctx context.Context, events []*Event) (written, linked []*Status, err error) {
	return s.apply(ctx, events, true)
}

func (s *Store) apply(ctx context.Context, events []*Event, linked bool) (wrote, out []*Status, err error) {
	byTask := map[string][]*Event{}
	var order []string
	for _, e := range events {
		if _, ok := byTask[e.TaskID]; !ok {
			order = append(order, e.TaskID)
		}
		byTask[e.TaskID] = append(byTask[e.TaskID], e)
	}
	pending := order
	for round := 0; len(pending) > 0; round++ {
		if round == maxConflictRetries {
			return wrote, out, fmt.Errorf("apply events to %d statuses (first %s): still conflicting after %d tries", len(pending), pending[0], round)
		}
		var cur []*Status
		cur, err = s.GetMany(ctx, pending)
		if err != nil {
			return wrote, out, err
		}
		var (
			written     []string
			writtenDocs []*Status
			wasTerminal []bool
			docs        []any
			create      []bool
		)
		for i, id := range pending {
			st := cur[i]
			fresh := st == nil
			if fresh {
				st = &Status{}
			}
			before := st.State.Terminal()
			changed := false
			for _, e := range byTask[id] {
				if st.Apply(e) {
					changed = true
				}
			}
			if !changed {
				if linked && Linked(st) {
					out = append(out, st)
				}
				continue
			}
			s.expiry(st)
			if fresh {
				st.DocstoreRevision = nil
			}
			docs, create = append(docs, st), append(create, fresh)
			written = append(written, id)
			writtenDocs = append(writtenDocs, st)
			wasTerminal = append(wasTerminal, before)
		}
		pending = nil
		if len(written) == 0 {
			break
		}
		var errs []error
		errs, err = s.writeAll(ctx, docs, create)
		if err != nil {
			return wrote, out, fmt.Errorf("write %d statuses: %w", len(written), err)
		}
		for i, st := range writtenDocs {
			if errs == nil || errs[i] == nil {
				wrote = append(wrote, st)
				if linked && Linked(st) {
					out = append(out, st)
				}
			}
		}
		for i, err := range errs {
			if err == nil {
				continue
			}
			if !conflict(err) {
				return wrote, out, fmt.Errorf("write status %s: %w", written[i], err)
			}
			pending = append(pending, written[i])
		}
		if s.Terminal != nil {
			for i, st := range writtenDocs {
				if (errs == nil || errs[i] == nil) && !wasTerminal[i] && st.State.Terminal() {
					s.Terminal(st)
				}
			}
		}
	}
	return wrote, out, nil
}

// Cancel moves task id to cancelled unless it is already terminal, in
// which case it returns the document with ErrTerminal.
func (s *Store) Cancel(ctx context.Context, id string, reason string) (*Status, error) {
	for range maxConflictRetries {
		st, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if st.State.Terminal() {
			return st, fmt.Errorf("cancel %s: %w (%s)", id, ErrTerminal, st.State)
		}
		e := &Event{
			TaskID: id, Function: st.Function, Queue: st.Queue, MaxAttempts: st.MaxAttempts,
			CreatedAt: st.CreatedAt, Attempt: st.Attempt, Phase: PhaseCancelled,
			Runner: st.Runner, At: time.Now().UTC(), StartedAt: st.StartedAt, Error: reason,
		}
		st.Apply(e)
		s.expiry(st)
		err = s.coll.Replace(ctx, st)
		if err == nil {
			// The client is told the task will not run: that must
			// survive a crash.
			if s.syncer != nil {
				if err := s.syncer.Sync(ctx); err != nil {
					return nil, fmt.Errorf("cancel %s: sync: %w", id, err)
				}
			}
			return st, nil
		}
		if !conflict(err) {
			return nil, fmt.Errorf("cancel %s: %w", id, err)
		}
	}
	return nil, fmt.Errorf("cancel %s: still conflicting after %d tries", id, maxConflictRetries)
}

// ListQuery selects task documents, newest first.
type ListQuery struct {
	State    State
	Function string
	Queue    string
	Limit    int
	// Cursor is the ID of the last task of the previous page.
	Cursor string
}

// List returns one page of task documents, newest first, and the cursor of
// the next page ("" when this is the last).
func (s *Store) List(ctx context.Context, q ListQuery) ([]*Status, string, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	// Every ID sorts below "~"; the bound lets stores serve the order
	// from the (kind, id) index.
	cursor := "~"
	if q.Cursor != "" {
		cursor = q.Cursor
	}
	query := s.coll.Query().Where("kind", "=", KindTask).Where("id", "<", cursor)
	if q.State != "" {
		query = query.Where("state", "=", string(q.State))
	}
	if q.Function != "" {
		query = query.Where("function", "=", q.Function)
	}
	if q.Queue != "" {
		query = query.Where("queue", "=", q.Queue)
	}
	iter := query.OrderBy("id", docstore.Descending).Limit(q.Limit + 1).Get(ctx)
	defer iter.Stop()
	var out []*Status
	for {
		st := &Status{}
		err := iter.Next(ctx, st)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("list statuses: %w", err)
		}
		st.loaded()
		out = append(out, st)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// runnerDoc is how a runner heartbeat is stored.
type runnerDoc struct {
	DocID string `docstore:"id"`
	RunnerInfo
}

// PutRunner records a runner heartbeat.
func (s *Store) PutRunner(ctx context.Context, r *RunnerInfo) error {
	d := &runnerDoc{DocID: runnerIDPrefix + r.ID, RunnerInfo: *r}
	d.Kind = KindRunner
	d.ExpiresAt = r.SeenAt.Add(24 * time.Hour).Unix()
	if err := s.coll.Put(ctx, d); err != nil {
		return fmt.Errorf("record runner %s: %w", r.ID, err)
	}
	return nil
}

// runnerIDPrefix starts the id of every runner document. It sorts above
// the ids of every other kind (task ULIDs, "group:", "key:"), which
// Runners relies on.
const runnerIDPrefix = "runner:"

// Runners returns the runners seen since the given time.
func (s *Store) Runners(ctx context.Context, since time.Time) ([]*RunnerInfo, error) {
	// The id bound and order let the embedded store walk its key index
	// from the first runner (runner ids sort last), where the kind filter
	// alone made it filter every document: at 100,000 statuses a read
	// took 72 µs instead of 159 ms (BenchmarkRunners), and dispatch's
	// runner cache paid it once a second while the submits behind it
	// waited. DynamoDB serves either form from the (kind, id) index.
	iter := s.coll.Query().Where("kind", "=", KindRunner).Where("id", ">", runnerIDPrefix).
		OrderBy("id", docstore.Ascending).Get(ctx)
	defer iter.Stop()
	var out []*RunnerInfo
	for {
		d := &runnerDoc{}
		err := iter.Next(ctx, d)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list runners: %w", err)
		}
		if !d.SeenAt.Before(since) {
			r := d.RunnerInfo
			// The document's id hides the embedded RunnerInfo.ID (both
			// are "id"), so the runner's ID is read back from it.
			r.ID = strings.TrimPrefix(d.DocID, runnerIDPrefix)
			out = append(out, &r)
		}
	}
	return out, nil
}

// redactURL drops credentials from a URL before it goes into an error.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
