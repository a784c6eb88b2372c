# One Lambda function with its own execution role, its own log group, and an
# inline policy holding exactly the statements the caller grants plus write
# access to that log group. Nothing is shared between functions.

locals {
  log_group_name = "/aws/lambda/${var.name}"
  log_group_arn  = "arn:${var.partition}:logs:${var.region}:${var.account_id}:log-group:${local.log_group_name}"

  statements = concat(
    [{
      sid       = "OwnLogGroup"
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      resources = ["${local.log_group_arn}:*"]
      condition = {}
    }],
    var.policy_statements,
  )
}

module "role" {
  source      = "../role"
  name        = var.name
  description = "Execution role of the ${var.name} Lambda function"
  service     = "lambda.amazonaws.com"
  statements  = local.statements
  tags        = var.tags
}

# Where the role and its policy lived before they were a module.
moved {
  from = aws_iam_role.this
  to   = module.role.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.this
  to   = module.role.aws_iam_role_policy.this
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  function_name    = var.name
  description      = var.description
  role             = module.role.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = var.architectures
  filename         = var.zip_file
  source_code_hash = fileexists(var.zip_file) ? filebase64sha256(var.zip_file) : null
  memory_size      = var.memory_size
  timeout          = var.timeout

  reserved_concurrent_executions = var.reserved_concurrency

  dynamic "environment" {
    for_each = length(var.environment) == 0 ? [] : [1]
    content {
      variables = var.environment
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = fileexists(var.zip_file)
      error_message = "Lambda package ${var.zip_file} does not exist: run `make lambda` (or set lambda_dir to where dispatch.zip, collect.zip and runner.zip are)."
    }
  }

  depends_on = [module.role, aws_cloudwatch_log_group.this]
}
