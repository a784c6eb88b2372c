package task

import (
	"context"
	"time"
)

// gocloud has no portable call for lease extension, delivery counts or
// delayed sends. Drivers that can do them expose these interfaces through
// As, and this package reaches the AWS SDK's types the same way (see
// lease_sqs.go). Drover's in-process driver (package memq) implements all
// three.

// LeaseControl controls one delivery of a message. Reach it with
// (*pubsub.Message).As(&lc) where lc is a LeaseControl.
type LeaseControl interface {
	// ReceiveCount is how many times the message has been delivered,
	// this delivery included.
	ReceiveCount() int
	// SetVisibility hides the message from every receiver for d from now;
	// when d has passed without an ack, it is delivered again. d == 0
	// makes it visible at once.
	SetVisibility(ctx context.Context, d time.Duration) error
}

// TopicFeatures describes what a topic's driver can do beyond gocloud's
// portable calls. Reach it with (*pubsub.Topic).As(&tf).
type TopicFeatures interface {
	// MaxDelay is the longest a message can be held back before its first
	// delivery; 0 if the topic cannot delay messages.
	MaxDelay() time.Duration
}

// MetadataDelay is the message metadata key that asks a driver with
// TopicFeatures.MaxDelay() > 0 to hold a message back before its first
// delivery. Its value is a decimal count of milliseconds.
const MetadataDelay = "drover-delay-ms"
