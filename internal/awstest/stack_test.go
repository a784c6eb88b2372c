package awstest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"
	"gocloud.dev/docstore"
	_ "gocloud.dev/docstore/awsdynamodb/v2"
	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/awssnssqs"

	"github.com/droverhq/drover/internal/awstest"
)

var moto *awstest.Moto

func TestMain(m *testing.M) {
	moto = awstest.Shared("awstest")
	code := m.Run()
	moto.Stop()
	os.Exit(code)
}

type setupBundle struct {
	ctx   context.Context
	stack *awstest.Stack
}

func setup(t *testing.T, prefix string, opts awstest.StackOptions) setupBundle {
	t.Helper()
	if moto == nil {
		t.Skip(awstest.ErrNoEmulator)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := awstest.CreateStack(ctx, prefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Delete(context.Background()); err != nil {
			t.Errorf("delete stack: %v", err)
		}
	})
	return setupBundle{ctx: ctx, stack: s}
}

func TestStackEnv(t *testing.T) {
	b := setup(t, "envtest", awstest.StackOptions{})
	env := b.stack.Env()
	t.Logf("env: %q", env)
	for _, want := range []string{
		"DROVER_TASKS_TOPIC=awssqs://",
		"DROVER_TASKS_SUBSCRIPTION=awssqs://",
		"DROVER_EVENTS_TOPIC=awssqs://",
		"DROVER_EVENTS_SUBSCRIPTION=awssqs://",
		"DROVER_DLQ_SUBSCRIPTION=awssqs://",
		"DROVER_BUCKET=s3://envtest-archive?use_path_style=true",
		"DROVER_STATUS=dynamodb://envtest-status?partition_key=id",
	} {
		if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, want) }) {
			t.Errorf("Env() has no %q...; got %q", want, env)
		}
	}
	for _, k := range []string{"DROVER_TASKS_SUBSCRIPTION", "DROVER_EVENTS_SUBSCRIPTION"} {
		if v := b.stack.Lookup(k); !strings.HasSuffix(v, "?raw=true&nacklazy=true") {
			t.Errorf("%s = %q, want raw=true&nacklazy=true", k, v)
		}
	}
	// CreateStack again over the same resources succeeds.
	if _, err := awstest.CreateStack(b.ctx, "envtest", awstest.StackOptions{}); err != nil {
		t.Errorf("second CreateStack: %v", err)
	}
}

func TestStackQueues(t *testing.T) {
	b := setup(t, "queues", awstest.StackOptions{})
	for _, q := range []struct{ topic, sub string }{
		{"DROVER_TASKS_TOPIC", "DROVER_TASKS_SUBSCRIPTION"},
		{"DROVER_EVENTS_TOPIC", "DROVER_EVENTS_SUBSCRIPTION"},
	} {
		t.Run(q.topic, func(t *testing.T) {
			topic, err := pubsub.OpenTopic(b.ctx, b.stack.Lookup(q.topic))
			if err != nil {
				t.Fatal(err)
			}
			defer topic.Shutdown(b.ctx)
			sub, err := pubsub.OpenSubscription(b.ctx, b.stack.Lookup(q.sub))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Shutdown(b.ctx)
			body := []byte(`{"id":"01J","function":"echo"}`)
			if err := topic.Send(b.ctx, &pubsub.Message{Body: body, Metadata: map[string]string{"k": "v"}}); err != nil {
				t.Fatal(err)
			}
			m := receive(t, b.ctx, sub)
			if string(m.Body) != string(body) || m.Metadata["k"] != "v" {
				t.Errorf("received %q %v, want %q map[k:v]", m.Body, m.Metadata, body)
			}
			m.Ack()
		})
	}
}

// TestStackRedrive shows the redrive policy moving a message that was
// received too often to the tasks DLQ, where DROVER_DLQ_SUBSCRIPTION
// receives it.
func TestStackRedrive(t *testing.T) {
	b := setup(t, "redrive", awstest.StackOptions{MaxReceiveCount: 1, VisibilityTimeout: time.Second})
	topic, err := pubsub.OpenTopic(b.ctx, b.stack.Lookup("DROVER_TASKS_TOPIC"))
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(b.ctx)
	if err := topic.Send(b.ctx, &pubsub.Message{Body: []byte("doomed")}); err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(mustConfig(t))
	in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.stack.TasksQueueURL), WaitTimeSeconds: 1}
	out, err := client.ReceiveMessage(b.ctx, in)
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("first receive: %v, %d messages", err, len(out.Messages))
	}
	time.Sleep(1500 * time.Millisecond) // let the visibility timeout pass
	if out, err = client.ReceiveMessage(b.ctx, in); err != nil || len(out.Messages) != 0 {
		t.Fatalf("second receive: %v, %d messages; want it moved to the DLQ", err, len(out.Messages))
	}
	dlq, err := pubsub.OpenSubscription(b.ctx, b.stack.Lookup("DROVER_DLQ_SUBSCRIPTION"))
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Shutdown(b.ctx)
	m := receive(t, b.ctx, dlq)
	if string(m.Body) != "doomed" {
		t.Errorf("DLQ message body %q, want doomed", m.Body)
	}
	m.Ack()
}

func TestStackBucket(t *testing.T) {
	b := setup(t, "bucket", awstest.StackOptions{})
	bucket, err := blob.OpenBucket(b.ctx, b.stack.Lookup("DROVER_BUCKET"))
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	if err := bucket.WriteAll(b.ctx, "payloads/01J", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	got, err := bucket.ReadAll(b.ctx, "payloads/01J")
	if err != nil || string(got) != "hello" {
		t.Fatalf("ReadAll = %q, %v; want hello", got, err)
	}
	if _, err := bucket.ReadAll(b.ctx, "payloads/none"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("ReadAll of a missing key: %v, want NotFound", err)
	}
}

type statusDoc struct {
	ID               string `docstore:"id"`
	Kind             string `docstore:"kind"`
	State            string `docstore:"state"`
	ExpiresAt        int64  `docstore:"expires_at"`
	DocstoreRevision any
}

func TestStackStatus(t *testing.T) {
	b := setup(t, "status", awstest.StackOptions{})
	coll, err := docstore.OpenCollection(b.ctx, b.stack.Lookup("DROVER_STATUS"))
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	ctx := b.ctx

	t.Run("revisions", func(t *testing.T) {
		d := &statusDoc{ID: "rev1", Kind: "revtest", State: "queued", ExpiresAt: time.Now().Add(time.Hour).Unix()}
		if err := coll.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		if d.DocstoreRevision == nil {
			t.Fatal("Create set no revision")
		}
		got := &statusDoc{ID: "rev1"}
		if err := coll.Get(ctx, got); err != nil {
			t.Fatal(err)
		}
		if got.State != "queued" || got.Kind != "revtest" {
			t.Errorf("Get = %+v", got)
		}
		stale := *got
		got.State = "running"
		if err := coll.Replace(ctx, got); err != nil {
			t.Fatalf("Replace at the current revision: %v", err)
		}
		stale.State = "failed"
		if err := coll.Replace(ctx, &stale); gcerrors.Code(err) != gcerrors.FailedPrecondition {
			t.Errorf("Replace at a stale revision: %v, want FailedPrecondition", err)
		}
		if err := coll.Create(ctx, &statusDoc{ID: "rev1", Kind: "task", State: "queued"}); gcerrors.Code(err) != gcerrors.AlreadyExists {
			t.Errorf("Create of an existing key: %v, want AlreadyExists", err)
		}
		if err := coll.Get(ctx, &statusDoc{ID: "none"}); gcerrors.Code(err) != gcerrors.NotFound {
			t.Errorf("Get of a missing key: %v, want NotFound", err)
		}
	})

	t.Run("query", func(t *testing.T) {
		// Ten tasks t00..t09, even ones queued; one runner that the
		// kind filter must leave out.
		for i := range 10 {
			state := "running"
			if i%2 == 0 {
				state = "queued"
			}
			if err := coll.Put(ctx, &statusDoc{ID: fmt.Sprintf("t%02d", i), Kind: "task", State: state}); err != nil {
				t.Fatal(err)
			}
		}
		if err := coll.Put(ctx, &statusDoc{ID: "t99", Kind: "runner", State: "up"}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			cursor string
			state  string
			want   []string
		}{
			{"first page", "", "", []string{"t09", "t08", "t07"}},
			{"next page", "t07", "", []string{"t06", "t05", "t04"}},
			{"last page", "t02", "", []string{"t01", "t00"}},
			{"queued first page", "", "queued", []string{"t08", "t06", "t04"}},
			{"queued next page", "t04", "queued", []string{"t02", "t00"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// docstore requires the OrderBy field in a Where clause
				// whenever there is one, so the first page asks for IDs
				// below "~", which sorts above every ULID character.
				cursor := tc.cursor
				if cursor == "" {
					cursor = "~"
				}
				q := coll.Query().Where("kind", "=", "task").Where("id", "<", cursor).
					OrderBy("id", docstore.Descending).Limit(3)
				if tc.state != "" {
					q = q.Where("state", "=", tc.state)
				}
				var index string
				q = q.BeforeQuery(func(as func(any) bool) error {
					var in *dynamodb.QueryInput
					if !as(&in) {
						return errors.New("query would scan the table")
					}
					index = aws.ToString(in.IndexName)
					return nil
				})
				it := q.Get(ctx)
				defer it.Stop()
				var got []string
				for {
					var d statusDoc
					err := it.Next(ctx, &d)
					if err != nil {
						if err != io.EOF {
							t.Fatal(err)
						}
						break
					}
					got = append(got, d.ID)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
				if index != awstest.KindIndex {
					t.Errorf("served by index %q, want %q", index, awstest.KindIndex)
				}
			})
		}
	})
}

func receive(t *testing.T, ctx context.Context, sub *pubsub.Subscription) *pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := sub.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return m
}

func mustConfig(t *testing.T) aws.Config {
	t.Helper()
	cfg, err := moto.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
