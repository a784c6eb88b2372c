package memq

import (
	"context"
	"errors"
	"testing"

	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/driver"
	"gocloud.dev/pubsub/drivertest"

	"github.com/droverhq/drover/pkg/durable"
	taskdriver "github.com/droverhq/drover/pkg/task/driver"
)

// harness gives every topic a queue of its own; subscriptions created for a
// topic share its queue.
type harness struct{}

func newHarness(context.Context, *testing.T) (drivertest.Harness, error) {
	return harness{}, nil
}

func (harness) CreateTopic(_ context.Context, testName string) (driver.Topic, func(), error) {
	name := uniqueName(testName)
	return &topic{q: getQueue(name)}, func() { Delete(name) }, nil
}

func (harness) MakeNonexistentTopic(context.Context) (driver.Topic, error) {
	return &topic{}, nil // a nil queue behaves as one that does not exist
}

func (harness) CreateSubscription(_ context.Context, dt driver.Topic, _ string) (driver.Subscription, func(), error) {
	ds, err := newSubscription(dt.(*topic).q, &SubscriptionOptions{})
	return ds, func() {}, err
}

func (harness) MakeNonexistentSubscription(context.Context) (driver.Subscription, func(), error) {
	ds, err := newSubscription(nil, &SubscriptionOptions{})
	return ds, func() {}, err
}

func (harness) Close() {}

func (harness) MaxBatchSizes() (int, int) { return 0, 0 }

// SupportsMultipleSubscriptions is false: subscriptions on one memq queue
// are competing consumers, each message going to one of them, whereas the
// conformance test TestSendReceiveTwo expects every subscription to get
// every message (fan-out). TestCompetingConsumers covers the queue
// semantics instead.
func (harness) SupportsMultipleSubscriptions() bool { return false }

// asTest checks the As types memq supports.
type asTest struct{}

func (asTest) Name() string { return "memq As" }

func (asTest) TopicCheck(t *pubsub.Topic) error {
	var tf taskdriver.TopicFeatures
	if !t.As(&tf) {
		return errors.New("Topic.As(*taskdriver.TopicFeatures) = false")
	}
	if tf.MaxDelay() != MaxDelay {
		return errors.New("TopicFeatures.MaxDelay is wrong")
	}
	return nil
}

func (asTest) SubscriptionCheck(*pubsub.Subscription) error { return nil }

func (asTest) TopicErrorCheck(*pubsub.Topic, error) error { return nil }

func (asTest) SubscriptionErrorCheck(*pubsub.Subscription, error) error { return nil }

func (asTest) MessageCheck(m *pubsub.Message) error {
	var lc taskdriver.LeaseControl
	if !m.As(&lc) {
		return errors.New("Message.As(*taskdriver.LeaseControl) = false")
	}
	if lc.ReceiveCount() != 1 {
		return errors.New("ReceiveCount != 1 on first delivery")
	}
	return nil
}

func (asTest) BeforeSend(func(any) bool) error { return nil }

func (asTest) AfterSend(func(any) bool) error { return nil }

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, newHarness, []drivertest.AsTest{asTest{}})
}

// durableHarness runs the same suite on durable queues, all journaled in
// one engine in a temporary directory.
type durableHarness struct {
	harness
	eng *durable.Engine
}

func (h durableHarness) CreateTopic(_ context.Context, testName string) (driver.Topic, func(), error) {
	name := uniqueName(testName)
	eng, err := durable.Open(h.eng.Dir(), nil) // Attach takes this reference
	if err != nil {
		return nil, nil, err
	}
	if err := Attach(name, eng); err != nil {
		return nil, nil, err
	}
	return &topic{q: getQueue(name)}, func() { Delete(name) }, nil
}

func (h durableHarness) Close() { h.eng.Close() }

func TestConformanceDurable(t *testing.T) {
	dir := t.TempDir()
	drivertest.RunConformanceTests(t, func(context.Context, *testing.T) (drivertest.Harness, error) {
		eng, err := durable.Open(dir, nil)
		if err != nil {
			return nil, err
		}
		return durableHarness{eng: eng}, nil
	}, []drivertest.AsTest{asTest{}})
}
