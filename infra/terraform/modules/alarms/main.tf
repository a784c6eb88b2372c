# CloudWatch alarms, each notifying alarm_actions on alarm and on recovery:
#
# - dead letters: anything sent to, received from or waiting in a
#   dead-letter queue. The tasks DLQ is emptied by the sweeper within
#   seconds, and a message the sweeper fails on is in flight, not visible,
#   for the queue's visibility timeout, so "messages visible" alone misses
#   both; a message SQS moves there by redrive is not counted in
#   NumberOfMessagesSent (only a SendMessage is), so that alone misses the
#   usual case. The alarm adds all four.
# - oldest message: a work queue whose oldest message is older than its
#   threshold (consumers stuck or too few). SQS counts a message being
#   worked on, so the threshold must exceed the longest normal life of a
#   task message (the caller computes it).
# - Lambda errors and throttles, function URL 5xx, DynamoDB throttles.

locals {
  period = 300
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = var.dead_letter_queues

  alarm_name          = "${each.value}-dead-letters"
  alarm_description   = "Messages sent to, received from or left in dead-letter queue ${each.value}: tasks or events that exhausted redelivery."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "dead_letters"
    label       = "Dead letters sent, received, visible or in flight"
    expression  = "FILL(sent, 0) + FILL(received, 0) + FILL(visible, 0) + FILL(in_flight, 0)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = {
      sent      = { metric = "NumberOfMessagesSent", stat = "Sum" }
      received  = { metric = "NumberOfMessagesReceived", stat = "Sum" }
      visible   = { metric = "ApproximateNumberOfMessagesVisible", stat = "Maximum" }
      in_flight = { metric = "ApproximateNumberOfMessagesNotVisible", stat = "Maximum" }
    }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/SQS"
        metric_name = metric_query.value.metric
        dimensions  = { QueueName = each.value }
        stat        = metric_query.value.stat
        period      = local.period
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "oldest_message_age" {
  for_each = var.work_queues

  alarm_name          = "${each.value.name}-oldest-message-age"
  alarm_description   = "Oldest message in ${each.value.name} older than ${each.value.oldest_message_age_seconds}s, longer than a task message normally lives: consumers stuck or too few."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = local.period
  evaluation_periods  = var.evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.oldest_message_age_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

locals {
  lambda_alarms = merge(
    { for k, fn in var.functions : "${k}-errors" => { function = fn, metric = "Errors", what = "invocations that failed (crash, timeout)" } },
    { for k, fn in var.functions : "${k}-throttles" => { function = fn, metric = "Throttles", what = "throttled invocations" } },
    var.function_url == null ? {} : { "url-5xx" = { function = var.function_url, metric = "Url5xxCount", what = "function URL requests answered 5xx" } },
  )
}

resource "aws_cloudwatch_metric_alarm" "lambda" {
  for_each = local.lambda_alarms

  alarm_name          = "${each.value.function}-${lower(each.value.metric)}"
  alarm_description   = "${each.value.function}: ${each.value.what}."
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = local.period
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "table_throttles" {
  count = var.table == null ? 0 : 1

  alarm_name          = "${var.table}-throttles"
  alarm_description   = "Throttled reads or writes on DynamoDB table ${var.table}."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "throttles"
    label       = "Throttled reads and writes"
    expression  = "FILL(reads, 0) + FILL(writes, 0)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { reads = "ReadThrottleEvents", writes = "WriteThrottleEvents" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/DynamoDB"
        metric_name = metric_query.value
        dimensions  = { TableName = var.table }
        stat        = "Sum"
        period      = local.period
      }
    }
  }
}
