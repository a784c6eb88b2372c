// Package task is Drover's domain: the task model, its state machine, the
// wire codec, validation, and the thin portable types over gocloud that
// the parts of Drover share. It imports no cloud SDK: drivers are chosen
// by blank imports in the mains (see internal/drivers), and what gocloud
// has no portable call for is reached through the interfaces of package
// [github.com/droverhq/drover/pkg/task/driver].
//
// # The model
//
// A client submits a [Spec]; [Spec.Normalize] validates it (a
// [*FieldError] names the field) and fills the defaults. The dispatch
// function gives it an ID ([NewID], time-sortable) and publishes it as a
// [Message] ([EncodeMessage]). A runner decodes it ([DecodeMessage]),
// runs the named function on a [Task] and publishes [Event]s
// ([EncodeEvent], built with [NewEvent]); the collector decodes them
// ([DecodeEvent]) and applies them to [Status] documents. Anything that is
// not a message of this [WireVersion] is [ErrUndecodable]: poison, acked
// and archived, never retried.
//
// # States and the monotonic rule
//
// A task is queued, running, retrying, then succeeded, failed or
// cancelled ([State]; [State.Terminal]). [Status.Apply] applies an event
// by rank, not by arrival: terminal never regresses, a later attempt
// beats an earlier one, a later phase beats an earlier one within an
// attempt (machine.go). Any order and any number of duplicates of the same
// events give the same document, and [Store.Apply] writes it under the
// document's revision, so concurrent collectors are safe.
//
// # Errors for function authors
//
// A function returns an error wrapping [ErrPermanent] to fail its task at
// once; any other error is retried while attempts remain, with backoff.
// Check with errors.Is.
//
// # The portable layer
//
// [Topic] and [Subscription] wrap gocloud pubsub with lease control
// ([LeaseControl] on each [Delivery]), delays and batching; [Opener] and
// [Reopener] keep a subscription open across failures. [Archive] wraps a
// gocloud bucket (claim-checked payloads and results, poison messages),
// and [Store] a gocloud docstore collection keyed by "id" (statuses,
// runner heartbeats, idempotency keys). Open them from URLs with
// [OpenTopic], [OpenSubscription], [OpenArchive] and [OpenStore];
// [Resources] closes what a process opened.
package task
