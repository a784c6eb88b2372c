output "name" {
  description = "Name of the work queue."
  value       = aws_sqs_queue.this.name
}

output "url" {
  description = "URL of the work queue."
  value       = aws_sqs_queue.this.url
}

output "arn" {
  description = "ARN of the work queue."
  value       = aws_sqs_queue.this.arn
}

output "dlq_name" {
  description = "Name of the dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_failed_name" {
  description = "Name of the queue that takes what the DLQ's consumer fails on; null unless dlq_consumed."
  value       = try(aws_sqs_queue.dlq_failed[0].name, null)
}
