package memq

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/droverhq/drover/pkg/durable"

	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// A durable queue journals every change to its messages in a
// durable.Engine, and is rebuilt from it when first opened in a process.
// Under the queue's prefix "q/<name>\x00":
//
//	m<id> → the message: metadata count, then each key and value, then the body
//	s<id> → its state: when it becomes visible (Unix nanoseconds, 0: now)
//	        and its delivery count; none for a message sent without a
//	        delay and not yet delivered (visible now, delivered 0 times)
//
// A send is synced before it returns (and before its messages can be
// received), unless the queue's sends are ordered (sendsync=ordered, see
// the package doc); every later change (a delivery, a visibility change, a nack,
// an ack) is applied in order under the queue's lock without waiting, so
// the log holds them in the order they happened and the next sync — a
// send's, a document creation's — puts them on disk. After a crash a
// message comes back with its last journaled state: an in-flight one when
// its lease ends, a delayed one at its due time, with its delivery count.

// Attach opens the durable queue called name on eng, loading the messages
// journaled there, unless it is open already (on eng: nothing to do).
// It fails if name is open in this process in memory or on another
// engine. Attach takes over the caller's reference to eng (from
// durable.Open): the queue keeps one until Delete, and gives back the
// others.
func Attach(name string, eng *durable.Engine) (err error) {
	registry.Lock()
	defer registry.Unlock()
	defer func() {
		if err != nil {
			eng.Close()
		}
	}()
	if q := registry.queues[name]; q != nil {
		if q.eng == eng {
			eng.Close() // the queue holds one already
			return nil
		}
		if q.eng == nil {
			return fmt.Errorf("memq: queue %q is open in memory, not on %s", name, eng.Dir())
		}
		return fmt.Errorf("memq: queue %q is open on %s, not on %s", name, q.eng.Dir(), eng.Dir())
	}
	q := &queue{name: name, eng: eng, pfx: append([]byte("q/"+name), 0)}
	if err := q.load(time.Now()); err != nil {
		return err
	}
	registry.queues[name] = q
	return nil
}

// Recovered reports how many messages the queue called name loaded from
// its engine when attached: ready, in flight (visible again when their
// lease ends) and delayed.
func Recovered(name string) (ready, inFlight, delayed int) {
	registry.Lock()
	q := registry.queues[name]
	registry.Unlock()
	if q == nil {
		return 0, 0, 0
	}
	return q.recovered[0], q.recovered[1], q.recovered[2]
}

func (q *queue) key(kind byte, id uint64) []byte {
	k := make([]byte, 0, len(q.pfx)+9)
	k = append(k, q.pfx...)
	k = append(k, kind)
	return binary.BigEndian.AppendUint64(k, id)
}

func encodeState(at time.Time, receives int) []byte {
	var b []byte
	var ns int64
	if !at.IsZero() {
		ns = at.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	return binary.AppendUvarint(b, uint64(receives))
}

func encodeMessage(m *message) []byte {
	b := binary.AppendUvarint(nil, uint64(len(m.md)))
	keys := make([]string, 0, len(m.md))
	for k := range m.md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(m.md[k])))
		b = append(b, m.md[k]...)
	}
	return append(b, m.body...)
}

func decodeMessage(v []byte) (*message, error) {
	m := &message{}
	n, w := binary.Uvarint(v)
	if w <= 0 {
		return nil, fmt.Errorf("bad metadata count")
	}
	v = v[w:]
	str := func() (string, error) {
		l, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < l {
			return "", fmt.Errorf("bad metadata")
		}
		s := string(v[w : w+int(l)])
		v = v[w+int(l):]
		return s, nil
	}
	if n > 0 {
		m.md = make(map[string]string, n)
	}
	for range n {
		k, err := str()
		if err != nil {
			return nil, err
		}
		val, err := str()
		if err != nil {
			return nil, err
		}
		m.md[k] = val
	}
	if len(v) > 0 {
		m.body = append([]byte(nil), v...)
	}
	return m, nil
}

// load rebuilds the queue from its engine. Call before the queue is
// shared.
func (q *queue) load(now time.Time) error {
	byID := map[uint64]*message{}
	var ids []uint64
	mp := append(slices.Clone(q.pfx), 'm')
	err := q.eng.Scan(mp, func(k, v []byte) error {
		if len(k) != len(mp)+8 {
			return fmt.Errorf("memq: queue %q: bad message key %q in %s", q.name, k, q.eng.Dir())
		}
		m, err := decodeMessage(v)
		if err != nil {
			return fmt.Errorf("memq: queue %q: message %x in %s: %w", q.name, k[len(mp):], q.eng.Dir(), err)
		}
		m.id = binary.BigEndian.Uint64(k[len(mp):])
		byID[m.id] = m
		ids = append(ids, m.id)
		return nil
	})
	if err != nil {
		return err
	}
	sp := append(slices.Clone(q.pfx), 's')
	var orphans [][]byte
	err = q.eng.Scan(sp, func(k, v []byte) error {
		if len(k) != len(sp)+8 || len(v) < 9 {
			return fmt.Errorf("memq: queue %q: bad state record %q in %s", q.name, k, q.eng.Dir())
		}
		m := byID[binary.BigEndian.Uint64(k[len(sp):])]
		if m == nil {
			orphans = append(orphans, slices.Clone(k))
			return nil
		}
		if ns := int64(binary.BigEndian.Uint64(v)); ns != 0 {
			m.at = time.Unix(0, ns)
		}
		r, w := binary.Uvarint(v[8:])
		if w <= 0 {
			return fmt.Errorf("memq: queue %q: bad state record %q in %s", q.name, k, q.eng.Dir())
		}
		m.receives = int(r)
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids { // in id order: the FIFO keeps send order
		m := byID[id]
		q.nextID = max(q.nextID, id)
		q.sent++
		q.bytes += int64(len(m.body))
		switch {
		case m.at.After(now) && m.receives > 0:
			q.recovered[1]++
			q.toWaiting(m, m.at)
		case m.at.After(now):
			q.recovered[2]++
			q.toWaiting(m, m.at)
		default:
			q.recovered[0]++
			q.toReady(m)
		}
	}
	if len(orphans) > 0 {
		b := q.eng.NewBatch()
		for _, k := range orphans {
			b.Delete(k)
		}
		return q.eng.Apply(b, false)
	}
	return nil
}

// persistSend journals ms (ids assigned, at set for delayed ones) and
// waits for them to be synced, unless the queue's sends are ordered
// (sendsync=ordered): then they are in the log, before every change
// applied after they return, and on disk with the next sync. Call without
// the lock.
func (q *queue) persistSend(ms []*message) error {
	b := q.eng.NewBatch()
	for _, m := range ms {
		b.Set(q.key('m', m.id), encodeMessage(m))
		if !m.at.IsZero() {
			// A message without a state record is ready, never
			// delivered (load): only a delayed one needs one now.
			b.Set(q.key('s', m.id), encodeState(m.at, 0))
		}
	}
	if err := q.eng.Apply(b, !q.ordered.Load()); err != nil {
		return taskdriver.Errorf(gcerrors.Internal, "memq: queue %q: %v", q.name, err)
	}
	return nil
}

// journal records the current state of ms, without waiting. Call with
// the lock held, so that the log holds changes in the order they happen.
func (q *queue) journal(ms ...*message) {
	if q.eng == nil || len(ms) == 0 {
		return
	}
	b := q.eng.NewBatch()
	for _, m := range ms {
		switch m.state {
		case stDeleted:
			b.Delete(q.key('m', m.id))
			b.Delete(q.key('s', m.id))
		case stReady:
			b.Set(q.key('s', m.id), encodeState(time.Time{}, m.receives))
		default:
			b.Set(q.key('s', m.id), encodeState(m.at, m.receives))
		}
	}
	_ = q.eng.Apply(b, false) // a failure fails the engine: sends and receives stop
}

// engineErr is why the queue's engine refuses work, or nil.
func (q *queue) engineErr() error {
	if q.eng == nil {
		return nil
	}
	if err := q.eng.Err(); err != nil {
		return taskdriver.Errorf(gcerrors.Internal, "memq: queue %q: %v", q.name, err)
	}
	return nil
}

// sync waits for everything journaled so far to be on disk (a graceful
// stop keeps its acks).
func (q *queue) sync() error {
	if q == nil || q.eng == nil || q.eng.Err() != nil {
		return nil
	}
	return q.eng.Sync()
}

// Release syncs the durable queue called name and forgets it in this
// process, giving back its reference to its engine (the last reference
// closes the engine); its messages stay on disk for the next Attach. It is
// for a process's shutdown, once nothing uses the queue any more: a
// topic or subscription still open on it fails its later writes. A queue
// in memory, or not open, is left as it is.
func Release(name string) error {
	registry.Lock()
	q := registry.queues[name]
	if q == nil || q.eng == nil {
		registry.Unlock()
		return nil
	}
	delete(registry.queues, name)
	registry.Unlock()
	err := q.sync()
	if cerr := q.eng.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("memq: release queue %q: %w", name, err)
	}
	return nil
}

// room is why a send to the queue is refused for want of disk space, or
// nil: a durable queue refuses new messages (and its subscriptions take
// none) while its engine's file system is under the engine's reserve,
// unless it drains (lowspace=drain: a queue whose messages finish work
// already taken, like runners' events). The send is refused whole.
func (q *queue) room() error {
	if q.eng == nil {
		return nil
	}
	if q.drain.Load() {
		return nil
	}
	if err := q.eng.Room(); err != nil {
		return fmt.Errorf("%w: %w", taskdriver.ErrNotSent, taskdriver.Errorf(gcerrors.ResourceExhausted, "memq: queue %q: %v", q.name, err))
	}
	return nil
}

// lowSpaceWait is how long a receive waits, when the disk is low, before
// it returns nothing (and its caller asks again).
const lowSpaceWait = 200 * time.Millisecond

// lowSpace reports, after a short wait, whether the subscription's queue
// takes no work for want of disk space (see room): the runners stop taking
// tasks, and take them again once space is freed.
func (s *subscription) lowSpace(ctx context.Context) bool {
	if s.q.room() == nil {
		return false
	}
	t := time.NewTimer(min(s.wait, lowSpaceWait))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return true
}
