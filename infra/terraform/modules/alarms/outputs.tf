output "alarm_names" {
  description = "Names of every alarm."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.dead_letters : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.oldest_message_age : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.lambda : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.table_throttles : a.alarm_name],
  )
}

output "alarm_arns" {
  description = "ARNs of every alarm."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.dead_letters : a.arn],
    [for a in aws_cloudwatch_metric_alarm.oldest_message_age : a.arn],
    [for a in aws_cloudwatch_metric_alarm.lambda : a.arn],
    [for a in aws_cloudwatch_metric_alarm.table_throttles : a.arn],
  )
}
