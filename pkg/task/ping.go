package task

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Ping checks that the topic's queue answers where the driver allows a
// check without sending (SQS: GetQueueAttributes); elsewhere it reports
// success.
func (t *Topic) Ping(ctx context.Context) error {
	var client *sqs.Client
	if !t.topic.As(&client) {
		return nil
	}
	qURL, ok := SQSQueueURL(t.rawURL)
	if !ok {
		return nil
	}
	_, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(qURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("queue %s: %w", t.url, err)
	}
	return nil
}
