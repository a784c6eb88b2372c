package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dyntypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"
)

// SamePath is what the raw AWS SDK achieves doing, per task, the queue
// and table work a Drover task needs on SQS and DynamoDB, with Drover's
// batching and concurrency, and nothing else (no HTTP, no codec, no
// state machine, no gocloud):
//
//   - senders (one per bench client), per request of Batch tasks, as the
//     dispatch API does: SendMessageBatch (10) of the task bodies, all
//     at once, then one conditional PutItem (attribute_not_exists) per
//     task for its queued document, all at once;
//   - workers (as many as keep Runners × Concurrency messages in hand,
//     10 each): ReceiveMessage (10) on the tasks queue, BatchGetItem of
//     those tasks' state (the check that a cancelled task never runs),
//     SendMessageBatch of one outcome body each to the events queue,
//     DeleteMessageBatch of the task messages;
//   - collectors (2): ReceiveMessage (10) on the events queue,
//     BatchGetItem of the documents, one PutItem each conditional on the
//     revision read, DeleteMessageBatch.
//
// Receives long-poll (WaitTimeSeconds 1). Senders, workers and
// collectors run together from the first send, as Drover's steady phase
// does; a task counts when its terminal document is written.
type SamePath struct {
	Tasks      int           `json:"tasks"`
	Senders    int           `json:"senders"`
	Workers    int           `json:"workers"`
	Collectors int           `json:"collectors"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	PerSecond  float64       `json:"per_s"`
	// SendPerSecond is the enqueue rate alone (send + create), over the
	// senders' own elapsed.
	SendPerSecond float64 `json:"send_per_s"`
}

// statusTable returns the DynamoDB table of DROVER_STATUS.
func statusTable() (string, error) {
	s := os.Getenv("DROVER_STATUS")
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "dynamodb" || u.Host == "" {
		return "", errors.New("DROVER_STATUS is not a dynamodb:// table")
	}
	if pk := u.Query().Get("partition_key"); pk != "" && pk != "id" {
		return "", fmt.Errorf("DROVER_STATUS: partition key %q, want id", pk)
	}
	return u.Host, nil
}

func attrS(s string) dyntypes.AttributeValue { return &dyntypes.AttributeValueMemberS{Value: s} }
func attrN(n int64) dyntypes.AttributeValue {
	return &dyntypes.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// samePathCeiling measures SamePath on fresh queues and the stack's
// status table. When the bench counts requests, the run goes through a
// counter of its own (Drover's system is still up, polling), whose counts
// it returns per task.
func samePathCeiling(ctx context.Context, o *Options) (*SamePath, *Requests, error) {
	res, c, err := samePath(ctx, o)
	if c != nil {
		defer c.close()
	}
	if err != nil || c == nil {
		return res, nil, err
	}
	return res, c.since(nil, res.Tasks), nil
}

func samePath(ctx context.Context, o *Options) (*SamePath, *reqCounter, error) {
	if !strings.HasPrefix(os.Getenv("DROVER_TASKS_TOPIC"), "awssqs://") {
		return nil, nil, errors.New("DROVER_TASKS_TOPIC is not an awssqs:// queue")
	}
	table, err := statusTable()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load AWS config: %w", err)
	}
	var counter *reqCounter
	if o.counter != nil {
		if counter, err = startCounter(o.counter.target); err != nil {
			return nil, nil, err
		}
		cfg.BaseEndpoint = aws.String(counter.url)
	}
	q := sqs.NewFromConfig(cfg)
	db := dynamodb.NewFromConfig(cfg)
	seq := benchSeq.Add(1)
	var qurls [2]*string
	for i, what := range []string{"tasks", "events"} {
		name := fmt.Sprintf("bench-sdk-%d-%d-%s", os.Getpid(), seq, what)
		out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: map[string]string{"VisibilityTimeout": "30"}})
		if err != nil {
			return nil, counter, fmt.Errorf("create queue %s: %w", name, err)
		}
		qurls[i] = out.QueueUrl
		defer q.DeleteQueue(context.WithoutCancel(ctx), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	}
	tasksQ, eventsQ := qurls[0], qurls[1]

	n := min(o.Tasks, 20000)
	res := &SamePath{
		Tasks: n, Senders: o.Clients, Collectors: 2,
		Workers: max(o.Runners, (o.Runners*o.Concurrency+9)/10),
	}
	prefix := fmt.Sprintf("raw-%d-%d-", os.Getpid(), seq)
	created := time.Now().UTC().Format(time.RFC3339Nano)
	taskBody := func(id string) string {
		return `{"v":1,"id":"` + id + `","function":"noop","queue":"default","timeout_ms":300000,"max_attempts":3,"created_at":"` + created + `"}`
	}
	outcomeBody := func(id, at string) string {
		return `{"v":1,"task_id":"` + id + `","function":"noop","queue":"default","max_attempts":3,"created_at":"` + created +
			`","attempt":1,"phase":"succeeded","runner":"bench-sdk","at":"` + at + `","started_at":"` + at + `"}`
	}

	var (
		next, done atomic.Int64
		firstErr   error
		errOnce    sync.Once
		wg         sync.WaitGroup
	)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		if rctx.Err() == nil {
			errOnce.Do(func() { firstErr = err })
		}
		cancel()
	}
	t0 := time.Now()
	var sendEnd atomic.Int64

	// Senders: one request of Batch tasks at a time, as a bench client.
	var senders sync.WaitGroup
	for range res.Senders {
		senders.Go(func() {
			for rctx.Err() == nil {
				first := int(next.Add(int64(o.Batch))) - o.Batch
				if first >= n {
					return
				}
				last := min(first+o.Batch, n)
				var g errgroup.Group
				for c := first; c < last; c += 10 {
					g.Go(func() error {
						var es []sqstypes.SendMessageBatchRequestEntry
						for i := c; i < min(c+10, last); i++ {
							es = append(es, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i - c)), MessageBody: aws.String(taskBody(prefix + strconv.Itoa(i)))})
						}
						out, err := q.SendMessageBatch(rctx, &sqs.SendMessageBatchInput{QueueUrl: tasksQ, Entries: es})
						if err == nil && len(out.Failed) > 0 {
							err = fmt.Errorf("send tasks: %d failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
						}
						return err
					})
				}
				if err := g.Wait(); err != nil {
					fail(err)
					return
				}
				for i := first; i < last; i++ {
					g.Go(func() error {
						_, err := db.PutItem(rctx, &dynamodb.PutItemInput{
							TableName:           &table,
							Item:                queuedItem(prefix+strconv.Itoa(i), created),
							ConditionExpression: aws.String("attribute_not_exists(id)"),
						})
						var ccf *dyntypes.ConditionalCheckFailedException
						if errors.As(err, &ccf) {
							err = nil // the outcome overtook the create, as Drover allows
						}
						return err
					})
				}
				if err := g.Wait(); err != nil {
					fail(fmt.Errorf("create queued documents: %w", err))
					return
				}
			}
		})
	}
	wg.Go(func() { senders.Wait(); sendEnd.Store(int64(time.Since(t0))) })

	receive := func(qu *string) ([]sqstypes.Message, bool) {
		out, err := q.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{QueueUrl: qu, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			fail(fmt.Errorf("receive: %w", err))
			return nil, false
		}
		return out.Messages, true
	}
	deleteAll := func(qu *string, ms []sqstypes.Message) bool {
		var del []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range ms {
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if _, err := q.DeleteMessageBatch(rctx, &sqs.DeleteMessageBatchInput{QueueUrl: qu, Entries: del}); err != nil {
			fail(fmt.Errorf("delete: %w", err))
			return false
		}
		return true
	}
	ids := func(ms []sqstypes.Message, field string) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			b := aws.ToString(m.Body)
			_, rest, _ := strings.Cut(b, `"`+field+`":"`)
			out[i], _, _ = strings.Cut(rest, `"`)
		}
		return out
	}
	batchGet := func(ids []string, projection string) (map[string]map[string]dyntypes.AttributeValue, bool) {
		keys := make([]map[string]dyntypes.AttributeValue, len(ids))
		for i, id := range ids {
			keys[i] = map[string]dyntypes.AttributeValue{"id": attrS(id)}
		}
		ka := dyntypes.KeysAndAttributes{Keys: keys}
		if projection != "" {
			ka.ProjectionExpression = aws.String(projection)
			ka.ExpressionAttributeNames = map[string]string{"#s": "state", "#k": "kind"}
		}
		out, err := db.BatchGetItem(rctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]dyntypes.KeysAndAttributes{table: ka}})
		if err != nil {
			fail(fmt.Errorf("batch get: %w", err))
			return nil, false
		}
		got := map[string]map[string]dyntypes.AttributeValue{}
		for _, it := range out.Responses[table] {
			if v, ok := it["id"].(*dyntypes.AttributeValueMemberS); ok {
				got[v.Value] = it
			}
		}
		return got, true
	}

	// Workers: check, publish the outcomes, ack.
	for range res.Workers {
		wg.Go(func() {
			for rctx.Err() == nil {
				ms, ok := receive(tasksQ)
				if !ok {
					return
				}
				if len(ms) == 0 {
					continue
				}
				tids := ids(ms, "id")
				if _, ok := batchGet(tids, "id, #s, #k"); !ok {
					return
				}
				at := time.Now().UTC().Format(time.RFC3339Nano)
				var es []sqstypes.SendMessageBatchRequestEntry
				for i, id := range tids {
					es = append(es, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(outcomeBody(id, at))})
				}
				out, err := q.SendMessageBatch(rctx, &sqs.SendMessageBatchInput{QueueUrl: eventsQ, Entries: es})
				if err == nil && len(out.Failed) > 0 {
					err = fmt.Errorf("%d failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
				}
				if err != nil {
					fail(fmt.Errorf("send outcomes: %w", err))
					return
				}
				if !deleteAll(tasksQ, ms) {
					return
				}
			}
		})
	}

	// Collectors: read, write under the revision, ack.
	for range res.Collectors {
		wg.Go(func() {
			for rctx.Err() == nil {
				ms, ok := receive(eventsQ)
				if !ok {
					return
				}
				if len(ms) == 0 {
					continue
				}
				// Read, write under the revision read; re-read and retry
				// those that changed underneath (the create racing the
				// outcome), as Drover's Apply does.
				pending := ids(ms, "task_id")
				for round := 0; len(pending) > 0; round++ {
					if round == 20 {
						fail(errors.New("write statuses: still conflicting after 20 tries"))
						return
					}
					docs, ok := batchGet(pending, "")
					if !ok {
						return
					}
					at := time.Now().UTC().Format(time.RFC3339Nano)
					var (
						g        errgroup.Group
						mu       sync.Mutex
						conflict []string
					)
					for _, id := range pending {
						g.Go(func() error {
							in := &dynamodb.PutItemInput{TableName: &table, Item: finishedItem(id, created, at)}
							if old, ok := docs[id]; ok {
								in.ConditionExpression = aws.String("DocstoreRevision = :r")
								in.ExpressionAttributeValues = map[string]dyntypes.AttributeValue{":r": old["DocstoreRevision"]}
							} else {
								in.ConditionExpression = aws.String("attribute_not_exists(id)")
							}
							_, err := db.PutItem(rctx, in)
							var ccf *dyntypes.ConditionalCheckFailedException
							if errors.As(err, &ccf) {
								mu.Lock()
								conflict = append(conflict, id)
								mu.Unlock()
								return nil
							}
							return err
						})
					}
					if err := g.Wait(); err != nil {
						fail(fmt.Errorf("write statuses: %w", err))
						return
					}
					pending = conflict
				}
				if !deleteAll(eventsQ, ms) {
					return
				}
				if done.Add(int64(len(ms))) >= int64(n) {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, counter, firstErr
	}
	res.Elapsed = time.Since(t0)
	res.PerSecond = float64(done.Load()) / res.Elapsed.Seconds()
	if d := time.Duration(sendEnd.Load()); d > 0 {
		res.SendPerSecond = float64(n) / d.Seconds()
	}
	return res, counter, nil
}

// queuedItem is a task's first document, shaped as Drover's.
func queuedItem(id, created string) map[string]dyntypes.AttributeValue {
	return map[string]dyntypes.AttributeValue{
		"id": attrS(id), "kind": attrS("task"), "function": attrS("noop"), "queue": attrS("default"),
		"state": attrS("queued"), "phase": attrS("submitted"), "attempt": attrN(0), "max_attempts": attrN(3),
		"created_at": attrS(created), "event_at": attrS(created), "expires_at": attrN(0),
		"DocstoreRevision": attrS(strconv.FormatInt(time.Now().UnixNano(), 36)),
	}
}

// finishedItem is a task's terminal document, shaped as Drover's.
func finishedItem(id, created, at string) map[string]dyntypes.AttributeValue {
	it := queuedItem(id, created)
	it["state"], it["phase"], it["attempt"] = attrS("succeeded"), attrS("succeeded"), attrN(1)
	it["started_at"], it["finished_at"], it["event_at"] = attrS(at), attrS(at), attrS(at)
	it["runner"], it["expires_at"] = attrS("bench-sdk"), attrN(time.Now().Add(168*time.Hour).Unix())
	return it
}
