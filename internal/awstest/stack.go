package awstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dyntypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Defaults of StackOptions.
const (
	DefaultMaxReceiveCount   = 30
	DefaultVisibilityTimeout = 30 * time.Second
)

// Names fixed by the stack's layout.
const (
	// KindIndex is the status table's global secondary index: hash key
	// "kind" (S), range key "id" (S), projection ALL.
	KindIndex = "by_kind"
	// TTLAttribute is the status table's time-to-live attribute. DynamoDB
	// only expires items whose TTL attribute is a Number of Unix epoch
	// seconds: the docstore driver encodes time.Time as an RFC 3339
	// string, so store an int64 there.
	TTLAttribute = "expires_at"
)

// StackOptions tunes CreateStack. Zero values mean the documented defaults.
type StackOptions struct {
	// MaxReceiveCount is the redrive policy's maxReceiveCount on both
	// queues: receives before a message moves to its dead-letter queue.
	// Default DefaultMaxReceiveCount.
	MaxReceiveCount int
	// VisibilityTimeout is the tasks queue's default visibility timeout,
	// whole seconds. Default DefaultVisibilityTimeout.
	VisibilityTimeout time.Duration
	// EventsVisibilityTimeout is the events queue's. Default the larger
	// of VisibilityTimeout and DefaultVisibilityTimeout: the collector
	// holds a batch of events for as long as the batch takes (Terraform's
	// default is 180 s), and a visibility shorter than that has every
	// event of a slow batch delivered again, so that the backlog grows
	// instead of draining.
	EventsVisibilityTimeout time.Duration
	// AllowScans adds allow_scans=true to the DROVER_STATUS URL, letting
	// queries that no key or index serves run as table scans.
	AllowScans bool
	// Config is the AWS configuration to create the resources with. Nil
	// loads the SDK's default configuration from the environment
	// (AWS_ENDPOINT_URL, AWS_REGION, credentials): call Moto.Setenv first,
	// or pass Moto.AWSConfig.
	Config *aws.Config
}

// Stack is the set of AWS resources Drover runs on, as CreateStack makes
// them for prefix P:
//
//   - SQS queues P-tasks and P-events, each with a dead-letter queue
//     (P-tasks-dlq, P-events-dlq) and a redrive policy to it;
//   - S3 bucket P-archive;
//   - DynamoDB table P-status: hash key "id" (S), global secondary index
//     "by_kind" (hash "kind" S, range "id" S, projection ALL), on-demand
//     billing, TTL on "expires_at".
//
// Env gives the DROVER_* gocloud URLs for them. Those URLs carry no
// endpoint: the process that opens them reaches the emulator through the
// AWS SDK's own variables (Moto.Env: AWS_ENDPOINT_URL, AWS_REGION,
// credentials). The query parameters they do carry, and why:
//
//   - awssqs://HOST/ACCOUNT/NAME: the queue URL the service returned, its
//     scheme replaced by awssqs (gocloud sends "https://HOST/ACCOUNT/NAME"
//     as QueueUrl; the SDK still sends requests to AWS_ENDPOINT_URL, and
//     the emulator finds the queue by the URL's path).
//   - raw=true on subscriptions: Drover's messages are sent straight to
//     SQS, never through SNS, so bodies are taken as they are instead of
//     being sniffed for SNS JSON.
//   - nacklazy=true on the tasks and events subscriptions: Drover sets a
//     retry's visibility itself (the backoff) and then Nacks; without
//     nacklazy gocloud's Nack would reset the visibility to 1 s and the
//     retry would come back at once. Not on the DLQ subscription: the
//     sweeper's Nack should make a message visible again promptly.
//   - s3://BUCKET?use_path_style=true: emulators serve buckets under
//     ENDPOINT/BUCKET, not as BUCKET.ENDPOINT virtual hosts.
//   - dynamodb://TABLE?partition_key=id: the table's hash key. No sort_key
//     (the table has none). The driver reads the table's indexes with
//     DescribeTable when it opens, and serves a query with an "=" filter
//     on kind from the by_kind index, ordered by id. consistent_read must
//     stay off: DynamoDB refuses consistent reads on a global index, and
//     the driver would ask for them on index queries too. allow_scans
//     only with StackOptions.AllowScans (a query the keys do not serve
//     fails with InvalidArgument instead of scanning the table).
type Stack struct {
	Prefix string
	Region string

	TasksQueueURL  string
	TasksDLQURL    string
	EventsQueueURL string
	EventsDLQURL   string
	Bucket         string
	Table          string

	allowScans bool
	cfg        aws.Config
	// extra are the queues AddQueue made (and their DLQs).
	extra []string
}

// AddQueue creates one more tasks queue, P-tasks-NAME, with its
// dead-letter queue and the redrive policy the tasks queue has
// (maxReceives receives), and returns both URLs; Delete removes them.
func (s *Stack) AddQueue(ctx context.Context, name string, maxReceives int) (queueURL, dlqURL string, err error) {
	dlqURL, queueURL, err = createQueuePair(ctx, sqs.NewFromConfig(s.cfg), s.Prefix+"-tasks-"+name, "30", maxReceives)
	s.extra = append(s.extra, queueURL, dlqURL)
	return queueURL, dlqURL, err
}

// SubscriptionURL is the awssqs:// URL a runner takes tasks from queueURL
// by (raw, nacklazy: see Stack); TopicURL the one dispatch sends by.
func SubscriptionURL(queueURL string) string { return sqsURL(queueURL, "raw=true&nacklazy=true") }

// TopicURL is the awssqs:// URL of queueURL to send by.
func TopicURL(queueURL string) string { return sqsURL(queueURL, "") }

// CreateStack creates the resources of a Stack named by prefix. Resources
// that already exist with the same settings are reused, so it can be run
// twice; on error, what was created stays (Delete removes it).
func CreateStack(ctx context.Context, prefix string, opts StackOptions) (*Stack, error) {
	if prefix == "" {
		return nil, errors.New("create stack: empty prefix")
	}
	if opts.MaxReceiveCount == 0 {
		opts.MaxReceiveCount = DefaultMaxReceiveCount
	}
	if opts.VisibilityTimeout == 0 {
		opts.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if opts.MaxReceiveCount < 1 || opts.MaxReceiveCount > 1000 {
		return nil, fmt.Errorf("create stack %s: max receive count %d not in [1, 1000]", prefix, opts.MaxReceiveCount)
	}
	if opts.EventsVisibilityTimeout == 0 {
		opts.EventsVisibilityTimeout = max(opts.VisibilityTimeout, DefaultVisibilityTimeout)
	}
	for _, v := range []time.Duration{opts.VisibilityTimeout, opts.EventsVisibilityTimeout} {
		if v < 0 || v > 12*time.Hour {
			return nil, fmt.Errorf("create stack %s: visibility timeout %s not in [0, 12h]", prefix, v)
		}
	}
	cfg, err := stackConfig(ctx, opts.Config)
	if err != nil {
		return nil, fmt.Errorf("create stack %s: %w", prefix, err)
	}
	s := &Stack{
		Prefix:     prefix,
		Region:     cfg.Region,
		Bucket:     prefix + "-archive",
		Table:      prefix + "-status",
		allowScans: opts.AllowScans,
		cfg:        cfg,
	}
	sqsc := sqs.NewFromConfig(cfg)
	seconds := func(d time.Duration) string { return strconv.Itoa(int((d + time.Second - 1) / time.Second)) }
	for _, q := range []struct {
		name       string
		visibility time.Duration
		url, dlq   *string
	}{
		{prefix + "-tasks", opts.VisibilityTimeout, &s.TasksQueueURL, &s.TasksDLQURL},
		{prefix + "-events", opts.EventsVisibilityTimeout, &s.EventsQueueURL, &s.EventsDLQURL},
	} {
		if *q.dlq, *q.url, err = createQueuePair(ctx, sqsc, q.name, seconds(q.visibility), opts.MaxReceiveCount); err != nil {
			return nil, fmt.Errorf("create stack %s: %w", prefix, err)
		}
	}
	if err := createBucket(ctx, s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }), s.Bucket, cfg.Region); err != nil {
		return nil, fmt.Errorf("create stack %s: %w", prefix, err)
	}
	if err := createTable(ctx, dynamodb.NewFromConfig(cfg), s.Table); err != nil {
		return nil, fmt.Errorf("create stack %s: %w", prefix, err)
	}
	return s, nil
}

// AWSConfig returns an AWS SDK configuration that reaches this emulator,
// without reading or changing the process environment.
func (m *Moto) AWSConfig(ctx context.Context) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithBaseEndpoint(m.Endpoint),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
}

func stackConfig(ctx context.Context, cfg *aws.Config) (aws.Config, error) {
	if cfg != nil {
		return cfg.Copy(), nil
	}
	c, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	if c.Region == "" {
		return aws.Config{}, errors.New("load AWS config: no region (set AWS_REGION)")
	}
	return c, nil
}

// createQueuePair creates the queue name and its dead-letter queue
// name-dlq, and returns both URLs.
func createQueuePair(ctx context.Context, c *sqs.Client, name, visibility string, maxReceives int) (dlqURL, queueURL string, err error) {
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name + "-dlq"),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameMessageRetentionPeriod): "1209600", // 14 days, the maximum
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s-dlq: %w", name, err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       dlq.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("get ARN of queue %s-dlq: %w", name, err)
	}
	redrive, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(maxReceives),
	})
	if err != nil {
		return "", "", err
	}
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameVisibilityTimeout): visibility,
			string(sqstypes.QueueAttributeNameRedrivePolicy):     string(redrive),
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", name, err)
	}
	return aws.ToString(dlq.QueueUrl), aws.ToString(q.QueueUrl), nil
}

func createBucket(ctx context.Context, c *s3.Client, bucket, region string) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
	if region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{
			LocationConstraint: s3types.BucketLocationConstraint(region),
		}
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
	}
	return nil
}

func createTable(ctx context.Context, c *dynamodb.Client, table string) error {
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: dyntypes.BillingModePayPerRequest,
		AttributeDefinitions: []dyntypes.AttributeDefinition{
			{AttributeName: aws.String("id"), AttributeType: dyntypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("kind"), AttributeType: dyntypes.ScalarAttributeTypeS},
		},
		KeySchema: []dyntypes.KeySchemaElement{
			{AttributeName: aws.String("id"), KeyType: dyntypes.KeyTypeHash},
		},
		GlobalSecondaryIndexes: []dyntypes.GlobalSecondaryIndex{{
			IndexName: aws.String(KindIndex),
			KeySchema: []dyntypes.KeySchemaElement{
				{AttributeName: aws.String("kind"), KeyType: dyntypes.KeyTypeHash},
				{AttributeName: aws.String("id"), KeyType: dyntypes.KeyTypeRange},
			},
			Projection: &dyntypes.Projection{ProjectionType: dyntypes.ProjectionTypeAll},
		}},
	})
	if err != nil {
		var inUse *dyntypes.ResourceInUseException
		if !errors.As(err, &inUse) {
			return fmt.Errorf("create table %s: %w", table, err)
		}
	}
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 2*time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", table, err)
	}
	_, err = c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &dyntypes.TimeToLiveSpecification{
			AttributeName: aws.String(TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil && !strings.Contains(err.Error(), "already enabled") {
		return fmt.Errorf("enable TTL on table %s: %w", table, err)
	}
	return nil
}

// Env returns the Drover variables, as KEY=VALUE pairs, that point the
// Drover programs at this stack through gocloud URLs. Combine them with
// Moto.Env (or the SDK variables of another endpoint).
func (s *Stack) Env() []string {
	status := "dynamodb://" + s.Table + "?partition_key=id"
	if s.allowScans {
		status += "&allow_scans=true"
	}
	return []string{
		"DROVER_TASKS_TOPIC=" + sqsURL(s.TasksQueueURL, ""),
		"DROVER_TASKS_SUBSCRIPTION=" + sqsURL(s.TasksQueueURL, "raw=true&nacklazy=true"),
		"DROVER_EVENTS_TOPIC=" + sqsURL(s.EventsQueueURL, ""),
		"DROVER_EVENTS_SUBSCRIPTION=" + sqsURL(s.EventsQueueURL, "raw=true&nacklazy=true"),
		"DROVER_DLQ_SUBSCRIPTION=" + sqsURL(s.TasksDLQURL, "raw=true"),
		"DROVER_BUCKET=s3://" + s.Bucket + "?use_path_style=true",
		"DROVER_STATUS=" + status,
	}
}

// Lookup returns the value of the Env variable key.
func (s *Stack) Lookup(key string) string {
	for _, kv := range s.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// sqsURL turns an SQS queue URL into gocloud's awssqs URL for it.
func sqsURL(queueURL, query string) string {
	u, err := url.Parse(queueURL)
	if err != nil {
		return ""
	}
	u.Scheme, u.RawQuery = "awssqs", query
	return u.String()
}

// Delete removes the stack's resources, the bucket's objects included.
// It goes on past errors and returns them all.
func (s *Stack) Delete(ctx context.Context) error {
	var errs []error
	sqsc := sqs.NewFromConfig(s.cfg)
	for _, u := range append([]string{s.TasksQueueURL, s.TasksDLQURL, s.EventsQueueURL, s.EventsDLQURL}, s.extra...) {
		if u == "" {
			continue
		}
		if _, err := sqsc.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)}); err != nil {
			errs = append(errs, fmt.Errorf("delete queue %s: %w", u, err))
		}
	}
	if err := deleteBucket(ctx, s3.NewFromConfig(s.cfg, func(o *s3.Options) { o.UsePathStyle = true }), s.Bucket); err != nil {
		errs = append(errs, err)
	}
	if _, err := dynamodb.NewFromConfig(s.cfg).DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(s.Table)}); err != nil {
		errs = append(errs, fmt.Errorf("delete table %s: %w", s.Table, err))
	}
	return errors.Join(errs...)
}

func deleteBucket(ctx context.Context, c *s3.Client, bucket string) error {
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list bucket %s: %w", bucket, err)
		}
		if len(page.Contents) == 0 {
			break
		}
		var ids []s3types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}); err != nil {
			return fmt.Errorf("empty bucket %s: %w", bucket, err)
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("delete bucket %s: %w", bucket, err)
	}
	return nil
}
