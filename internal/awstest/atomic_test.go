package awstest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	stypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The emulator gives the atomicity that AWS does and moto alone does not
// (moto_serial.py): without it, CI saw one idempotency key claimed by two
// requests, and eight tasks run twice at once. These tests fail on plain
// moto_server only sometimes (a race), never with the emulator as started.

// TestConcurrentReceivesDeliverOnce: receivers polling one queue at once
// never get a message twice within its visibility timeout.
func TestConcurrentReceivesDeliverOnce(t *testing.T) {
	b := setupClients(t)
	q, err := b.sqs.CreateQueue(b.ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(fmt.Sprintf("once-%d", time.Now().UnixNano())), Attributes: map[string]string{"VisibilityTimeout": "600"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	const n = 300
	for i := 0; i < n; i += 10 {
		var es []stypes.SendMessageBatchRequestEntry
		for j := range 10 {
			es = append(es, stypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(fmt.Sprint(i + j))})
		}
		if _, err := b.sqs.SendMessageBatch(b.ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: es}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				out, err := b.sqs.ReceiveMessage(b.ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 2, WaitTimeSeconds: 1})
				if err != nil {
					t.Error(err)
					return
				}
				if len(out.Messages) == 0 {
					return
				}
				mu.Lock()
				for _, m := range out.Messages {
					seen[*m.Body]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for body, k := range seen {
		if k > 1 {
			t.Errorf("message %s was received %d times within its visibility timeout by concurrent receivers", body, k)
		}
	}
	if len(seen) != n {
		t.Errorf("received %d distinct messages of %d", len(seen), n)
	}
}

// TestConcurrentCreatesOneWins: of concurrent PutItems conditional on the
// item not existing, exactly one succeeds.
func TestConcurrentCreatesOneWins(t *testing.T) {
	b := setupClients(t)
	table := fmt.Sprintf("once-%d", time.Now().UnixNano())
	if _, err := b.ddb.CreateTable(b.ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []dtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: dtypes.ScalarAttributeTypeS}},
		KeySchema:            []dtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: dtypes.KeyTypeHash}},
		BillingMode:          dtypes.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	for round := range 20 {
		var (
			won atomic.Int32
			wg  sync.WaitGroup
		)
		for i := range 50 {
			wg.Go(func() {
				// An item the size of an idempotency claim: moto converts
				// its attributes between reading the item and checking
				// the condition.
				item := map[string]dtypes.AttributeValue{
					"id": &dtypes.AttributeValueMemberS{Value: fmt.Sprint("key-", round)},
					"by": &dtypes.AttributeValueMemberN{Value: fmt.Sprint(i)},
				}
				for a := range 16 {
					item[fmt.Sprint("attr", a)] = &dtypes.AttributeValueMemberS{Value: fmt.Sprint("value of ", a, " by ", i)}
				}
				_, err := b.ddb.PutItem(b.ctx, &dynamodb.PutItemInput{
					TableName: aws.String(table), Item: item,
					ConditionExpression: aws.String("attribute_not_exists(id)"),
				})
				var lost *dtypes.ConditionalCheckFailedException
				switch {
				case err == nil:
					won.Add(1)
				case !errors.As(err, &lost):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Errorf("round %d: %d of 50 concurrent conditional creates of one item succeeded, want 1", round, n)
		}
	}
}

type clients struct {
	ctx context.Context
	sqs *sqs.Client
	ddb *dynamodb.Client
}

func setupClients(t *testing.T) clients {
	t.Helper()
	if moto == nil {
		t.Skip("no emulator")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cfg, err := moto.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return clients{ctx: ctx, sqs: sqs.NewFromConfig(cfg), ddb: dynamodb.NewFromConfig(cfg)}
}
