output "dispatch_url" {
  description = "Function URL of the dispatch API (SigV4-signed requests unless dispatch_auth_type = NONE)."
  value       = aws_lambda_function_url.dispatch.function_url
}

output "tasks_queue_url" { value = module.tasks_queue.url }
output "tasks_dlq_url" { value = module.tasks_queue.dlq_url }
output "events_queue_url" { value = module.events_queue.url }
output "events_dlq_url" { value = module.events_queue.dlq_url }
output "bucket" { value = module.archive.bucket }
output "status_table" { value = module.status_table.name }

output "functions" {
  description = "Lambda function names."
  value = {
    dispatch = module.dispatch.function_name
    runner   = module.runner.function_name
    collect  = module.collect.function_name
  }
}

output "vm_runner_autoscaling_group" {
  value = try(module.vm_runner[0].autoscaling_group_name, null)
}

output "alarms" {
  value = module.alarms.alarm_names
}

output "drover_env" {
  description = "DROVER_* variables for VM-mode processes (drover dispatch|runner|collect); API keys are not included."
  value       = local.drover_env
}

output "drover_env_exports" {
  description = "drover_env as shell export lines: source it before drover dispatch|runner|collect."
  value       = join("", [for k in sort(keys(local.drover_env)) : "export ${k}='${local.drover_env[k]}'\n"])
}
