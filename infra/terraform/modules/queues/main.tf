# A work queue and its dead-letter queue, joined by a redrive policy.
#
# Messages that fail max_receive_count times move to the DLQ, which keeps them
# for dlq_message_retention_seconds (default: the SQS maximum, 14 days), and
# accepts dead letters from this queue only (redrive allow policy). When the
# DLQ itself is consumed (dlq_consumed: the collector sweeps the tasks DLQ),
# what its consumer fails on max_receive_count times moves on to
# "<name>-dlq-failed" instead of expiring unseen.
#
# Encrypted with SQS-managed keys, or with kms_key_arn.

locals {
  arn = "arn:${var.partition}:sqs:${var.region}:${var.account_id}:${var.name}"
}

resource "aws_sqs_queue" "dlq_failed" {
  count = var.dlq_consumed ? 1 : 0

  name                              = "${var.name}-dlq-failed"
  message_retention_seconds         = var.dlq_message_retention_seconds
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  redrive_allow_policy = var.redrive_allow_policy ? jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = ["${local.arn}-dlq"]
  }) : null
  tags = var.tags
}

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name}-dlq"
  message_retention_seconds         = var.dlq_message_retention_seconds
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  receive_wait_time_seconds         = var.receive_wait_time_seconds
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  redrive_allow_policy = var.redrive_allow_policy ? jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [local.arn]
  }) : null
  redrive_policy = var.dlq_consumed ? jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq_failed[0].arn
    maxReceiveCount     = coalesce(var.dlq_max_receive_count, var.max_receive_count)
  }) : null
  tags = var.tags
}

resource "aws_sqs_queue" "this" {
  name                              = var.name
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  receive_wait_time_seconds         = var.receive_wait_time_seconds
  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
  # The DLQ's ARN spelled from its name (as the IAM policies are), so
  # that the redrive policy is known, and checked, at plan time.
  redrive_policy = jsonencode({
    deadLetterTargetArn = "${local.arn}-dlq"
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags

  depends_on = [aws_sqs_queue.dlq]
}
