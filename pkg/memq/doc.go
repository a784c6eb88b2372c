// Package memq is Drover's in-process queue driver for gocloud.dev/pubsub,
// used by the embedded default (drover dev). It behaves like an SQS queue:
// competing consumers, a visibility timeout, lease extension, delayed
// sends and delayed retries, all without polling.
//
// # URLs
//
// Importing the package registers the scheme "memq" on
// pubsub.DefaultURLMux for both topics and subscriptions:
//
//	memq://tasks?visibility=5m&wait=1s
//
// The host and path name a process-wide queue. A topic and any number of
// subscriptions opened with the same name share that one queue, and each
// message goes to one receiver at a time (this is a queue, not a fan-out
// topic). The queue is created by whichever opens it first, so messages
// sent before any subscription exists are kept. Parameters:
//
//   - visibility: how long a received message stays hidden before it is
//     delivered again unless acked (Go duration, default 30s, at most 12h).
//   - wait: the longest a receive blocks when nothing is ready before it
//     returns an empty batch (Go duration, default 1s).
//   - maxbytes (topics): caps the bytes of message bodies the queue holds
//     (sent, not yet acked) for this topic's sends; a batch that would pass
//     it is refused whole with code ResourceExhausted (default 0: no cap).
//   - dir: journals the queue in the durable engine (pkg/durable) of that
//     directory, shared with every driver opened on it.
//   - lowspace (durable queues): refuse (default) or drain. While the
//     engine's file system has less free space than the engine's reserve,
//     a refusing queue refuses sends whole (ResourceExhausted, nothing
//     kept) and its subscriptions take nothing, until space is freed; a
//     draining queue goes on (for messages that finish work already
//     taken, like runners' events).
//   - sendsync (durable queues): wait (default) or ordered. A send to a
//     waiting queue returns once its messages are on disk (synced); a
//     send to an ordered queue returns once they are in the engine's
//     log, ahead of every change applied after it returns, and they are
//     on disk with the next sync of the log (any driver's on the
//     engine). A crash can lose such a send only with everything applied
//     after it. That suits messages that report on work settled
//     afterwards on the same engine, like runners' events (in process or
//     through dispatch's /v1/events): a runner publishes an outcome, then
//     acks its task's message on the same engine; a crash that loses the
//     event loses the ack after it, and the task comes back. It does not
//     suit a queue whose sends are the only record of what a caller was
//     told, like the tasks queue behind a 202.
//
// Topics accept and ignore visibility and wait, and subscriptions
// maxbytes, so one URL can serve both ends; any other parameter is an
// error naming it. OpenTopic and OpenSubscription do the same without
// URLs. Closing (Shutdown) a topic or
// subscription leaves the queue and its messages in place. Use a fresh name
// for a fresh queue (tests), Delete to forget one, and Stats to read its
// ready, in-flight and delayed counts.
//
// # Delivery
//
// Delivery is at least once. A receive hands out ready messages in FIFO
// order and hides each for the subscription's visibility timeout. Then:
//
//   - Ack deletes the message.
//   - Nack makes it visible at once, unless SetVisibility was called on
//     that delivery: then the visibility it set stands, so SetVisibility(d)
//     followed by Nack is a retry after d.
//   - No ack before the timeout: it becomes visible again and its next
//     delivery has a receive count one higher.
//
// Each delivery has its own handle. Once a message has been acked or
// delivered again, acks, nacks and SetVisibility calls through an older
// delivery are ignored (SetVisibility returns ErrStaleDelivery), so a slow
// consumer never disturbs the newer delivery. A delivery whose timeout has
// passed but that nobody has received again is still current: acking it
// deletes the message and SetVisibility hides it again.
//
// # Drover extensions
//
// The interfaces of package pkg/task/driver, which is all memq imports of
// Drover. A received message's As supports *driver.LeaseControl, giving
// the delivery's ReceiveCount and SetVisibility (extend the lease, or 0
// for visible now). A topic's As supports *driver.TopicFeatures, whose
// MaxDelay is MaxDelay (12h), and *driver.DirectSender; a subscription's
// supports *driver.DirectReceiver, the same receive path as the portable
// one with deliveries that settle at once. A sent message whose metadata
// has driver.MetadataDelay (decimal milliseconds) is first delivered only
// after that delay; the key is removed from the metadata receivers see. A
// malformed or out-of-range delay fails the whole batch with code
// InvalidArgument. Errors carry their gcerrors code (driver.Code).
//
// # Implementation
//
// A queue is a FIFO of ready messages plus a min-heap of waiting ones
// (delayed or in flight) keyed by when they become visible; each operation
// costs O(1) or O(log n), and acked messages are dropped from both so
// memory follows the number of live messages. A blocked receive sleeps on
// a channel closed when a message becomes ready or an earlier deadline
// appears, and on a timer for the heap's first deadline or its max wait;
// it never sleeps a fixed interval. Bodies and metadata are copied on send;
// each delivery gets its own metadata map but shares the body, which
// receivers must treat as read-only.
//
// # Caveats
//
// The portable *pubsub.Subscription prefetches: messages it has received
// but not yet handed to Receive are already invisible and their timeout
// runs. After Shutdown such messages come back only when it expires.
// Nothing survives the process; the embedded default is for one machine.
package memq
