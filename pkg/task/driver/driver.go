// Package driver is for driver authors only: the interfaces through which
// package task reaches what gocloud's portable types have no call for
// (lease extension, delivery counts, delayed sends, batch fast paths), and
// the hook by which an extension package adds them to a driver gocloud
// provides. Applications use package task; they never need this one.
//
// A gocloud driver implements an interface here by supporting it in its
// As methods (Drover's in-process drivers memq and memstore do). An
// extension for a driver whose SDK Drover drives itself (package awsq for
// gocloud's awssqs) registers a QueueExtension for its URL scheme.
//
// This package imports nothing of Drover's above it.
package driver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
)

// LeaseControl controls one delivery of a message. Reach it with
// (*pubsub.Message).As(&lc) where lc is a LeaseControl.
type LeaseControl interface {
	// ReceiveCount is how many times the message has been delivered,
	// this delivery included.
	ReceiveCount() int
	// SetVisibility hides the message from every receiver for d from now;
	// when d has passed without an ack, it is delivered again. d == 0
	// makes it visible at once. Once the delivery is no longer the
	// current one (its message was delivered again, or deleted), it
	// returns an error wrapping ErrLeaseLost, and so does every later
	// call, without asking the queue again.
	SetVisibility(ctx context.Context, d time.Duration) error
}

// ErrNotSent wraps the error of a send that certainly did not reach the
// queue (it was given up before it was handed over), so that callers can
// tell it from a send whose outcome is unknown.
var ErrNotSent = errors.New("not sent")

// ErrLeaseLost is returned by LeaseControl.SetVisibility for a delivery
// that is no longer the current one (on SQS, a stale receipt handle).
var ErrLeaseLost = errors.New("lease lost: the delivery is no longer current")

// TopicFeatures describes what a topic's driver can do beyond gocloud's
// portable calls. Reach it with (*pubsub.Topic).As(&tf).
type TopicFeatures interface {
	// MaxDelay is the longest a message can be held back before its first
	// delivery; 0 if the topic cannot delay messages.
	MaxDelay() time.Duration
}

// QueueDepth reports how many messages wait in a topic's queue, where the
// driver can tell (memq's counts, SQS ApproximateNumberOfMessages). Reach
// it with (*pubsub.Topic).As, or implement it on a TopicExtension.
type QueueDepth interface {
	// Depth returns the messages not yet acked (visible, in flight and
	// delayed), as the driver counts them.
	Depth(ctx context.Context) (int, error)
}

// MetadataDelay is the message metadata key that asks a driver with
// TopicFeatures.MaxDelay() > 0 to hold a message back before its first
// delivery. Its value is a decimal count of milliseconds.
const MetadataDelay = "drover-delay-ms"

// Delivery is one received message with what it takes to settle it: the
// body, the driver's lease control (nil where the driver has none), and
// ack/nack. Package task calls it task.Delivery.
type Delivery struct {
	ID    string
	Body  []byte
	Lease LeaseControl
	// Ack removes the message for good; Nack gives it back (after the
	// visibility last set through Lease, where the driver honours it).
	Ack  func()
	Nack func()
}

// Attempt is the delivery count where the driver knows it, else 1.
func (d *Delivery) Attempt() int {
	if d.Lease != nil {
		if n := d.Lease.ReceiveCount(); n > 0 {
			return n
		}
	}
	return 1
}

// DirectSender is implemented, through pubsub.Topic.As, by in-process
// drivers (memq) that can queue a batch of bodies in one step without the
// portable type's per-message work (a tracing span, a batcher hand-off and
// a goroutine per message). Drover's Topic uses it when the driver has it
// and the portable path otherwise; the delivery rules do not change.
type DirectSender interface {
	// SendDirect queues every body or none, body i held back for
	// delays[i] (delays may be nil). It takes ownership of the bodies.
	SendDirect(ctx context.Context, bodies [][]byte, delays []time.Duration) error
}

// DirectReceiver is implemented, through pubsub.Subscription.As, by
// in-process drivers (memq) that hand out deliveries without the portable
// type's per-message work (a tracing span, a finalizer, a runtime.Caller
// and an ack batcher). Deliveries it returns are settled at once by their
// Ack and Nack.
type DirectReceiver interface {
	// ReceiveDirect returns up to max deliveries, blocking until one is
	// ready or the driver's wait passes (then it returns none).
	ReceiveDirect(ctx context.Context, max int) ([]*Delivery, error)
}

// DirectCollection is implemented, through docstore.Collection.As, by
// in-process drivers (memstore) that run a batch of reads or writes on the
// caller's goroutine without the portable type's per-call work (a tracing
// span, a latency metric, action-list bookkeeping). Each call must do, for
// each document, exactly what an action list of the same actions would.
// Drover's Store uses it for its batch reads and writes when the driver
// has it, and action lists otherwise. The errors it returns carry their
// gcerrors code through an ErrorCode method.
type DirectCollection interface {
	// GetDirect reads each of docs (a pointer to a struct with its key
	// set) as ActionList.Get(doc, fields...) does. errs is nil when every
	// read succeeded, else one error (or nil) per document; err is a
	// failure of the whole batch (a closed collection).
	GetDirect(ctx context.Context, docs []any, fields ...string) (errs []error, err error)
	// WriteDirect creates docs[i] where create[i], and replaces it
	// (checking its revision, if it has one) otherwise; it returns as
	// GetDirect does.
	WriteDirect(ctx context.Context, docs []any, create []bool) (errs []error, err error)
}

// Syncer is implemented, through docstore.Collection.As, by drivers whose
// writes may return before they are on disk (memstore on a durable
// engine journals most writes without waiting). Sync returns once every
// write made so far is durable. Drover's Store calls it after a write it
// answers a client for that is not already synced (a cancel), so that
// what the client was told survives a crash.
type Syncer interface {
	Sync(ctx context.Context) error
}

// A QueueExtension adds lease control, batched sends and acks, delays and
// a health check to the topics and subscriptions of one gocloud URL
// scheme, through the driver's SDK (reached with As). Register it with
// RegisterQueueExtension from the extension package's init.
type QueueExtension interface {
	// Topic returns the extension of t, opened from rawURL, or nil when
	// it has none for t.
	Topic(t *pubsub.Topic, rawURL string) TopicExtension
	// OpenSubscription opens the subscription at rawURL (adjusting the
	// URL as the extension needs) and returns it with its extension, which
	// may be nil.
	OpenSubscription(ctx context.Context, rawURL string) (*pubsub.Subscription, SubscriptionExtension, error)
}

// TopicExtension sends on one topic in place of the portable path.
type TopicExtension interface {
	// MaxDelay is the longest first-delivery delay the topic supports.
	MaxDelay() time.Duration
	// SendBatch sends bodies, body i held back for delays[i] (delays may
	// be nil; each is at most MaxDelay), and returns each body's error,
	// or nil when every body was sent. It returns once each body's
	// outcome is known.
	SendBatch(ctx context.Context, bodies [][]byte, delays []time.Duration) []error
	// Ping checks that the topic answers without sending.
	Ping(ctx context.Context) error
}

// NowReceiver is implemented by subscription extensions that can take
// messages for a caller ready to start them at once: each call asks the
// queue for at most max messages, and nothing waits in a prefetch buffer
// (uncovered by any heartbeat while its visibility timeout runs out).
type NowReceiver interface {
	ReceiveNow(ctx context.Context, max int) ([]*Delivery, error)
}

// BatchReceiver is implemented by subscription extensions of remote
// queues that can take up to max messages per call for a consumer that
// settles them as a batch (the collector): as with a NowReceiver nothing
// is prefetched, but an Ack does not wait for its delete, so that a loop
// of acks shares requests (the subscription's Shutdown waits for them).
type BatchReceiver interface {
	ReceiveBatch(ctx context.Context, max int) ([]*Delivery, error)
}

// WaitReceiver is implemented by subscriptions (through As) and
// subscription extensions that can take messages, as a NowReceiver does,
// waiting at most wait for them: 0 takes only what is ready now. It
// returns no deliveries when none came in time. A runner serving several
// queues tries them in turn with it.
type WaitReceiver interface {
	ReceiveWithin(ctx context.Context, max int, wait time.Duration) ([]*Delivery, error)
}

// SubscriptionExtension settles the messages of one subscription.
type SubscriptionExtension interface {
	// Settlers returns m's lease control (nil if none) and, where the
	// extension settles m itself, its ack and nack (nil: m's own).
	Settlers(m *pubsub.Message) (lease LeaseControl, ack, nack func())
	// Flush waits until every ack asked for so far has taken effect, or
	// ctx is done.
	Flush(ctx context.Context) error
}

var (
	extMu      sync.RWMutex
	extensions = map[string]QueueExtension{}
)

// RegisterQueueExtension registers e for the pubsub URLs of scheme.
// Registering a scheme twice is a wiring bug and panics.
func RegisterQueueExtension(scheme string, e QueueExtension) {
	extMu.Lock()
	defer extMu.Unlock()
	if _, dup := extensions[scheme]; dup {
		panic(fmt.Sprintf("driver: queue extension for %q registered twice", scheme))
	}
	extensions[scheme] = e
}

// QueueExtensionFor returns the extension registered for scheme, or nil.
func QueueExtensionFor(scheme string) QueueExtension {
	extMu.RLock()
	defer extMu.RUnlock()
	return extensions[scheme]
}

// Error is an error with a gcerrors code, for drivers to return. Code
// reads the code through its ErrorCode method, so a driver's ErrorCode
// and callers of its direct paths classify it the same way.
type Error struct {
	Code gcerrors.ErrorCode
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// ErrorCode is e's code.
func (e *Error) ErrorCode() gcerrors.ErrorCode { return e.Code }

// Errorf returns an *Error with the given code and message.
func Errorf(code gcerrors.ErrorCode, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Code classifies err: the code of the first error in its chain with an
// ErrorCode method (an *Error of a driver's direct path), else
// gcerrors.Code's (portable errors, context errors). It is the one
// classifier of Drover's drivers and of package task.
func Code(err error) gcerrors.ErrorCode {
	var c interface{ ErrorCode() gcerrors.ErrorCode }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return gcerrors.Code(err)
}

// Document types. Package task registers the struct types it stores in a
// status collection, so that a driver that keeps documents of a known
// type in a compact form (memstore's packed documents) can load them in
// that form when it opens, before any of them has been read or written.
// A driver must not depend on it: a document of no registered type is
// kept as it would be without the hint.
var docTypes struct {
	sync.Mutex
	list []reflect.Type
}

// RegisterDocumentType adds the struct type t to DocumentTypes; a type
// registered twice is listed once.
func RegisterDocumentType(t reflect.Type) {
	docTypes.Lock()
	defer docTypes.Unlock()
	for _, x := range docTypes.list {
		if x == t {
			return
		}
	}
	docTypes.list = append(docTypes.list, t)
}

// DocumentTypes returns the registered document types, in the order they
// were registered.
func DocumentTypes() []reflect.Type {
	docTypes.Lock()
	defer docTypes.Unlock()
	return append([]reflect.Type(nil), docTypes.list...)
}
