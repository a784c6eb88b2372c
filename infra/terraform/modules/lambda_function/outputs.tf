output "function_name" { value = aws_lambda_function.this.function_name }
output "function_arn" { value = aws_lambda_function.this.arn }
output "role_name" { value = module.role.name }
output "role_arn" { value = module.role.arn }
output "log_group_name" { value = aws_cloudwatch_log_group.this.name }
output "log_group_arn" { value = local.log_group_arn }
