package memq

import (
	"container/heap"
	"context"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/pubsub/driver"

	"github.com/droverhq/drover/pkg/durable"
	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// Limits on how long a message can be held back.
const (
	// MaxDelay is the longest delay a send may ask for through
	// taskdriver.MetadataDelay; it is what TopicFeatures.MaxDelay reports.
	MaxDelay = 12 * time.Hour
	// MaxVisibility is the longest visibility timeout a subscription or a
	// SetVisibility call may use.
	MaxVisibility = 12 * time.Hour
)

// registry holds the process-wide queues by name.
var registry = struct {
	sync.Mutex
	queues map[string]*queue
}{queues: map[string]*queue{}}

// getQueue returns the queue called name, creating it (in memory) if
// needed.
func getQueue(name string) *queue {
	registry.Lock()
	defer registry.Unlock()
	q := registry.queues[name]
	if q == nil {
		q = &queue{name: name}
		registry.queues[name] = q
	}
	return q
}

// QueueStats is a snapshot of one queue's counts.
type QueueStats struct {
	Ready    int    // visible now, waiting for a receiver
	InFlight int    // delivered at least once and invisible until acked or timed out
	Delayed  int    // sent with a delay and not yet visible for the first time
	Sent     uint64 // messages ever sent to the queue
	Acked    uint64 // messages ever acked (deleted)
	Bytes    int64  // of the bodies of the messages not yet acked
}

// Len returns Ready+InFlight+Delayed: the messages not yet acked.
func (s QueueStats) Len() int { return s.Ready + s.InFlight + s.Delayed }

// Stats returns the counts of the queue called name. A queue that has never
// been opened reports zero counts (and is not created).
func Stats(name string) QueueStats {
	registry.Lock()
	q := registry.queues[name]
	registry.Unlock()
	if q == nil {
		return QueueStats{}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.advance(time.Now())
	return QueueStats{
		Ready:    q.nReady,
		InFlight: q.nInFlight,
		Delayed:  q.nDelayed,
		Sent:     q.sent,
		Acked:    q.acked,
		Bytes:    q.bytes,
	}
}

// Delete forgets the queue called name and the messages in it. Topics and
// subscriptions already open on it keep using the old queue; later opens of
// name get a new, empty one.
func Delete(name string) {
	registry.Lock()
	q := registry.queues[name]
	delete(registry.queues, name)
	registry.Unlock()
	if q != nil && q.eng != nil {
		q.eng.Close()
	}
}

// Message states.
const (
	stNew     = iota // not yet queued
	stReady          // in the ready FIFO
	stWaiting        // in the timer heap: delayed or in flight
	stDeleted        // acked
)

// message is one queued message. All fields but id, body and md are guarded
// by the queue's mutex.
type message struct {
	id   uint64
	body []byte
	md   map[string]string

	state    int
	at       time.Time // when a waiting message becomes ready
	hidx     int       // index in the heap while waiting
	epoch    uint32    // bumped on each push to the ready FIFO; stale entries are skipped
	gen      uint64    // delivery generation: bumped on each delivery
	receives int       // deliveries so far
	visSet   bool      // SetVisibility was called on the current delivery
}

// queue is a visibility-timeout queue: a FIFO of ready messages plus a
// min-heap of waiting ones keyed by the time they become ready. Expired heap
// entries are moved to the FIFO lazily, by whoever next looks at the queue.
type queue struct {
	name string

	// eng, if not nil, journals the queue (see durable.go) under pfx;
	// recovered counts what it held at load: ready, in flight, delayed.
	eng       *durable.Engine
	drain     atomic.Bool // a durable queue that goes on in low space (lowspace=drain)
	ordered   atomic.Bool // a durable queue whose sends do not wait for a sync (sendsync=ordered)
	pfx       []byte
	recovered [3]int

	mu        sync.Mutex
	ready     fifo
	waiting   timerHeap
	nReady    int
	nInFlight int
	nDelayed  int
	nextID    uint64
	sent      uint64
	acked     uint64
	bytes     int64 // of the bodies of the messages held (not acked)

	// waiters are the blocked receivers, oldest first. A message made
	// ready wakes one of them (not all: with a runner's workers all
	// blocked on one queue, waking every one of them for each message
	// made most wake only to sleep again, and the scheduler queue behind
	// them set the latency tail).
	waiters []*waiter
}

// waiter is a blocked receiver: woken through ch (buffered, one token)
// when a message becomes ready or a deadline moves before until.
type waiter struct {
	ch    chan struct{}
	until time.Time
}

// park registers w, planning to sleep until until.
func (q *queue) park(w *waiter, until time.Time) {
	w.until = until
	q.waiters = append(q.waiters, w)
}

// unpark removes w if it is still registered, and reports whether it was
// (false: a signal took it off and its token is in w.ch or consumed).
func (q *queue) unpark(w *waiter) bool {
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// wakeOne wakes the longest-blocked receiver, if any.
func (q *queue) wakeOne() {
	if len(q.waiters) == 0 {
		return
	}
	w := q.waiters[0]
	// Shift rather than reslice, so that the slice keeps its capacity and
	// the next park does not allocate (there are few waiters).
	n := copy(q.waiters, q.waiters[1:])
	q.waiters[n] = nil
	q.waiters = q.waiters[:n]
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// wakeBefore wakes one receiver that plans to sleep past at, so that it
// re-arms for the new, earlier deadline.
func (q *queue) wakeBefore(at time.Time) {
	for i, w := range q.waiters {
		if at.Before(w.until) {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			select {
			case w.ch <- struct{}{}:
			default:
			}
			return
		}
	}
}

// toReady appends m (not in the heap) to the ready FIFO.
func (q *queue) toReady(m *message) {
	m.state = stReady
	m.epoch++
	q.ready.push(entry{m, m.epoch})
	q.nReady++
	q.wakeOne()
}

// toWaiting puts m (not in the heap) in the heap until at.
func (q *queue) toWaiting(m *message, at time.Time) {
	if m.state == stReady {
		q.nReady-- // its FIFO entry goes stale
	}
	m.state = stWaiting
	m.at = at
	heap.Push(&q.waiting, m)
	q.countWaiting(m, 1)
	if m.hidx == 0 {
		q.wakeBefore(at) // a waiter may sleep past the new first deadline
	}
}

// unWait removes m from the heap.
func (q *queue) unWait(m *message) {
	heap.Remove(&q.waiting, m.hidx)
	q.countWaiting(m, -1)
}

func (q *queue) countWaiting(m *message, n int) {
	if m.receives > 0 {
		q.nInFlight += n
	} else {
		q.nDelayed += n
	}
}

// advance moves every waiting message whose time has come to the FIFO.
func (q *queue) advance(now time.Time) {
	for len(q.waiting) > 0 && !q.waiting[0].at.After(now) {
		m := heap.Pop(&q.waiting).(*message)
		q.countWaiting(m, -1)
		q.toReady(m)
	}
	q.waiting.shrink()
}

// take delivers up to max ready messages, hiding each for vis, as wrap
// presents a delivery: a driver.Message for the portable receive, a
// taskdriver.Delivery for the direct one. It is the one receive path of
// the queue.
func take[T any](q *queue, now time.Time, max int, vis time.Duration, wrap func(*delivery) T) []T {
	n := min(max, q.nReady)
	out := make([]T, 0, n)
	var taken []*message // for the journal of a durable queue
	for len(out) < n {
		e, ok := q.ready.pop()
		if !ok {
			break // cannot happen while nReady is right
		}
		m := e.m
		if m.state != stReady || m.epoch != e.epoch {
			continue // stale entry: acked or hidden again since
		}
		m.gen++
		m.receives++
		m.visSet = false
		q.toWaiting(m, now.Add(vis))
		out = append(out, wrap(&delivery{q: q, m: m, gen: m.gen, count: m.receives}))
		if q.eng != nil {
			taken = append(taken, m)
		}
	}
	q.ready.shrink()
	if len(taken) > 0 {
		q.journal(taken...)
	}
	return out
}

// id is the delivery's message ID, for logs.
func (d *delivery) id() string { return d.q.name + "/" + strconv.FormatUint(d.m.id, 10) }

// message presents d to gocloud's portable subscription.
func (d *delivery) message() *driver.Message {
	var md map[string]string
	if len(d.m.md) > 0 {
		md = maps.Clone(d.m.md) // receivers may modify theirs
	}
	return &driver.Message{LoggableID: d.id(), Body: d.m.body, Metadata: md, AckID: d, AsFunc: d.as}
}

// direct presents d as a task delivery, settled at once by its Ack and
// Nack.
func (d *delivery) direct() *taskdriver.Delivery {
	return &taskdriver.Delivery{ID: d.id(), Body: d.m.body, Lease: d, Ack: d.ackNow, Nack: d.nackNow}
}

// ackNow and nackNow settle a direct delivery at once.
func (d *delivery) ackNow()  { d.settleNow((*queue).ack) }
func (d *delivery) nackNow() { d.settleNow((*queue).nack) }

func (d *delivery) settleNow(op func(*queue, *delivery) *message) {
	q := d.q
	q.mu.Lock()
	if m := op(q, d); m != nil {
		q.journal(m)
	}
	q.waiting.shrink()
	q.mu.Unlock()
}

// current reports whether d is still the latest delivery of a live message.
func (d *delivery) current() bool {
	return d.m.state != stDeleted && d.m.gen == d.gen
}

// ack deletes d's message if d is current, and returns it if so.
func (q *queue) ack(d *delivery) *message {
	if !d.current() {
		return nil
	}
	m := d.m
	switch m.state {
	case stWaiting:
		q.unWait(m)
	case stReady:
		q.nReady-- // its FIFO entry goes stale
	}
	m.state = stDeleted
	q.bytes -= int64(len(m.body))
	m.body, m.md = nil, nil // receivers keep their own slice headers
	q.acked++
	return m
}

// nack makes d's message visible now, unless SetVisibility chose when,
// and returns it if it did.
func (q *queue) nack(d *delivery) *message {
	if !d.current() || d.m.visSet || d.m.state != stWaiting {
		return nil
	}
	q.unWait(d.m)
	q.toReady(d.m)
	return d.m
}

// setVisibility hides d's message for vis from now (vis == 0: visible now).
func (q *queue) setVisibility(d *delivery, now time.Time, vis time.Duration) error {
	if !d.current() {
		return ErrStaleDelivery
	}
	m := d.m
	m.visSet = true
	switch {
	case vis == 0 && m.state == stWaiting:
		q.unWait(m)
		q.toReady(m)
	case vis == 0:
		// Already ready.
	case m.state == stWaiting:
		m.at = now.Add(vis)
		heap.Fix(&q.waiting, m.hidx)
		if m.hidx == 0 {
			q.wakeBefore(m.at)
		}
	default:
		q.toWaiting(m, now.Add(vis))
	}
	q.journal(m)
	return nil
}

// delivery is one delivery of a message: the AckID of the driver.Message
// and the taskdriver.LeaseControl reached through its As.
type delivery struct {
	q     *queue
	m     *message
	gen   uint64
	count int
}

var _ taskdriver.LeaseControl = (*delivery)(nil)

func (d *delivery) as(i any) bool {
	p, ok := i.(*taskdriver.LeaseControl)
	if !ok {
		return false
	}
	*p = d
	return true
}

// ReceiveCount implements taskdriver.LeaseControl.
func (d *delivery) ReceiveCount() int { return d.count }

// SetVisibility implements taskdriver.LeaseControl. It returns ErrStaleDelivery,
// and changes nothing, if the message has been acked or delivered again
// since this delivery.
func (d *delivery) SetVisibility(ctx context.Context, vis time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if vis < 0 || vis > MaxVisibility {
		return taskdriver.Errorf(codeInvalid, "memq: visibility %v out of range [0, %v]", vis, MaxVisibility)
	}
	d.q.mu.Lock()
	defer d.q.mu.Unlock()
	return d.q.setVisibility(d, time.Now(), vis)
}

// entry is a ready-FIFO slot; it is stale unless epoch matches m.epoch.
type entry struct {
	m     *message
	epoch uint32
}

// fifo is a growable ring buffer that shrinks again when mostly empty, so
// acked messages are not kept alive by it.
type fifo struct {
	buf  []entry
	head int
	n    int
}

func (f *fifo) push(e entry) {
	if f.n == len(f.buf) {
		f.resize(max(16, 2*len(f.buf)))
	}
	f.buf[(f.head+f.n)%len(f.buf)] = e
	f.n++
}

func (f *fifo) pop() (entry, bool) {
	if f.n == 0 {
		return entry{}, false
	}
	e := f.buf[f.head]
	f.buf[f.head] = entry{}
	f.head = (f.head + 1) % len(f.buf)
	f.n--
	return e, true
}

func (f *fifo) shrink() {
	if len(f.buf) > 1024 && f.n < len(f.buf)/4 {
		f.resize(len(f.buf) / 2)
	}
}

func (f *fifo) resize(size int) {
	buf := make([]entry, size)
	for i := range f.n {
		buf[i] = f.buf[(f.head+i)%len(f.buf)]
	}
	f.buf, f.head = buf, 0
}

// timerHeap is a container/heap of waiting messages ordered by at.
type timerHeap []*message

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *timerHeap) Push(x any) {
	m := x.(*message)
	m.hidx = len(*h)
	*h = append(*h, m)
}
func (h *timerHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	m.hidx = -1
	*h = old[:len(old)-1]
	return m
}

// shrink reallocates the heap when it is mostly empty.
func (h *timerHeap) shrink() {
	if cap(*h) > 1024 && len(*h) < cap(*h)/4 {
		*h = append(make(timerHeap, 0, cap(*h)/2), *h...)
	}
}
