output "dispatch_url" {
  description = "Function URL of the dispatch API (callers sign with SigV4)."
  value       = module.drover.dispatch_url
}

output "arns" {
  description = "ARNs of the stack's queues, bucket, table, functions, roles and alarm topic."
  value       = module.drover.arns
}
