#!/bin/bash
# Creates Drover's AWS resources, the same as awstest.CreateStack:
#   SQS  PREFIX-tasks, PREFIX-events, each with a dead-letter queue
#        PREFIX-tasks-dlq / PREFIX-events-dlq and a redrive policy to it;
#   S3   PREFIX-archive;
#   DynamoDB PREFIX-status: hash key id (S), GSI by_kind (kind S, id S,
#        projection ALL), on-demand, TTL on expires_at.
# Then prints the DROVER_* variables as export lines.
#
# LocalStack runs it from /etc/localstack/init/ready.d with awslocal.
# Elsewhere set AWS to the CLI command to use, e.g.
#   AWS="aws --endpoint-url http://127.0.0.1:5000" ./10-drover.sh
# Settings: DROVER_PREFIX (drover), DROVER_MAX_RECEIVE_COUNT (30),
# DROVER_VISIBILITY_TIMEOUT seconds (30).
set -euo pipefail

AWS=${AWS:-awslocal}
prefix=${DROVER_PREFIX:-drover}
max_receives=${DROVER_MAX_RECEIVE_COUNT:-30}
visibility=${DROVER_VISIBILITY_TIMEOUT:-30}

log() { echo "10-drover: $*" >&2; }

queue_pair() { # name -> prints the queue's URL
	local name=$1 dlq_url dlq_arn
	dlq_url=$($AWS sqs create-queue --queue-name "$name-dlq" \
		--attributes MessageRetentionPeriod=1209600 --query QueueUrl --output text)
	dlq_arn=$($AWS sqs get-queue-attributes --queue-url "$dlq_url" \
		--attribute-names QueueArn --query Attributes.QueueArn --output text)
	local redrive="{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"$max_receives\\\"}"
	$AWS sqs create-queue --queue-name "$name" \
		--attributes "{\"VisibilityTimeout\":\"$visibility\",\"RedrivePolicy\":\"$redrive\"}" \
		--query QueueUrl --output text
}

log "queues"
tasks_url=$(queue_pair "$prefix-tasks")
events_url=$(queue_pair "$prefix-events")
tasks_dlq_url=$($AWS sqs get-queue-url --queue-name "$prefix-tasks-dlq" --query QueueUrl --output text)

log "bucket"
$AWS s3api head-bucket --bucket "$prefix-archive" >/dev/null 2>&1 ||
	$AWS s3api create-bucket --bucket "$prefix-archive" >/dev/null

log "table"
if ! $AWS dynamodb describe-table --table-name "$prefix-status" >/dev/null 2>&1; then
	$AWS dynamodb create-table --table-name "$prefix-status" \
		--billing-mode PAY_PER_REQUEST \
		--attribute-definitions AttributeName=id,AttributeType=S AttributeName=kind,AttributeType=S \
		--key-schema AttributeName=id,KeyType=HASH \
		--global-secondary-indexes '[{"IndexName":"by_kind","KeySchema":[{"AttributeName":"kind","KeyType":"HASH"},{"AttributeName":"id","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}}]' \
		>/dev/null
	$AWS dynamodb wait table-exists --table-name "$prefix-status"
	$AWS dynamodb update-time-to-live --table-name "$prefix-status" \
		--time-to-live-specification Enabled=true,AttributeName=expires_at >/dev/null
fi

awssqs() { echo "awssqs://${1#*://}"; }
cat <<EOT
export DROVER_TASKS_TOPIC='$(awssqs "$tasks_url")'
export DROVER_TASKS_SUBSCRIPTION='$(awssqs "$tasks_url")?raw=true&nacklazy=true'
export DROVER_EVENTS_TOPIC='$(awssqs "$events_url")'
export DROVER_EVENTS_SUBSCRIPTION='$(awssqs "$events_url")?raw=true&nacklazy=true'
export DROVER_DLQ_SUBSCRIPTION='$(awssqs "$tasks_dlq_url")?raw=true'
export DROVER_BUCKET='s3://$prefix-archive?use_path_style=true'
export DROVER_STATUS='dynamodb://$prefix-status?partition_key=id'
EOT
log "ready"
