package task

// Workflows: groups with an optional fan-in callback, and chains of steps
// (docs/workflows.md).
//
// Every task of a workflow gets its status document when the workflow is
// submitted: members as queued, each later step (a group's callback, a
// chain's successors) as waiting, holding the task message it will be
// enqueued with (Status.Pending). Submission writes these documents before
// it publishes anything, so a member's events always find a document that
// names its group, and a step's events one that names its successor.
//
// A group's progress is its group document: the member count and two
// bitmaps, done and failed, one bit per member. When the collector has
// applied a member's terminal event it sets the member's bits with a
// revision-checked write (a bit already set is no write at all), so
// duplicated or reordered events, two collectors racing and a collector
// killed between any two steps all end in the same document. Whoever
// then sees the bitmap full releases the callback: the waiting callback
// document is there once, made at submission, and releasing it publishes
// its message and then clears Pending. A release cut short is repeated by
// the next delivery of any member's terminal event (the collector acks an
// event only after its workflow step is done), at worst publishing the
// callback's message twice, which the runner's status check or the
// monotonic rule absorb as any duplicate delivery. A chain step releases
// its successor the same way when it succeeds, and cancels the rest of
// the chain when it does not.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"gocloud.dev/gcerrors"
)

// Workflow limits.
const (
	// MaxGroupMembers bounds a group: two bitmaps of 10 000 bits are
	// 2.5 KB of a group document, far inside DynamoDB's 400 KB item.
	MaxGroupMembers = 10000
	// MaxThenDepth bounds how many `then` a spec may nest: a chain has at
	// most MaxThenDepth+1 steps.
	MaxThenDepth = 16
)

// Failure policies of a group.
const (
	// OnFailureFail: a member that fails for good (or is cancelled) fails
	// the group, and its callback is cancelled instead of run.
	OnFailureFail = "fail"
	// OnFailureContinue: the callback runs once every member has ended,
	// with each member's outcome.
	OnFailureContinue = "continue"
)

// GroupSpec is a group as a client submits it.
type GroupSpec struct {
	Tasks     []Spec `json:"tasks"`
	Then      *Spec  `json:"then,omitempty"`
	OnFailure string `json:"on_failure,omitempty"`
}

// Normalize checks g and its specs, filling defaults, and returns a
// *FieldError naming the first field that is wrong.
func (g *GroupSpec) Normalize() error {
	switch n := len(g.Tasks); {
	case n == 0:
		return &FieldError{"tasks", "is empty; a group needs at least one task"}
	case n > MaxGroupMembers:
		return &FieldError{"tasks", fmt.Sprintf("holds %d tasks, more than the %d a group may hold", n, MaxGroupMembers)}
	}
	switch g.OnFailure {
	case "":
		g.OnFailure = OnFailureFail
	case OnFailureFail, OnFailureContinue:
	default:
		return &FieldError{"on_failure", fmt.Sprintf("%q is not one of %q, %q", truncate([]byte(g.OnFailure), 32), OnFailureFail, OnFailureContinue)}
	}
	for i := range g.Tasks {
		field := fmt.Sprintf("tasks[%d].", i)
		if g.Tasks[i].Then != nil {
			return &FieldError{field + "then", "a group's members cannot have successors; give the group a then (its callback), which may have its own then"}
		}
		if err := g.Tasks[i].Normalize(); err != nil {
			return prefixField(field, err)
		}
		if g.Tasks[i].IdempotencyKey != "" {
			return &FieldError{field + "idempotency_key", "is not supported on the tasks of a workflow"}
		}
	}
	if g.Then != nil {
		if err := g.Then.normalizeStep(1); err != nil {
			return prefixField("then.", err)
		}
	}
	return nil
}

// normalizeStep normalizes a spec that runs after others (a successor or
// a callback), depth being its place in the chain.
func (s *Spec) normalizeStep(depth int) error {
	if depth > MaxThenDepth {
		return &FieldError{"then", fmt.Sprintf("nests more than %d steps deep", MaxThenDepth)}
	}
	if err := s.Normalize(); err != nil {
		return err
	}
	if s.IdempotencyKey != "" {
		return &FieldError{"idempotency_key", "is not supported on the tasks of a workflow"}
	}
	if s.Delay != 0 {
		return &FieldError{"delay", "is not supported on a step that waits for others"}
	}
	if err := checkStepArgs(s.Args); err != nil {
		return &FieldError{"args", err.Error()}
	}
	return nil
}

// normalizeThen normalizes s.Then's chain, for Spec.Normalize.
func (s *Spec) normalizeThen() error {
	if s.Then == nil {
		return nil
	}
	if s.IdempotencyKey != "" {
		return &FieldError{"idempotency_key", "is not supported on the tasks of a workflow"}
	}
	depth := 1
	for t := s.Then; t != nil; t, depth = t.Then, depth+1 {
		if depth > MaxThenDepth {
			return &FieldError{"then", fmt.Sprintf("nests more than %d steps deep (a chain has at most %d steps)", MaxThenDepth, MaxThenDepth+1)}
		}
	}
	then := *s.Then
	next := then.Then
	then.Then = nil
	if err := then.normalizeStep(1); err != nil {
		return prefixField("then.", err)
	}
	then.Then = next
	if err := then.normalizeThen(); err != nil {
		return prefixField("then.", err)
	}
	*s.Then = then
	return nil
}

func prefixField(prefix string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: prefix + fe.Field, Reason: fe.Reason}
	}
	return err
}

// checkStepArgs checks that a later step's own args can be combined with
// its input (CombineInput).
func checkStepArgs(args json.RawMessage) error {
	a := bytes.TrimSpace(args)
	if len(a) == 0 {
		return nil
	}
	switch a[0] {
	case '[':
		return nil
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(a, &m); err != nil {
			return fmt.Errorf("not a JSON object: %v", err)
		}
		if _, ok := m["input"]; ok {
			return errors.New(`must not have an "input" member: the step's input goes there`)
		}
		return nil
	}
	return errors.New("must be an array, an object or absent on a step that takes its input from others")
}

// CombineInput makes the args of a later step from its own args and its
// input (the predecessor's result, or a group's results): absent own args
// give the input alone; an array gets the input prepended as its first
// element; an object gets it as its "input" member.
func CombineInput(own, input json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("null")
	}
	a := bytes.TrimSpace(own)
	switch {
	case len(a) == 0:
		return input, nil
	case a[0] == '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(a, &elems); err != nil {
			return nil, err
		}
		return json.Marshal(append([]json.RawMessage{input}, elems...))
	case a[0] == '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(a, &m); err != nil {
			return nil, err
		}
		m["input"] = input
		return json.Marshal(m)
	}
	return nil, fmt.Errorf("own args %s are not an array or an object", truncate(a, 32))
}

// DeriveID returns the ID of a task that belongs to parent, a task or
// group ID: a ULID with parent's timestamp and randomness derived from
// parent and what, so that it is the same every time it is derived.
func DeriveID(parent, what string) string {
	var id ulid.ULID
	if p, err := ulid.ParseStrict(parent); err == nil {
		copy(id[:6], p[:6])
	}
	sum := sha256.Sum256([]byte(parent + "/" + what))
	copy(id[6:], sum[:10])
	return id.String()
}

// MemberID is the ID of member i of group.
func MemberID(group string, i int) string { return DeriveID(group, "member/"+strconv.Itoa(i)) }

// CallbackID is the ID of group's callback.
func CallbackID(group string) string { return DeriveID(group, "callback") }

// NextID is the ID of the step after task id in a chain.
func NextID(id string) string { return DeriveID(id, "next") }

// GroupState is where a group is.
type GroupState string

// The states of a group.
const (
	GroupRunning   GroupState = "running"
	GroupSucceeded GroupState = "succeeded"
	GroupFailed    GroupState = "failed"
	GroupCancelled GroupState = "cancelled"
)

// groupDoc is a group's record in the status store.
type groupDoc struct {
	DocID     string    `docstore:"id"` // "group:" + ID
	Kind      string    `docstore:"kind"`
	ID        string    `docstore:"group"`
	Size      int       `docstore:"size"`
	OnFailure string    `docstore:"on_failure"`
	Callback  string    `docstore:"callback"`
	CreatedAt time.Time `docstore:"created_at"`
	// Done and Failed have bit i set when member i has ended, and ended
	// other than succeeded.
	Done   []byte `docstore:"done"`
	Failed []byte `docstore:"failed"`
	// Cancelled is set by a cancel request; Released once the callback
	// has been enqueued or cancelled.
	Cancelled        bool  `docstore:"cancelled"`
	Released         bool  `docstore:"released"`
	ExpiresAt        int64 `docstore:"expires_at"`
	DocstoreRevision any
}

func groupDocID(id string) string { return "group:" + id }

func bitSet(b []byte, i int) bool { return b[i/8]&(1<<(i%8)) != 0 }

func setBit(b []byte, i int) { b[i/8] |= 1 << (i % 8) }

func countBits(b []byte) int {
	n := 0
	for _, c := range b {
		n += bits.OnesCount8(c)
	}
	return n
}

func (g *groupDoc) complete() bool { return countBits(g.Done) == g.Size }

// firstFailed is the index of the first failed member, -1 if none.
func (g *groupDoc) firstFailed() int {
	for i := range g.Size {
		if bitSet(g.Failed, i) {
			return i
		}
	}
	return -1
}

// Group is a group's document as the API shows it.
type Group struct {
	ID        string     `json:"id"`
	State     GroupState `json:"state"`
	Size      int        `json:"size"`
	OnFailure string     `json:"on_failure"`
	CreatedAt time.Time  `json:"created_at"`
	// Counts are the members by state; Done counts those the group has
	// seen end (the fan-in's bitmap).
	Counts map[State]int `json:"counts"`
	Done   int           `json:"done"`
	// Callback is the callback task's ID and state, if there is one.
	Callback      string `json:"callback,omitempty"`
	CallbackState State  `json:"callback_state,omitempty"`
	// Members is one page of the members' statuses in index order,
	// starting at index Cursor; NextCursor is the next page's, 0 after the
	// last.
	Members    []*Status `json:"members"`
	Cursor     int       `json:"cursor"`
	NextCursor int       `json:"next_cursor,omitempty"`
}

// ErrGroupNotFound is returned for a group the store does not have.
var ErrGroupNotFound = errors.New("group not found")

// getGroup reads group id's document.
func (s *Store) getGroup(ctx context.Context, id string) (*groupDoc, error) {
	g := &groupDoc{DocID: groupDocID(id)}
	if err := s.coll.Get(ctx, g); err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("get group %s: %w", id, ErrGroupNotFound)
		}
		return nil, fmt.Errorf("get group %s: %w", id, err)
	}
	if g.Kind != KindGroup {
		return nil, fmt.Errorf("get group %s: %w", id, ErrGroupNotFound)
	}
	// Some in-memory drivers (gocloud's memdocstore) hand out the stored
	// slices themselves: the bitmaps are changed in place before a write.
	g.Done, g.Failed = bytes.Clone(g.Done), bytes.Clone(g.Failed)
	if len(g.Done) < (g.Size+7)/8 || len(g.Failed) < (g.Size+7)/8 {
		return nil, fmt.Errorf("get group %s: bitmaps of %d and %d bytes for %d members", id, len(g.Done), len(g.Failed), g.Size)
	}
	return g, nil
}

// updateGroup applies change to group id's document under its revision,
// re-reading on conflict, until change reports no change or the write
// lands; it returns the document as it ends.
func (s *Store) updateGroup(ctx context.Context, id string, change func(*groupDoc) bool) (*groupDoc, error) {
	for range maxConflictRetries {
		g, err := s.getGroup(ctx, id)
		if err != nil {
			return nil, err
		}
		if !change(g) {
			return g, nil
		}
		err = s.coll.Replace(ctx, g)
		if err == nil {
			return g, nil
		}
		if !conflict(err) {
			return nil, fmt.Errorf("update group %s: %w", id, err)
		}
	}
	return nil, fmt.Errorf("update group %s: still conflicting after %d tries", id, maxConflictRetries)
}

// GroupPage reads group id with members [cursor, cursor+limit) in index
// order (limit 0: no members). It reads every member's state for Counts.
func (s *Store) GroupPage(ctx context.Context, id string, cursor, limit int) (*Group, error) {
	g, err := s.getGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &Group{
		ID: g.ID, Size: g.Size, OnFailure: g.OnFailure, CreatedAt: g.CreatedAt, Callback: g.Callback,
		Counts: map[State]int{}, Done: countBits(g.Done), Cursor: cursor, Members: []*Status{},
	}
	ids := make([]string, g.Size)
	for i := range ids {
		ids[i] = MemberID(g.ID, i)
	}
	for lo := 0; lo < len(ids); lo += 1000 {
		states, err := s.States(ctx, ids[lo:min(lo+1000, len(ids))])
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", id, err)
		}
		for _, st := range states {
			if st != "" {
				out.Counts[st]++
			}
		}
	}
	if limit > 0 && cursor < g.Size {
		hi := min(cursor+limit, g.Size)
		sts, err := s.GetMany(ctx, ids[cursor:hi])
		if err != nil {
			return nil, fmt.Errorf("group %s members: %w", id, err)
		}
		for _, st := range sts {
			if st != nil {
				out.Members = append(out.Members, st)
			}
		}
		if hi < g.Size {
			out.NextCursor = hi
		}
	}
	var cb *Status
	if g.Callback != "" {
		if cb, err = s.Get(ctx, g.Callback); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if cb != nil {
			out.CallbackState = cb.State
		}
	}
	out.State = g.state(cb)
	return out, nil
}

// state derives a group's state from its document and its callback's.
func (g *groupDoc) state(cb *Status) GroupState {
	switch {
	case g.Cancelled:
		return GroupCancelled
	case g.OnFailure == OnFailureFail && g.firstFailed() >= 0:
		return GroupFailed
	case cb != nil && (cb.State == Failed || cb.State == Cancelled):
		return GroupFailed
	case !g.complete():
		return GroupRunning
	case cb == nil || cb.State == Succeeded:
		return GroupSucceeded
	}
	return GroupRunning
}

// Workflow moves groups and chains on as their tasks end: the collector
// runs it on every terminal event it applies, the API on every task it
// cancels. Tasks is where released steps are published.
type Workflow struct {
	Store   *Store
	Archive *Archive
	Tasks   *Topic
	// Queues, if set, are the declared queues: a step goes to its
	// queue's topic there, not to Tasks.
	Queues *Queues
	// PayloadLimit is the largest args a released step's message carries
	// inline (DefaultPayloadLimit).
	PayloadLimit int
	Log          *slog.Logger
}

// Linked reports whether st's ending moves a workflow on.
func Linked(st *Status) bool {
	return st != nil && st.State.Terminal() && (st.GroupID != "" || st.Next != "")
}

// Advance moves on the workflows of the ended tasks sts (others are
// skipped). It is idempotent: running it again on the same documents, in
// any order, from several processes at once, changes nothing more.
func (w *Workflow) Advance(ctx context.Context, sts []*Status) error {
	byGroup := map[string][]*Status{}
	var groups []string
	var errs []error
	for _, st := range sts {
		if !Linked(st) {
			continue
		}
		if st.GroupID != "" {
			if _, ok := byGroup[st.GroupID]; !ok {
				groups = append(groups, st.GroupID)
			}
			byGroup[st.GroupID] = append(byGroup[st.GroupID], st)
		}
		if st.Next != "" {
			if err := w.advanceChain(ctx, st); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, id := range groups {
		if err := w.advanceGroup(ctx, id, byGroup[id]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// advanceGroup records ended members and releases the callback once all
// have ended.
func (w *Workflow) advanceGroup(ctx context.Context, id string, members []*Status) error {
	g, err := w.Store.updateGroup(ctx, id, func(g *groupDoc) bool {
		changed := false
		for _, st := range members {
			i := st.GroupIndex
			if i < 0 || i >= g.Size || bitSet(g.Done, i) {
				continue
			}
			setBit(g.Done, i)
			if st.State != Succeeded {
				setBit(g.Failed, i)
			}
			changed = true
		}
		return changed
	})
	if err != nil {
		return fmt.Errorf("group %s: record %d members: %w", id, len(members), err)
	}
	if g.Callback == "" || g.Released || g.Cancelled {
		return nil
	}
	failed := g.firstFailed()
	switch {
	case g.OnFailure == OnFailureFail && failed >= 0:
		// A chord error: the callback does not run. No need to wait for
		// the other members.
		reason := fmt.Sprintf("group %s: member %d (task %s) did not succeed", id, failed, MemberID(id, failed))
		if err := w.cancelFrom(ctx, g.Callback, reason); err != nil {
			return err
		}
	case !g.complete():
		return nil
	default:
		if err := w.releaseCallback(ctx, g); err != nil {
			return err
		}
	}
	_, err = w.Store.updateGroup(ctx, id, func(g *groupDoc) bool {
		if g.Released {
			return false
		}
		g.Released = true
		return true
	})
	return err
}

// MemberResult is one element of a group callback's input.
type MemberResult struct {
	Index     int             `json:"index"`
	TaskID    string          `json:"task_id"`
	State     State           `json:"state"`
	Result    json.RawMessage `json:"result,omitempty"`
	ResultRef string          `json:"result_ref,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// releaseCallback publishes g's callback with the members' results.
func (w *Workflow) releaseCallback(ctx context.Context, g *groupDoc) error {
	cb, err := w.Store.Get(ctx, g.Callback)
	if err != nil {
		return fmt.Errorf("group %s: callback %s: %w", g.ID, g.Callback, err)
	}
	if cb.Pending == "" || cb.State != Waiting {
		return nil
	}
	results := make([]MemberResult, 0, g.Size)
	for lo := 0; lo < g.Size; lo += 1000 {
		ids := make([]string, 0, 1000)
		for i := lo; i < min(lo+1000, g.Size); i++ {
			ids = append(ids, MemberID(g.ID, i))
		}
		sts, err := w.Store.GetMany(ctx, ids)
		if err != nil {
			return fmt.Errorf("group %s: read members' results: %w", g.ID, err)
		}
		for k, st := range sts {
			if st == nil {
				return fmt.Errorf("group %s: member %d (task %s) has no document", g.ID, lo+k, ids[k])
			}
			results = append(results, MemberResult{
				Index: lo + k, TaskID: st.ID, State: st.State, Result: st.Result, ResultRef: st.ResultRef, Error: st.Error,
			})
		}
	}
	input, err := json.Marshal(results)
	if err != nil {
		return fmt.Errorf("group %s: encode results: %w", g.ID, err)
	}
	return w.release(ctx, cb, input)
}

// advanceChain releases the step after st if st succeeded, and cancels
// the rest of the chain otherwise.
func (w *Workflow) advanceChain(ctx context.Context, st *Status) error {
	next, err := w.Store.Get(ctx, st.Next)
	if err != nil {
		return fmt.Errorf("chain after %s: next step %s: %w", st.ID, st.Next, err)
	}
	if next.Pending == "" || next.State != Waiting {
		return nil
	}
	if st.State != Succeeded {
		reason := fmt.Sprintf("previous step %s %s", st.ID, st.State)
		if st.Error != "" {
			reason += ": " + st.Error
		}
		return w.cancelFrom(ctx, next.ID, reason)
	}
	input := json.RawMessage(st.Result)
	if st.ResultRef != "" {
		if input, err = w.Archive.Get(ctx, st.ResultRef, 64<<20); err != nil {
			return fmt.Errorf("chain after %s: read result %s: %w", st.ID, st.ResultRef, err)
		}
	}
	return w.release(ctx, next, input)
}

// release publishes a waiting step with input combined into its args,
// then clears its Pending (and moves it from waiting to queued unless its
// events got there first).
func (w *Workflow) release(ctx context.Context, st *Status, input json.RawMessage) error {
	m, err := DecodeMessage([]byte(st.Pending))
	if err != nil {
		return fmt.Errorf("release %s: its pending message: %w", st.ID, err)
	}
	tasks := w.Tasks
	if w.Queues != nil {
		tasks = w.Queues.Topic(m.Queue)
	}
	if tasks == nil {
		return fmt.Errorf("release %s: this process has no topic for queue %s to enqueue workflow steps on (set DROVER_TASKS_TOPIC or DROVER_QUEUE_URLS)", st.ID, m.Queue)
	}
	own := m.Args
	if m.ArgsRef != "" {
		if own, err = w.Archive.Get(ctx, m.ArgsRef, 64<<20); err != nil {
			return fmt.Errorf("release %s: read its args %s: %w", st.ID, m.ArgsRef, err)
		}
	}
	args, err := CombineInput(own, input)
	if err != nil {
		return fmt.Errorf("release %s: combine args with input: %w", st.ID, err)
	}
	limit := w.PayloadLimit
	if limit <= 0 {
		limit = DefaultPayloadLimit
	}
	m.Args, m.ArgsRef = args, ""
	if len(args) > limit {
		m.Args, m.ArgsRef = nil, InputKey(st.ID)
		if err := w.Archive.Put(ctx, m.ArgsRef, "application/json", args); err != nil {
			return fmt.Errorf("release %s: archive args: %w", st.ID, err)
		}
	}
	body, err := EncodeMessage(m)
	if err != nil {
		return fmt.Errorf("release %s: encode: %w", st.ID, err)
	}
	if err := tasks.Send(ctx, body, 0); err != nil {
		return fmt.Errorf("release %s: enqueue: %w", st.ID, err)
	}
	if w.Log != nil {
		w.Log.Info("workflow step enqueued", "task_id", st.ID, "function", st.Function, "previous", st.Previous, "group", st.CallbackOf)
	}
	return w.Store.settlePending(ctx, st.ID)
}

// InputKey is where a released step's args are archived when too large to
// travel inline: each step has its own key, written with the same bytes by
// every release of it.
func InputKey(id string) string { return PrefixPayloads + id + ".input" }

// settlePending clears task id's Pending, moving it to queued if it is
// still waiting.
func (s *Store) settlePending(ctx context.Context, id string) error {
	for range maxConflictRetries {
		st, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		if st.Pending == "" {
			return nil
		}
		st.Pending = ""
		if st.State == Waiting {
			st.State = Queued
		}
		err = s.coll.Replace(ctx, st)
		if err == nil {
			return nil
		}
		if !conflict(err) {
			return fmt.Errorf("mark %s enqueued: %w", id, err)
		}
	}
	return fmt.Errorf("mark %s enqueued: still conflicting after %d tries", id, maxConflictRetries)
}

// cancelFrom cancels task id and every step after it, with reason. Steps
// already ended are skipped.
func (w *Workflow) cancelFrom(ctx context.Context, id, reason string) error {
	return w.Store.CancelChain(ctx, id, reason)
}

// CancelChain cancels task id and the steps after it that have not ended.
func (s *Store) CancelChain(ctx context.Context, id, reason string) error {
	for n := 0; id != "" && n <= MaxThenDepth+1; n++ {
		st, err := s.Cancel(ctx, id, reason)
		if err != nil && !errors.Is(err, ErrTerminal) {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		id = st.Next
	}
	return nil
}

// CancelGroup cancels group id: marks its document cancelled, cancels
// every member that has not ended and the callback with the steps after
// it. It returns ErrTerminal if the group had already ended.
func (s *Store) CancelGroup(ctx context.Context, id, reason string) error {
	var ended GroupState
	g, err := s.updateGroup(ctx, id, func(g *groupDoc) bool {
		if g.Cancelled {
			return false
		}
		var cb *Status
		if g.Callback != "" {
			cb, _ = s.Get(ctx, g.Callback)
		}
		if st := g.state(cb); st != GroupRunning {
			ended = st
			return false
		}
		g.Cancelled = true
		return true
	})
	if err != nil {
		return err
	}
	if ended != "" {
		return fmt.Errorf("cancel group %s: %w (%s)", id, ErrTerminal, ended)
	}
	ids := make([]string, g.Size)
	for i := range ids {
		ids[i] = MemberID(id, i)
	}
	for lo := 0; lo < len(ids); lo += 1000 {
		chunk := ids[lo:min(lo+1000, len(ids))]
		states, err := s.States(ctx, chunk)
		if err != nil {
			return fmt.Errorf("cancel group %s: %w", id, err)
		}
		for k, st := range states {
			if st == "" || st.Terminal() {
				continue
			}
			if _, err := s.Cancel(ctx, chunk[k], reason); err != nil && !errors.Is(err, ErrTerminal) {
				return fmt.Errorf("cancel group %s: member %s: %w", id, chunk[k], err)
			}
		}
	}
	if g.Callback != "" {
		return s.CancelChain(ctx, g.Callback, reason)
	}
	return nil
}

// CreateGroup writes the document of a new group of size members.
func (s *Store) CreateGroup(ctx context.Context, id string, size int, onFailure, callback string, now time.Time) error {
	n := (size + 7) / 8
	g := &groupDoc{
		DocID: groupDocID(id), Kind: KindGroup, ID: id, Size: size, OnFailure: onFailure, Callback: callback,
		CreatedAt: now, Done: make([]byte, n), Failed: make([]byte, n),
	}
	if s.Retention > 0 {
		// Kept a generous while past its members.
		g.ExpiresAt = now.Add(s.Retention + MaxTimeout*2).Unix()
	}
	if err := s.coll.Create(ctx, g); err != nil {
		return fmt.Errorf("create group %s: %w", id, err)
	}
	return nil
}

// DeleteGroup removes a group's document (rolling back a submission).
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	if err := s.coll.Delete(ctx, &groupDoc{DocID: groupDocID(id)}); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete group %s: %w", id, err)
	}
	return nil
}

// CreateSteps writes the first documents of a workflow's tasks, as
// given (queued members and first steps, waiting later steps), failing if
// any exists already.
func (s *Store) CreateSteps(ctx context.Context, sts []*Status) error {
	return s.createAll(ctx, sts, false)
}
