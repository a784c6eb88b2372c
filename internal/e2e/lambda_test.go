package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/droverhq/drover/internal/awstest"
	"github.com/droverhq/drover/internal/lambdatest"
	"github.com/droverhq/drover/pkg/task"
)

// The Lambda bootstraps are tested as built binaries, fed real event JSON
// by a stand-in of the Lambda Runtime API.

// TestLambdaDispatchFunctionURL: a function URL request to submit a task
// gets 202, a Location and the status document; the task is in SQS and
// DynamoDB.
func TestLambdaDispatchFunctionURL(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{})
	bin := lambdatest.Build(t, "github.com/droverhq/drover/functions/dispatch")

	raw, err := os.ReadFile("../lambdaedge/testdata/function-url-request.json")
	if err != nil {
		t.Fatal(err)
	}
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatal(err)
	}
	req.RawQueryString, req.QueryStringParameters = "", nil
	delete(req.Headers, "authorization")
	req.Body = `{"function":"echo","args":{"msg":"héllo"},"max_attempts":2}`
	req.Headers["content-length"] = fmt.Sprint(len(req.Body))
	bad := req
	bad.Body = `{"function":"echo","colour":"red"}`
	reqJSON, _ := json.Marshal(req)
	badJSON, _ := json.Marshal(bad)

	resps := lambdatest.Run(t, bin, e.vars, reqJSON, badJSON)
	var out events.APIGatewayV2HTTPResponse
	if resps[0].Failed() {
		t.Fatalf("invocation failed: %s %s", resps[0].ErrorType, resps[0].ErrorPayload)
	}
	if err := json.Unmarshal(resps[0].Payload, &out); err != nil {
		t.Fatal(err)
	}
	var st task.Status
	if err := json.Unmarshal([]byte(out.Body), &st); err != nil {
		t.Fatalf("body %q: %v", out.Body, err)
	}
	if out.StatusCode != 202 || out.Headers["Location"] != "/v1/tasks/"+st.ID || st.State != task.Queued || st.MaxAttempts != 2 {
		t.Fatalf("response %d %v %s", out.StatusCode, out.Headers, out.Body)
	}
	if err := json.Unmarshal(resps[1].Payload, &out); err != nil || out.StatusCode != 400 ||
		out.Headers["Content-Type"] != "application/problem+json" || !strings.Contains(out.Body, `unknown field \"colour\"`) {
		t.Fatalf("bad request answered %d %v %s", out.StatusCode, out.Headers, out.Body)
	}

	store, err := task.OpenStore(context.Background(), e.stack.Lookup("DROVER_STATUS"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if got, err := store.Get(context.Background(), st.ID); err != nil || got.State != task.Queued {
		t.Fatalf("DynamoDB has %+v, %v", got, err)
	}
	msgs := receiveAll(t, e.stack.TasksQueueURL, 1)
	m, err := task.DecodeMessage([]byte(aws.ToString(msgs[0].Body)))
	if err != nil || m.ID != st.ID || string(m.Args) != `{"msg":"héllo"}` {
		t.Fatalf("queued message %+v, %v", m, err)
	}
}

// TestLambdaRunnerBatch: an SQS batch with a task that succeeds, one that
// fails and must be retried, and one poison message. Exactly the retried
// message is reported in batchItemFailures; the poison message is archived
// and acked, never retried (DESIGN: delivery rules); the outcomes reach
// the events queue.
func TestLambdaRunnerBatch(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{})
	bin := lambdatest.Build(t, "github.com/droverhq/drover/functions/runner")

	now := time.Now().UTC()
	ok := &task.Message{ID: task.NewID(now), Function: "echo", Queue: "default", Args: []byte(`{"ok":true}`), TimeoutMS: 10000, MaxAttempts: 3, CreatedAt: now}
	retry := &task.Message{ID: task.NewID(now), Function: "fail", Queue: "default", Args: []byte(`{"times":1,"message":"flaky"}`), TimeoutMS: 10000, MaxAttempts: 3, CreatedAt: now}
	okBody, _ := task.EncodeMessage(ok)
	retryBody, _ := task.EncodeMessage(retry)
	bodies := []string{string(okBody), string(retryBody), `{"this is":"not a task"}`}
	ev, ids := sqsEvent(t, e.stack.TasksQueueURL, bodies)

	resps := lambdatest.Run(t, bin, append(e.vars, "DROVER_CONCURRENCY=3"), ev)
	if resps[0].Failed() {
		t.Fatalf("invocation failed: %s %s", resps[0].ErrorType, resps[0].ErrorPayload)
	}
	var out events.SQSEventResponse
	if err := json.Unmarshal(resps[0].Payload, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.BatchItemFailures) != 1 || out.BatchItemFailures[0].ItemIdentifier != ids[1] {
		t.Fatalf("batchItemFailures = %+v, want exactly the retried message %s", out.BatchItemFailures, ids[1])
	}
	// The poison message is archived under its message ID.
	archive, err := task.OpenArchive(context.Background(), e.stack.Lookup("DROVER_BUCKET"))
	if err != nil {
		t.Fatal(err)
	}
	defer archive.Close()
	if b, err := archive.Get(context.Background(), task.PoisonKey(ids[2]), 0); err != nil || string(b) != bodies[2] {
		t.Fatalf("poison archive: %q, %v", b, err)
	}
	// Outcomes: echo succeeded, fail is retrying with a backoff.
	phases := map[string]task.Phase{}
	for _, m := range receiveAll(t, e.stack.EventsQueueURL, 4) {
		ev, _, err := task.DecodeEvent([]byte(aws.ToString(m.Body)))
		if err == nil && ev != nil && ev.Phase != task.PhaseStarted {
			phases[ev.TaskID] = ev.Phase
		}
	}
	if phases[ok.ID] != task.PhaseSucceeded || phases[retry.ID] != task.PhaseRetrying {
		t.Fatalf("outcome events %v", phases)
	}
}

// TestLambdaCollectBatch: the collector applies an SQS batch of events
// to DynamoDB; an undecodable record is archived, not retried.
func TestLambdaCollectBatch(t *testing.T) {
	e := newEnv(t, awstest.StackOptions{})
	bin := lambdatest.Build(t, "github.com/droverhq/drover/functions/collect")
	now := time.Now().UTC()
	id := task.NewID(now)
	mk := func(p task.Phase, at time.Time) string {
		b, _ := task.EncodeEvent(&task.Event{TaskID: id, Function: "echo", Queue: "default", MaxAttempts: 3, CreatedAt: now, Attempt: 1, Phase: p, Runner: "r", At: at, StartedAt: now.Add(time.Second), Result: []byte(`1`)})
		return string(b)
	}
	// Out of order and duplicated: the outcome first.
	bodies := []string{mk(task.PhaseSucceeded, now.Add(2*time.Second)), mk(task.PhaseStarted, now.Add(time.Second)), mk(task.PhaseSucceeded, now.Add(2*time.Second)), "garbage"}
	ev, msgIDs := sqsEvent(t, e.stack.EventsQueueURL, bodies)
	resps := lambdatest.Run(t, bin, e.vars, ev)
	var out events.SQSEventResponse
	if resps[0].Failed() || json.Unmarshal(resps[0].Payload, &out) != nil || len(out.BatchItemFailures) != 0 {
		t.Fatalf("collect answered %s %s %s", resps[0].Payload, resps[0].ErrorType, resps[0].ErrorPayload)
	}
	// Not retried (no batch item failure, above) because archived: the
	// undecodable body is kept under poison/ by its message ID.
	archive, err := task.OpenArchive(context.Background(), e.stack.Lookup("DROVER_BUCKET"))
	if err != nil {
		t.Fatal(err)
	}
	defer archive.Close()
	if got, err := archive.Get(context.Background(), task.PoisonKey(msgIDs[3]), 1<<20); err != nil || string(got) != "garbage" {
		t.Fatalf("archived poison %s = %q, %v; want the undecodable body", task.PoisonKey(msgIDs[3]), got, err)
	}
	store, err := task.OpenStore(context.Background(), e.stack.Lookup("DROVER_STATUS"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	st, err := store.Get(context.Background(), id)
	if err != nil || st.State != task.Succeeded || string(st.Result) != "1" || st.StartedAt.IsZero() {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// sqsEvent sends bodies to the queue, receives them (so that the receipt
// handles are real), and returns the Lambda SQS event for them and their
// message IDs in order.
func sqsEvent(t *testing.T, queueURL string, bodies []string) ([]byte, []string) {
	t.Helper()
	q := sqsClient(t)
	ids := make([]string, len(bodies))
	for i, b := range bodies {
		out, err := q.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(b)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = aws.ToString(out.MessageId)
	}
	msgs := receiveAll(t, queueURL, len(bodies))
	name := queueURL[strings.LastIndex(queueURL, "/")+1:]
	var ev events.SQSEvent
	for _, id := range ids {
		i := slices.IndexFunc(msgs, func(m sqstypes.Message) bool { return aws.ToString(m.MessageId) == id })
		m := msgs[i]
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: id, ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Attributes:     map[string]string{"ApproximateReceiveCount": m.Attributes["ApproximateReceiveCount"], "SentTimestamp": m.Attributes["SentTimestamp"]},
			EventSourceARN: fmt.Sprintf("arn:aws:sqs:%s:%s:%s", awstest.Region, awstest.AccountID, name),
			EventSource:    "aws:sqs", AWSRegion: awstest.Region,
		})
	}
	b, _ := json.Marshal(ev)
	return b, ids
}

func sqsClient(t *testing.T) *sqs.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sqs.NewFromConfig(cfg)
}

// receiveAll receives at least n messages from the queue (without
// deleting them), failing after 20s.
func receiveAll(t *testing.T, queueURL string, n int) []sqstypes.Message {
	t.Helper()
	q := sqsClient(t)
	var got []sqstypes.Message
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n {
		out, err := q.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, VisibilityTimeout: 60,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out.Messages...)
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages from %s", len(got), n, queueURL)
		}
	}
	return got
}
