# One Lambda function with its own execution role, its own log group, and an
# inline policy holding exactly the statements the caller grants plus write
# access to that log group. Nothing is shared between functions.

locals {
  from_s3        = var.s3_bucket != null
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
    # X-Ray's write actions take no resource ARN: "*" is the only resource
    # they accept (AWS's own AWSXRayDaemonWriteAccess does the same).
    var.tracing_mode == null ? [] : [{
      sid       = "XRayWrite"
      actions   = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
      resources = ["*"]
      condition = {}
    }],
  )
}

module "role" {
  source               = "../role"
  name                 = var.name
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  description          = "Execution role of the ${var.name} Lambda function"
  service              = "lambda.amazonaws.com"
  statements           = local.statements
  tags                 = var.tags
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
  function_name = var.name
  description   = var.description
  role          = module.role.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = var.architectures
  memory_size   = var.memory_size
  timeout       = var.timeout

  # The package: a local zip, or an object already in S3 (plans in CI need
  # no build then; a new object version or key is a new deployment).
  filename          = local.from_s3 ? null : var.zip_file
  source_code_hash  = local.from_s3 ? null : (fileexists(var.zip_file) ? filebase64sha256(var.zip_file) : null)
  s3_bucket         = local.from_s3 ? var.s3_bucket : null
  s3_key            = local.from_s3 ? var.s3_key : null
  s3_object_version = local.from_s3 ? var.s3_object_version : null

  reserved_concurrent_executions = var.reserved_concurrency

  dynamic "environment" {
    for_each = length(var.environment) == 0 ? [] : [1]
    content {
      variables = var.environment
    }
  }

  tags = var.tags

  dynamic "tracing_config" {
    for_each = var.tracing_mode == null ? [] : [var.tracing_mode]
    content {
      mode = tracing_config.value
    }
  }

  lifecycle {
    precondition {
      condition     = local.from_s3 || fileexists(var.zip_file)
      error_message = "Lambda package ${var.zip_file} does not exist: run `make lambda` (or set lambda_dir to where dispatch.zip, collect.zip and runner.zip are)."
    }
  }

  depends_on = [module.role, aws_cloudwatch_log_group.this]
}
