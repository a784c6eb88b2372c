package durable

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoSpace is wrapped by Room's error while the engine's file system
// has less free space than the engine's reserve.
var ErrNoSpace = errors.New("durable: not enough free disk space")

// Reserve bounds: the default reserve is a twentieth of the file
// system's size within them.
const (
	minReserve = 1 << 20
	maxReserve = 256 << 20
	// spaceCheckEvery is how stale Room's view of the free space may be,
	// unless a reserve's eighth has been written since.
	spaceCheckEvery = 100 * time.Millisecond
)

// space guards the engine's file system: the work it accepts (sends that
// create work, see Room) stops while free space is under the reserve, so
// that the writes finishing the work already accepted — and pebble's own
// flushes — still find room, and it goes on by itself once space is freed.
// A write that fails anyway (another process filled the disk between two
// checks) fails the engine for good: loud, and nothing half written.
type space struct {
	dir     string
	reserve int64 // 0: no guard
	free    func(dir string) (free, size int64, err error)

	mu        sync.Mutex // held by the one check in progress
	checkedAt atomic.Int64
	written   atomic.Int64 // bytes applied since the last check
	low       atomic.Pointer[error]
}

func newSpace(dir string, reserve int64, free func(string) (int64, int64, error)) *space {
	s := &space{dir: dir, free: free}
	if reserve < 0 || free == nil {
		return s
	}
	if reserve == 0 {
		_, size, err := free(dir)
		if err != nil {
			return s // a file system that cannot tell: no guard
		}
		reserve = min(max(size/20, minReserve), maxReserve)
	}
	s.reserve = reserve
	s.check(time.Now())
	return s
}

// wrote counts n bytes applied.
func (s *space) wrote(n int) {
	if s.reserve > 0 {
		s.written.Add(int64(n))
	}
}

// room returns nil while there is more free space than the reserve.
func (s *space) room() error {
	if s.reserve == 0 {
		return nil
	}
	now := time.Now()
	if now.UnixNano()-s.checkedAt.Load() >= int64(spaceCheckEvery) || s.written.Load() >= s.reserve/8 {
		if s.mu.TryLock() { // else another caller is checking: use what it last saw
			s.check(now)
			s.mu.Unlock()
		}
	}
	if p := s.low.Load(); p != nil {
		return *p
	}
	return nil
}

// check looks at the free space, logging when the guard engages or lifts.
func (s *space) check(now time.Time) {
	s.written.Store(0)
	s.checkedAt.Store(now.UnixNano())
	free, _, err := s.free(s.dir)
	if err != nil {
		return // keep the last view
	}
	was := s.low.Load() != nil
	if free >= s.reserve {
		if was {
			s.low.Store(nil)
			slog.Default().Info("disk space freed: taking new work again", "dir", s.dir, "free_bytes", free, "reserve_bytes", s.reserve)
		}
		return
	}
	err = fmt.Errorf("%w in %s: %d bytes free, under the %d-byte reserve; new work is refused until space is freed", ErrNoSpace, s.dir, free, s.reserve)
	s.low.Store(&err)
	if !was {
		slog.Default().Warn("disk space low: refusing new work", "dir", s.dir, "free_bytes", free, "reserve_bytes", s.reserve)
	}
}

// Room reports whether the engine takes new work: nil while its file
// system has more free space than its reserve (Options.Reserve), else an
// error wrapping ErrNoSpace; the engine's failure, if it has failed. The
// drivers ask it before what creates work (a send to a queue that
// refuses in low space, a receive from it); what finishes work already
// taken goes on writing into the reserve.
func (e *Engine) Room() error {
	if err := e.Err(); err != nil {
		return err
	}
	return e.space.room()
}
