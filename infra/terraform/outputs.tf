output "dispatch_url" {
  description = "Function URL of the dispatch API (SigV4-signed requests unless dispatch_auth_type = NONE)."
  value       = aws_lambda_function_url.dispatch.function_url
}

output "tasks_queue_url" {
  description = "URL of the tasks queue."
  value       = module.tasks_queue.url
}

output "tasks_dlq_url" {
  description = "URL of the tasks dead-letter queue (swept by collect into failed statuses)."
  value       = module.tasks_queue.dlq_url
}

output "events_queue_url" {
  description = "URL of the events queue (runners to collect)."
  value       = module.events_queue.url
}

output "events_dlq_url" {
  description = "URL of the events dead-letter queue."
  value       = module.events_queue.dlq_url
}

output "bucket" {
  description = "Name of the archive bucket."
  value       = module.archive.bucket
}

output "status_table" {
  description = "Name of the DynamoDB status table."
  value       = module.status_table.name
}

output "arns" {
  description = "ARNs of what the stack created, for policies and wiring elsewhere."
  value = {
    tasks_queue     = module.tasks_queue.arn
    tasks_dlq       = module.tasks_queue.dlq_arn
    events_queue    = module.events_queue.arn
    events_dlq      = module.events_queue.dlq_arn
    bucket          = module.archive.arn
    status_table    = module.status_table.arn
    functions       = { dispatch = module.dispatch.function_arn, runner = module.runner.function_arn, collect = module.collect.function_arn }
    roles           = { dispatch = module.dispatch.role_arn, runner = module.runner.role_arn, collect = module.collect.role_arn }
    alarm_topic     = try(aws_sns_topic.alarms[0].arn, null)
    vm_runner_group = try(module.vm_runner[0].autoscaling_group_arn, null)
    vm_runner_role  = try(module.vm_runner[0].role_arn, null)
  }
}

output "functions" {
  description = "Lambda function names."
  value = {
    dispatch = module.dispatch.function_name
    runner   = module.runner.function_name
    collect  = module.collect.function_name
  }
}

output "vm_runner_autoscaling_group" {
  description = "Name of the VM runners' autoscaling group; null without VM runners."
  value       = try(module.vm_runner[0].autoscaling_group_name, null)
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies; null with alarm_topic_enabled = false."
  value       = try(aws_sns_topic.alarms[0].arn, null)
}

output "alarms" {
  description = "Names of every CloudWatch alarm."
  value       = module.alarms.alarm_names
}

output "drover_env" {
  description = "DROVER_* variables for VM-mode processes (drover dispatch|runner|collect): never API keys, only the ARN of their secret (DROVER_API_KEYS_SECRET) when dispatch_api_keys_secret_arn is set."
  value       = local.drover_env
}

output "drover_env_exports" {
  description = "drover_env as shell export lines: source it before drover dispatch|runner|collect."
  value       = join("", [for k in sort(keys(local.drover_env)) : "export ${k}='${local.drover_env[k]}'\n"])
}
