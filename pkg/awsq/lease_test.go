package awsq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/awssnssqs"
	"gocloud.dev/pubsub/mempubsub"

	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/pkg/awsq"
	"github.com/droverhq/drover/pkg/task"
)

// moto is the emulator shared by this package's tests; nil when
// moto_server is not installed, and the tests that need it skip.
var moto *awstest.Moto

func TestMain(m *testing.M) {
	moto = awstest.Shared("awsq tests")
	code := m.Run()
	moto.Stop()
	os.Exit(code)
}

func TestSQSQueueURL(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"aws", "awssqs://sqs.us-east-1.amazonaws.com/123456789012/drover-tasks?raw=true&nacklazy=true",
			"https://sqs.us-east-1.amazonaws.com/123456789012/drover-tasks", true},
		{"emulator", "awssqs://127.0.0.1:5000/123456789012/q", "https://127.0.0.1:5000/123456789012/q", true},
		{"mem", "mem://tasks", "", false},
		{"sns", "awssns:///arn:aws:sns:us-east-1:123456789012:t", "", false},
		{"no host", "awssqs:///q", "", false},
		{"garbage", "%zz", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := awsq.QueueURL(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("QueueURL(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// sqsBundle is a fresh queue on the emulator, opened through gocloud.
type sqsBundle struct {
	ctx      context.Context
	client   *sqs.Client
	queueURL string // as the emulator returned it
	subURL   string // gocloud URL
	topic    *pubsub.Topic
	sub      *pubsub.Subscription
}

func setupSQS(t *testing.T, visibility time.Duration) sqsBundle {
	t.Helper()
	if moto == nil {
		t.Skip(awstest.ErrNoEmulator)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cfg, err := moto.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameVisibilityTimeout): fmt.Sprint(int(visibility.Seconds())),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := sqsBundle{ctx: ctx, client: client, queueURL: aws.ToString(out.QueueUrl)}
	t.Cleanup(func() {
		client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	})
	gocloudURL := "awssqs://" + strings.TrimPrefix(b.queueURL, "http://")
	b.subURL = gocloudURL + "?raw=true&nacklazy=true"
	if b.topic, err = pubsub.OpenTopic(ctx, gocloudURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.topic.Shutdown(context.Background()) })
	if b.sub, err = pubsub.OpenSubscription(ctx, b.subURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.sub.Shutdown(context.Background()) })
	return b
}

// receive takes the next message from b.sub and its lease.
func (b sqsBundle) receive(t *testing.T, within time.Duration) (*pubsub.Message, task.LeaseControl) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	m, err := b.sub.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	qURL, ok := awsq.QueueURL(b.subURL)
	if !ok {
		t.Fatalf("QueueURL(%q) not ok", b.subURL)
	}
	lc, ok := awsq.LeaseOf(b.sub, qURL, m)
	if !ok {
		t.Fatal("SQSLeaseOf: not an SQS message")
	}
	return m, lc
}

// probe reports how many messages are visible on the queue now, taking
// them (they come back after the queue's visibility timeout).
func (b sqsBundle) probe(t *testing.T) int {
	t.Helper()
	out, err := b.client.ReceiveMessage(b.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.queueURL), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Messages)
}

func TestSQSLeaseReceiveCount(t *testing.T) {
	b := setupSQS(t, 30*time.Second)
	if err := b.topic.Send(b.ctx, &pubsub.Message{Body: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		m, lc := b.receive(t, 10*time.Second)
		if got := lc.ReceiveCount(); got != want {
			t.Errorf("delivery %d: ReceiveCount() = %d", want, got)
		}
		if want == 3 {
			m.Ack()
			break
		}
		// Visible again at once, whatever the queue's 30 s timeout.
		if err := lc.SetVisibility(b.ctx, 0); err != nil {
			t.Fatal(err)
		}
		m.Nack() // nacklazy: does nothing on SQS, but the message is done with
	}
}

func TestSQSLeaseExtend(t *testing.T) {
	b := setupSQS(t, time.Second)
	if err := b.topic.Send(b.ctx, &pubsub.Message{Body: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	m, lc := b.receive(t, 10*time.Second)
	// Beyond SQS's cap: clamped to what is left of 12 h, not refused.
	if err := lc.SetVisibility(b.ctx, 13*time.Hour); err != nil {
		t.Fatalf("SetVisibility(13h): %v", err)
	}
	if err := lc.SetVisibility(b.ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	extended := time.Now()
	time.Sleep(1500 * time.Millisecond) // past the queue's 1 s timeout
	if n := b.probe(t); n != 0 {
		t.Fatalf("%d messages visible while the lease is extended", n)
	}
	m.Nack()
	m2, lc2 := b.receive(t, 10*time.Second)
	if since := time.Since(extended); since < 2500*time.Millisecond {
		t.Errorf("redelivered %s after a 3s extension", since)
	}
	if string(m2.Body) != "m" || lc2.ReceiveCount() != 2 {
		t.Errorf("redelivery: body %q, ReceiveCount %d; want m, 2", m2.Body, lc2.ReceiveCount())
	}
	m2.Ack()
}

func TestSQSDelay(t *testing.T) {
	b := setupSQS(t, 30*time.Second)
	if !awsq.TopicDelay(b.topic) {
		t.Fatal("SQSTopicDelay(awssqs topic) = false")
	}
	m := &pubsub.Message{Body: []byte("later")}
	var chained bool
	m.BeforeSend = func(func(any) bool) error { chained = true; return nil }
	awsq.WithDelay(m, 1500*time.Millisecond) // rounds up to 2 s
	sent := time.Now()
	if err := b.topic.Send(b.ctx, m); err != nil {
		t.Fatal(err)
	}
	if !chained {
		t.Error("the BeforeSend set before WithSQSDelay did not run")
	}
	if n := b.probe(t); n != 0 {
		t.Fatalf("%d messages visible at once; want the send delayed", n)
	}
	got, lc := b.receive(t, 10*time.Second)
	if since := time.Since(sent); since < 1500*time.Millisecond {
		t.Errorf("delivered %s after a 2s delay", since)
	}
	if string(got.Body) != "later" || lc.ReceiveCount() != 1 {
		t.Errorf("body %q, ReceiveCount %d; want later, 1", got.Body, lc.ReceiveCount())
	}
	got.Ack()
}

// TestSQSOtherDrivers shows the SQS helpers standing aside on another
// driver.
func TestSQSOtherDrivers(t *testing.T) {
	ctx := context.Background()
	topic := mempubsub.NewTopic()
	defer topic.Shutdown(ctx)
	sub := mempubsub.NewSubscription(topic, time.Minute)
	defer sub.Shutdown(ctx)
	if awsq.TopicDelay(topic) {
		t.Error("SQSTopicDelay(mem topic) = true")
	}
	m := &pubsub.Message{Body: []byte("now")}
	awsq.WithDelay(m, time.Minute)
	if err := topic.Send(ctx, m); err != nil {
		t.Fatalf("send with WithSQSDelay on mem: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := sub.Receive(rctx)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Ack()
	if _, ok := awsq.LeaseOf(sub, "https://example/q", got); ok {
		t.Error("LeaseOf(mem message) ok")
	}
}

// TestSQSBatchSend: concurrent Sends and a SendAll through a Topic on an
// SQS queue (the batch sender's path) each arrive exactly once.
func TestSQSBatchSend(t *testing.T) {
	b := setupSQS(t, 30*time.Second)
	tp := task.NewTopic(b.topic, "awssqs://"+strings.TrimPrefix(b.queueURL, "http://"))
	want := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		body := fmt.Sprintf(`{"n":%d}`, i)
		want[body] = true
		wg.Go(func() { errs <- tp.Send(b.ctx, []byte(body), 0) })
	}
	var bodies [][]byte
	for i := range 25 {
		body := fmt.Sprintf(`{"all":%d}`, i)
		want[body] = true
		bodies = append(bodies, []byte(body))
	}
	if failed := tp.SendAll(b.ctx, bodies, nil); len(failed) > 0 {
		t.Fatalf("SendAll failed: %v", failed)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		out, err := b.client.ReceiveMessage(b.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got[aws.ToString(m.Body)]++
		}
	}
	for body := range want {
		if got[body] != 1 {
			t.Errorf("%s arrived %d times", body, got[body])
		}
	}
	for body, n := range got {
		if !want[body] {
			t.Errorf("unexpected message %s (%d times)", body, n)
		}
	}
}

// TestSQSAck: many deliveries acked concurrently through a Subscription
// on an SQS queue (the coalescing deleter's path) are gone for good, and
// a nacked one comes back after the visibility timeout.
func TestSQSAck(t *testing.T) {
	const n, visibility = 60, 2 * time.Second
	b := setupSQS(t, visibility)
	url := "awssqs://" + strings.TrimPrefix(b.queueURL, "http://") + "?raw=true"
	tp := task.NewTopic(b.topic, url)
	var bodies [][]byte
	for i := range n {
		bodies = append(bodies, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	if failed := tp.SendAll(b.ctx, bodies, nil); len(failed) > 0 {
		t.Fatalf("SendAll failed: %v", failed)
	}
	sub, err := task.OpenSubscription(b.ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	const nackBody = `{"n":7}`
	var (
		mu     sync.Mutex
		acked  = map[string]int{}
		nacked time.Time
		again  int // ReceiveCount of the nacked message's redelivery
		wg     sync.WaitGroup
	)
	rctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	for range 8 {
		wg.Go(func() {
			for {
				d, err := sub.Receive(rctx)
				if err != nil {
					return
				}
				mu.Lock()
				body := string(d.Body)
				if body == nackBody && nacked.IsZero() {
					nacked = time.Now()
					mu.Unlock()
					d.Nack()
					continue
				}
				if body == nackBody {
					again = d.Attempt()
				}
				acked[body]++
				done := len(acked) == n
				mu.Unlock()
				d.Ack()
				if done {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if len(acked) != n {
		t.Fatalf("acked %d of %d messages before the deadline", len(acked), n)
	}
	if again != 2 {
		t.Errorf("the nacked message came back with ReceiveCount %d; want 2", again)
	}
	for body, k := range acked {
		if k > 1 {
			t.Logf("%s delivered %d times", body, k) // at least once; rare at best
		}
	}
	sctx, scancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer scancel()
	if err := sub.Shutdown(sctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("shutdown (flushes the deletes): %v", err)
	}
	// Deleted, not merely in flight: nothing visible or hidden is left,
	// and nothing comes back once the visibility timeout is over.
	attrs, err := b.client.GetQueueAttributes(b.ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(b.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range attrs.Attributes {
		if v != "0" {
			t.Errorf("after the acks %s = %s; want 0", k, v)
		}
	}
	time.Sleep(visibility + 500*time.Millisecond)
	out, err := b.client.ReceiveMessage(b.ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out.Messages {
		t.Errorf("acked message came back: %s", aws.ToString(m.Body))
	}
}

// TestSQSDepth: the tasks topic's depth is the queue's approximate counts
// (visible, in flight, delayed) as SQS reports them.
func TestSQSDepth(t *testing.T) {
	b := setupSQS(t, 30*time.Second)
	tp := task.NewTopic(b.topic, "awssqs://"+strings.TrimPrefix(b.queueURL, "http://"))
	n, ok, err := tp.Depth(b.ctx)
	if err != nil || !ok || n != 0 {
		t.Fatalf("empty queue: depth %d, %v, %v; want 0, true, nil", n, ok, err)
	}
	bodies := [][]byte{[]byte(`{"a":1}`), []byte(`{"a":2}`), []byte(`{"a":3}`)}
	if failed := tp.SendAll(b.ctx, bodies, nil); len(failed) > 0 {
		t.Fatal(failed)
	}
	m, _ := b.receive(t, 30*time.Second) // one in flight still counts
	if n, ok, err = tp.Depth(b.ctx); err != nil || !ok || n != 3 {
		t.Fatalf("depth %d, %v, %v; want 3, true, nil", n, ok, err)
	}
	m.Ack()
}

// TestSQSReceiveBatch: a Subscription on an SQS queue is Batched, and
// ReceiveBatch takes up to ten messages per ReceiveMessage call (the
// collector's receive: one message per call through gocloud's adaptive
// batching left it far behind many runners' heartbeats on a slow
// emulator, its events waiting minutes in the queue). Each delivery is
// acked for good.
func TestSQSReceiveBatch(t *testing.T) {
	b := setupSQS(t, 30*time.Second)
	tp := task.NewTopic(b.topic, "awssqs://"+strings.TrimPrefix(b.queueURL, "http://"))
	var bodies [][]byte
	for i := range 30 {
		bodies = append(bodies, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	if failed := tp.SendAll(b.ctx, bodies, nil); len(failed) > 0 {
		t.Fatalf("SendAll failed: %v", failed)
	}
	sub, err := task.OpenSubscription(b.ctx, b.subURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(context.Background())
	if !sub.Batched() || sub.InProcess() {
		t.Fatalf("SQS subscription: Batched %v, InProcess %v; want batched, not in process", sub.Batched(), sub.InProcess())
	}
	got, most := map[string]int{}, 0
	for calls := 0; len(got) < len(bodies) && calls < 30; calls++ {
		ds, err := sub.ReceiveBatch(b.ctx, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) > 10 {
			t.Fatalf("ReceiveBatch returned %d, more than SQS's ten per call", len(ds))
		}
		most = max(most, len(ds))
		for _, d := range ds {
			got[string(d.Body)]++
			d.Ack()
		}
	}
	if len(got) != len(bodies) {
		t.Fatalf("received %d of %d messages", len(got), len(bodies))
	}
	if most < 2 {
		t.Fatalf("at most %d message per ReceiveBatch with 30 ready: not batched", most)
	}
	if err := sub.Shutdown(b.ctx); err != nil { // flushes the acks
		t.Fatal(err)
	}
	if n := b.probe(t); n != 0 {
		t.Fatalf("%d messages left after every delivery was acked", n)
	}
}
