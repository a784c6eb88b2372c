// Package durable is the storage engine under Drover's embedded default
// in durable mode: one pebble database (github.com/cockroachdb/pebble) per
// data directory, shared by the in-process queue (pkg/memq) and status
// store (pkg/memstore) of a process, so that one write-ahead log orders
// their writes and one fsync covers every write before it.
//
// The drivers keep serving from their in-memory structures; the engine is
// their journal and their state at start. Every change is a pebble batch
// applied without waiting for its sync (ordered in the log after every
// earlier change), except the changes a caller is answered for — a send,
// a document's creation — which wait for a sync, once per call (a batch
// of creations waits after its last). Pebble's commit pipeline syncs the
// log once for every commit waiting on it (group commit), so waiting
// costs latency, not throughput. A queue may order its sends instead of
// syncing them (memq's sendsync=ordered) when what its senders do next is
// journaled after them here, as a runner's ack follows its event: a crash
// that loses such a send loses what came after it too.
//
// A disk that fills is met before it is full: while the free space on the
// engine's file system is under its reserve (Options.Reserve), Room
// reports ErrNoSpace, and the queues refuse new work (sends, and receives
// of tasks) until space is freed, while the writes that finish work
// already taken go on into the reserve.
//
// A write or sync that fails (a full disk, an I/O error) fails the engine
// for good: every later write returns ErrFailed wrapping the first
// failure, the drivers refuse sends and receives, and nothing is half
// applied (a pebble batch is all or nothing, in the log and in memory).
// The process must be restarted once the disk is fixed; what was synced is
// recovered then.
package durable

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrFailed is wrapped by every write of an engine that has failed.
var ErrFailed = errors.New("durable: storage engine failed")

// Options configure Open.
type Options struct {
	// FS is the file system, vfs.Default when nil (tests pass an
	// in-memory one that can simulate a power cut).
	FS vfs.FS
	// Reserve is the free space (in bytes) the engine keeps on its file
	// system: under it, Room refuses new work. Zero means a twentieth of
	// the file system's size, at least 1 MiB and at most 256 MiB;
	// negative, no reserve. An in-memory FS has none.
	Reserve int64
}

// Engine is one open pebble database, shared by every driver opened on
// its directory in this process.
type Engine struct {
	dir  string
	db   *pebble.DB
	refs int // guarded by registry.mu

	failed atomic.Pointer[error]
	space  *space
	// recovered says what pebble replayed from its logs at open.
	recovered []string
	// corrupt is the path of the last file pebble found corrupt.
	corrupt atomic.Pointer[string]

	// closing is held for writing by the last Close, for reading by
	// every commit: no commit reaches a closed database.
	closing sync.RWMutex
	closed  bool
}

var registry = struct {
	mu      sync.Mutex
	engines map[string]*Engine
}{engines: map[string]*Engine{}}

// Open returns the engine of dir, opening (or creating) its database when
// no driver of this process has it open. Each Open takes a reference that
// Close gives back; the database closes with the last one.
func Open(dir string, opts *Options) (*Engine, error) {
	if opts == nil {
		opts = &Options{}
	}
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("open data dir %s: %w", dir, err)
		}
		dir = abs
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if e := registry.engines[dir]; e != nil {
		e.refs++
		return e, nil
	}
	e := &Engine{dir: dir, refs: 1}
	log := &pebbleLog{}
	po := &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		// A few large memtables: the queue's messages are mostly
		// deleted (acked) before their memtable is flushed, so they
		// never reach an sstable.
		MemTableSize:                64 << 20,
		MemTableStopWritesThreshold: 4,
		Logger:                      log,
		ErrorIfNotPristine:          false,
	}
	po.EventListener = &pebble.EventListener{
		BackgroundError: func(err error) { e.fail(fmt.Errorf("background: %w", err)) },
		// A corrupt block fails the read that met it (pebble's default
		// would exit): the error names the file.
		DataCorruption: func(info pebble.DataCorruptionInfo) { e.corrupt.Store(&info.Path) },
	}
	if fs == vfs.Default {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open data dir %s: %w", dir, err)
		}
	}
	db, err := openPebble(dir, po)
	if err != nil {
		return nil, err
	}
	e.db = db
	e.recovered = log.replays()
	for _, r := range e.recovered {
		slog.Default().Info("durable: recovered from the write-ahead log", "dir", dir, "replay", r)
	}
	var free func(string) (int64, int64, error)
	if fs == vfs.Default {
		free = diskFree
	}
	e.space = newSpace(dir, opts.Reserve, free)
	registry.engines[dir] = e
	return e, nil
}

// openPebble opens the database, turning pebble's fatal errors during
// recovery (a corrupt log or table) into an error naming the directory.
func openPebble(dir string, po *pebble.Options) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			db, err = nil, fmt.Errorf("open data dir %s: %s", dir, oneLine(string(f)))
		}
	}()
	db, err = pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %s", dir, oneLine(err.Error()))
	}
	return db, nil
}

// oneLine keeps an error's first line: pebble's can carry details and
// stacks on the lines after it.
func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(first)
}

// Recovered says what the engine replayed from its write-ahead logs when
// it opened, one line per log: how many batches and keys, and up to which
// offset. Whatever a log held past that offset could not be read (a
// write cut short by a crash, a recycled log's old bytes, or damage) and
// is not in the engine.
func (e *Engine) Recovered() []string { return slices.Clone(e.recovered) }

// Dir is the engine's directory.
func (e *Engine) Dir() string { return e.dir }

// Close gives back a reference taken by Open; the last one syncs and
// closes the database.
func (e *Engine) Close() error {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	e.refs--
	if e.refs > 0 {
		return nil
	}
	delete(registry.engines, e.dir)
	e.closing.Lock()
	defer e.closing.Unlock()
	e.closed = true
	if err := e.Err(); err != nil {
		return err // pebble may panic closing a failed commit pipeline
	}
	return e.db.Close()
}

// ErrClosed is returned by the writes of an engine whose last reference
// was given back.
var ErrClosed = errors.New("durable: storage engine closed")

// Err returns the failure that stopped the engine, or nil.
func (e *Engine) Err() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (e *Engine) fail(err error) {
	err = fmt.Errorf("%w (data dir %s): %w", ErrFailed, e.dir, err)
	e.failed.CompareAndSwap(nil, &err)
}

// Batch is a set of changes applied all or none.
type Batch struct{ b *pebble.Batch }

// Set records key = value. Both may be reused once Set returns.
func (b *Batch) Set(key, value []byte) { _ = b.b.Set(key, value, nil) }

// Delete records the removal of key.
func (b *Batch) Delete(key []byte) { _ = b.b.Delete(key, nil) }

// Empty reports whether nothing was recorded.
func (b *Batch) Empty() bool { return b.b.Empty() }

// NewBatch returns an empty batch to fill and Apply.
func (e *Engine) NewBatch() *Batch { return &Batch{e.db.NewBatch()} }

// Apply applies b, waiting for it (and everything before it) to be on
// disk if sync. b cannot be used again.
func (e *Engine) Apply(b *Batch, sync bool) error {
	if err := e.Err(); err != nil {
		b.b.Close()
		return err
	}
	if b.b.Empty() && !sync {
		b.b.Close()
		return nil
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	e.space.wrote(b.b.Len())
	if err := e.commit(func() error { return e.db.Apply(b.b, wo) }); err != nil {
		return err
	}
	b.b.Close()
	return nil
}

// Sync waits until every change applied so far is on disk.
func (e *Engine) Sync() error {
	if err := e.Err(); err != nil {
		return err
	}
	return e.commit(func() error { return e.db.LogData(nil, pebble.Sync) })
}

// commit runs a pebble commit, turning its failure (pebble treats a
// failed log write or sync as fatal) into the engine's failure.
func (e *Engine) commit(f func() error) (err error) {
	e.closing.RLock()
	defer e.closing.RUnlock()
	if e.closed {
		return fmt.Errorf("%w (data dir %s)", ErrClosed, e.dir)
	}
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			e.fail(errors.New(string(fe)))
			err = e.Err()
		}
	}()
	if err := f(); err != nil {
		e.fail(err)
		return e.Err()
	}
	return nil
}

// Scan calls fn for every key with prefix, in key order, with slices
// valid only during the call.
func (e *Engine) Scan(prefix []byte, fn func(key, value []byte) error) error {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan %s: %w", e.dir, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return e.scanErr(err)
		}
		if err := fn(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return e.scanErr(err)
	}
	return nil
}

// scanErr is a failed read's error, on one line, naming the corrupt file
// if pebble found one.
func (e *Engine) scanErr(err error) error {
	if p := e.corrupt.Load(); p != nil {
		return fmt.Errorf("read data dir %s: corrupt file %s: %s", e.dir, *p, oneLine(err.Error()))
	}
	return fmt.Errorf("read data dir %s: %s", e.dir, oneLine(err.Error()))
}

// DeletePrefix removes every key with prefix (a range tombstone).
func (e *Engine) DeletePrefix(prefix []byte) error {
	if err := e.Err(); err != nil {
		return err
	}
	return e.commit(func() error { return e.db.DeleteRange(prefix, prefixEnd(prefix), pebble.Sync) })
}

// Metrics returns pebble's metrics, for benchmarks and diagnostics.
func (e *Engine) Metrics() *pebble.Metrics { return e.db.Metrics() }

// prefixEnd is the first key after every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// fatal is what pebbleLog.Fatalf panics with.
type fatal string

// pebbleLog is pebble's logger: quiet but for what it says it replayed
// from its logs at open, and Fatalf panics (recovered by commit and Open)
// where pebble's default logger would exit the process.
type pebbleLog struct {
	mu       sync.Mutex
	replayed []string
}

func (l *pebbleLog) Infof(format string, args ...any) {
	if strings.Contains(format, "stopped reading at offset") {
		l.mu.Lock()
		l.replayed = append(l.replayed, fmt.Sprintf(format, args...))
		l.mu.Unlock()
	}
}

func (l *pebbleLog) replays() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.replayed)
}

func (*pebbleLog) Errorf(string, ...any) {}
func (*pebbleLog) Fatalf(format string, args ...any) {
	panic(fatal(fmt.Sprintf(format, args...)))
}
