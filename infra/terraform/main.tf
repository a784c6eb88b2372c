# Drover on AWS: queues, archive bucket, status table, the dispatch, runner
# and collect Lambda functions with their triggers, optional VM runners,
# least-privilege IAM and alarms.
#
# Task messages go from dispatch straight to the tasks SQS queue (gocloud
# awssqs:// topic); there is no SNS hop because SNS cannot delay one message,
# and retries/backoff and "delay" need per-message delays.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  bucket     = coalesce(var.bucket_name, "${var.name}-archive-${local.account_id}")
  table_name = "${var.name}-status"
  # `make lambda` writes build/lambda/<GOARCH>/<function>.zip.
  lambda_dir = coalesce(var.lambda_dir, "${path.module}/../../build/lambda/${var.lambda_architecture == "arm64" ? "arm64" : "amd64"}")

  functions = {
    dispatch = "${var.name}-dispatch"
    runner   = "${var.name}-runner"
    collect  = "${var.name}-collect"
  }

  # ARNs are spelled out from the names (the same ones the modules create) so
  # that every policy is fully known at plan time and can be checked there.
  # The task queues' ARNs are local.queue_arns and local.queue_dlq_arns
  # (queues.tf).
  sqs_arn_prefix = "arn:${local.partition}:sqs:${local.region}:${local.account_id}"
  arn = {
    events_queue = "${local.sqs_arn_prefix}:${var.name}-events"
    bucket       = "arn:${local.partition}:s3:::${local.bucket}"
    table        = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${local.table_name}"
  }
  arn_index = "${local.arn.table}/index/by_kind"
}

# ---------------------------------------------------------------- storage and queues

# The default task queue; the others (queues.tf) are module.queue.
module "tasks_queue" {
  source = "./modules/queues"

  name                       = local.queue_settings.default.name
  visibility_timeout_seconds = local.queue_settings.default.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  # Above task_max_attempts with a margin (see the variable); the swept
  # DLQ's own redrive uses max_receive_count.
  max_receive_count     = local.queue_settings.default.max_receive_count
  dlq_max_receive_count = var.max_receive_count
  dlq_consumed          = var.collect_sweeps_dlq
  kms_key_arn           = var.kms_key_arn
  redrive_allow_policy  = var.dlq_redrive_allow_policies
  partition             = local.partition
  region                = local.region
  account_id            = local.account_id
}

module "events_queue" {
  source = "./modules/queues"

  name                       = "${var.name}-events"
  visibility_timeout_seconds = var.events_visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  max_receive_count          = var.max_receive_count
  dlq_consumed               = false
  kms_key_arn                = var.kms_key_arn
  redrive_allow_policy       = var.dlq_redrive_allow_policies
  partition                  = local.partition
  region                     = local.region
  account_id                 = local.account_id
}

module "archive" {
  source = "./modules/archive"

  bucket        = local.bucket
  partition     = local.partition
  force_destroy = var.bucket_force_destroy
  tls_only      = var.bucket_tls_only
  kms_key_arn   = var.kms_key_arn
  versioning    = var.bucket_versioning
  access_logs   = var.bucket_access_logs
  expiration_days = {
    payloads = var.payloads_expiration_days
    results  = var.results_expiration_days
    logs     = var.logs_expiration_days
    poison   = var.poison_expiration_days
    # Kept for retry and redrive: as long as results, and as poison.
    retained    = var.results_expiration_days
    deadletters = var.poison_expiration_days
  }
}

module "status_table" {
  source = "./modules/status_table"

  name                   = local.table_name
  point_in_time_recovery = var.status_point_in_time_recovery
  deletion_protection    = var.status_deletion_protection
  kms_key_arn            = var.kms_key_arn
}

# ---------------------------------------------------------------- configuration (DROVER_*)

locals {
  tasks_host      = replace(module.tasks_queue.url, "/^https?:\\/\\//", "")
  tasks_dlq_host  = replace(module.tasks_queue.dlq_url, "/^https?:\\/\\//", "")
  events_host     = replace(module.events_queue.url, "/^https?:\\/\\//", "")
  subscription_qs = "?raw=true&nacklazy=true"

  drover_env = merge({
    DROVER_TASKS_TOPIC         = "awssqs://${local.tasks_host}"
    DROVER_TASKS_SUBSCRIPTION  = "awssqs://${local.tasks_host}${local.subscription_qs}"
    DROVER_EVENTS_TOPIC        = "awssqs://${local.events_host}"
    DROVER_EVENTS_SUBSCRIPTION = "awssqs://${local.events_host}${local.subscription_qs}"
    DROVER_DLQ_SUBSCRIPTION    = "awssqs://${local.tasks_dlq_host}${local.subscription_qs}"
    DROVER_BUCKET              = "s3://${module.archive.bucket}${var.bucket_url_query == "" ? "" : "?${var.bucket_url_query}"}"
    DROVER_STATUS              = "dynamodb://${module.status_table.name}?partition_key=id&allow_scans=true"
  }, local.drover_env_api_keys, local.drover_env_queues)

  # Each function gets only the variables it reads (those of drover_env:
  # DROVER_QUEUE_URLS and DROVER_DLQ_URLS only with queues beside default).
  env_keys = {
    dispatch = ["DROVER_TASKS_TOPIC", "DROVER_QUEUE_URLS", "DROVER_BUCKET", "DROVER_STATUS"]
    runner   = ["DROVER_TASKS_SUBSCRIPTION", "DROVER_QUEUE_URLS", "DROVER_EVENTS_TOPIC", "DROVER_BUCKET", "DROVER_STATUS"]
    # Collect enqueues workflow steps (a group's callback, a chain's next
    # step) once their predecessors are done: it needs the tasks topic.
    collect = ["DROVER_EVENTS_SUBSCRIPTION", "DROVER_DLQ_SUBSCRIPTION", "DROVER_DLQ_URLS", "DROVER_TASKS_TOPIC", "DROVER_QUEUE_URLS", "DROVER_BUCKET", "DROVER_STATUS"]
  }
  env = { for fn, keys in local.env_keys : fn => { for k in keys : k => local.drover_env[k] if contains(keys(local.drover_env), k) } }
}

# ---------------------------------------------------------------- least-privilege grants

locals {
  # With a customer managed key, every role that touches the queues, the
  # bucket or the table uses it (SQS and S3 data keys, DynamoDB on the
  # caller's behalf).
  kms_grants = var.kms_key_arn == null ? [] : [{
    sid       = "StackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }]

  grants = { for role, statements in local.role_grants : role => concat(statements, local.kms_grants, lookup(local.extra_grants, role, [])) }

  # Grants that come with options defined in their own files.
  extra_grants = {
    dispatch = local.dispatch_secret_grants # secrets.tf
  }

  role_grants = {
    dispatch = [
      {
        # GetQueueAttributes: /readyz checks that the tasks queue answers.
        sid       = "EnqueueTasks"
        actions   = ["sqs:GetQueueAttributes", "sqs:SendMessage"]
        resources = local.queue_arns
      },
      {
        sid       = "WritePayloads"
        actions   = ["s3:GetObject", "s3:PutObject"]
        resources = ["${local.arn.bucket}/payloads/*"]
      },
      {
        sid       = "ReadResults"
        actions   = ["s3:GetObject"]
        resources = ["${local.arn.bucket}/results/*"]
      },
      {
        # Retry (POST /v1/tasks/{id}/retry) reads the message the runner
        # kept for a failed or cancelled task; dead letters are listed,
        # read and, once redriven, deleted.
        sid       = "RetryAndRedrive"
        actions   = ["s3:GetObject"]
        resources = ["${local.arn.bucket}/retained/*", "${local.arn.bucket}/deadletters/*"]
      },
      {
        sid       = "DeleteRedrivenDeadLetters"
        actions   = ["s3:DeleteObject"]
        resources = ["${local.arn.bucket}/deadletters/*"]
      },
      {
        # S3 answers a GetObject of a missing key with 404 only to a caller
        # allowed s3:ListBucket on the bucket (else 403), and HeadBucket
        # (/readyz) is authorised as s3:ListBucket. Neither request carries
        # an s3:prefix, so a grant conditioned on s3:prefix covers neither:
        # the grant is on the bucket, without a condition. It lets the role
        # list key names (task ids), not read objects outside its prefixes.
        sid       = "ListBucketForNotFoundAndReadiness"
        actions   = ["s3:ListBucket"]
        resources = [local.arn.bucket]
      },
      {
        # DescribeTable: gocloud's docstore reads the key schema on open;
        # BatchGetItem: its Get; Scan: listing with allow_scans=true.
        sid = "StatusTable"
        # DeleteItem: a submission that could not be enqueued releases its
        # idempotency claim and rolls back its documents.
        actions   = ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem"]
        resources = [local.arn.table]
      },
      {
        sid       = "StatusIndex"
        actions   = ["dynamodb:Query", "dynamodb:Scan"]
        resources = [local.arn_index]
      },
    ]

    runner = [
      {
        # GetQueueAttributes: required by the Lambda event source mapping.
        sid       = "ConsumeTasks"
        actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        resources = local.queue_arns
      },
      {
        sid       = "PublishEvents"
        actions   = ["sqs:SendMessage"]
        resources = [local.arn.events_queue]
      },
      {
        sid       = "ReadPayloads"
        actions   = ["s3:GetObject"]
        resources = ["${local.arn.bucket}/payloads/*"]
      },
      {
        # retained/: the message of a task that ended failed or cancelled,
        # kept so that it can be retried.
        sid       = "WriteResultsAndLogs"
        actions   = ["s3:PutObject"]
        resources = ["${local.arn.bucket}/results/*", "${local.arn.bucket}/logs/*", "${local.arn.bucket}/retained/*"]
      },
      {
        # A missing payload reads as 404, not 403 (see dispatch's grant).
        sid       = "ListBucketForNotFound"
        actions   = ["s3:ListBucket"]
        resources = [local.arn.bucket]
      },
      {
        sid       = "ReadStatus"
        actions   = ["dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem"]
        resources = [local.arn.table]
      },
    ]

    collect = [
      {
        sid       = "ConsumeEventsAndDeadLetters"
        actions   = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        resources = concat([local.arn.events_queue], local.queue_dlq_arns)
      },
      {
        sid       = "WriteStatus"
        actions   = ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        resources = [local.arn.table]
      },
      {
        # deadletters/: the sweeper keeps each dead-lettered message for
        # redrive before it deletes it from the DLQ.
        sid       = "ArchivePoison"
        actions   = ["s3:PutObject"]
        resources = ["${local.arn.bucket}/poison/*", "${local.arn.bucket}/deadletters/*"]
      },
      {
        # Workflows: a released step (group callback, next chain step) is
        # enqueued by the collector.
        sid       = "EnqueueWorkflowSteps"
        actions   = ["sqs:SendMessage"]
        resources = local.queue_arns
      },
      {
        # A released step's input: a predecessor's archived result, the
        # step's own archived args, and the combined args written back
        # (payloads/<id>.input) when they are too large for the message.
        sid       = "WorkflowStepPayloads"
        actions   = ["s3:GetObject", "s3:PutObject"]
        resources = ["${local.arn.bucket}/payloads/*"]
      },
      {
        sid       = "WorkflowStepInput"
        actions   = ["s3:GetObject"]
        resources = ["${local.arn.bucket}/results/*"]
      },
    ]
  }
}

# ---------------------------------------------------------------- functions

module "dispatch" {
  source = "./modules/lambda_function"

  name                      = local.functions.dispatch
  description               = "Drover dispatch: HTTP API, enqueues tasks"
  zip_file                  = "${local.lambda_dir}/dispatch.zip"
  s3_bucket                 = var.lambda_s3_bucket
  s3_key                    = try(var.lambda_s3_keys["dispatch"], null)
  s3_object_version         = try(var.lambda_s3_object_versions["dispatch"], null)
  tracing_mode              = var.lambda_tracing_mode
  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary
  architectures             = [var.lambda_architecture]
  memory_size               = var.dispatch_memory_mb
  timeout                   = var.dispatch_timeout_seconds
  log_retention_days        = var.log_retention_days
  policy_statements         = local.grants.dispatch
  reserved_concurrency      = var.dispatch_reserved_concurrency
  # The keys' secret (secrets.tf), or the keys, or nothing.
  environment = merge(local.env.dispatch, local.dispatch_api_keys_env)
  partition   = local.partition
  region      = local.region
  account_id  = local.account_id
}

module "runner" {
  source = "./modules/lambda_function"

  name                      = local.functions.runner
  description               = "Drover runner: runs tasks from the tasks queue"
  zip_file                  = "${local.lambda_dir}/runner.zip"
  s3_bucket                 = var.lambda_s3_bucket
  s3_key                    = try(var.lambda_s3_keys["runner"], null)
  s3_object_version         = try(var.lambda_s3_object_versions["runner"], null)
  tracing_mode              = var.lambda_tracing_mode
  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary
  architectures             = [var.lambda_architecture]
  memory_size               = var.runner_memory_mb
  timeout                   = var.runner_timeout_seconds
  log_retention_days        = var.log_retention_days
  policy_statements         = local.grants.runner
  environment               = merge(local.env.runner, local.runner_function_queues)
  partition                 = local.partition
  region                    = local.region
  account_id                = local.account_id
}

module "collect" {
  source = "./modules/lambda_function"

  name                      = local.functions.collect
  description               = "Drover collect: applies runner events to task statuses"
  zip_file                  = "${local.lambda_dir}/collect.zip"
  s3_bucket                 = var.lambda_s3_bucket
  s3_key                    = try(var.lambda_s3_keys["collect"], null)
  s3_object_version         = try(var.lambda_s3_object_versions["collect"], null)
  tracing_mode              = var.lambda_tracing_mode
  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary
  architectures             = [var.lambda_architecture]
  memory_size               = var.collect_memory_mb
  timeout                   = var.collect_timeout_seconds
  log_retention_days        = var.log_retention_days
  policy_statements         = local.grants.collect
  environment               = local.env.collect
  partition                 = local.partition
  region                    = local.region
  account_id                = local.account_id
}

resource "aws_lambda_function_url" "dispatch" {
  function_name      = module.dispatch.function_name
  authorization_type = var.dispatch_auth_type
}

# API-key mode: a public URL. Since October 2025 a new function URL needs
# both lambda:InvokeFunctionUrl and lambda:InvokeFunction in the function's
# resource policy; with only the first it answers 403. AWS's own example
# narrows the second with the condition lambda:InvokedViaFunctionUrl, which
# aws_lambda_permission can express only from provider 6.29
# (invoked_via_function_url = true); on 5.x the statement has no condition,
# so anyone may also call Invoke directly. Dispatch then still sees only an
# HTTP request and checks its bearer key either way (see README.md).
resource "aws_lambda_permission" "dispatch_public_url" {
  count = var.dispatch_auth_type == "NONE" ? 1 : 0

  statement_id           = "PublicFunctionUrlApiKeysCheckedByDispatch"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = module.dispatch.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_lambda_permission" "dispatch_public_invoke" {
  count = var.dispatch_auth_type == "NONE" ? 1 : 0

  statement_id  = "PublicFunctionUrlInvokeApiKeysCheckedByDispatch"
  action        = "lambda:InvokeFunction"
  function_name = module.dispatch.function_name
  principal     = "*"
}

# ---------------------------------------------------------------- triggers

resource "aws_lambda_event_source_mapping" "runner_tasks" {
  event_source_arn                   = module.tasks_queue.arn
  function_name                      = module.runner.function_arn
  enabled                            = var.runner_trigger_enabled
  batch_size                         = var.runner_batch_size
  maximum_batching_window_in_seconds = var.runner_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.runner_maximum_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "collect_events" {
  event_source_arn        = module.events_queue.arn
  function_name           = module.collect.function_arn
  enabled                 = var.collect_triggers_enabled
  batch_size              = var.collect_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.collect_maximum_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "collect_tasks_dlq" {
  count = var.collect_sweeps_dlq ? 1 : 0

  event_source_arn        = module.tasks_queue.dlq_arn
  function_name           = module.collect.function_arn
  enabled                 = var.collect_triggers_enabled
  batch_size              = var.collect_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = 2
  }
}

# ---------------------------------------------------------------- VM runners (optional)

module "vm_runner" {
  source = "./modules/vm_runner"
  count  = var.vm_runner_enabled ? 1 : 0

  name                      = "${var.name}-vm-runner"
  ami_id                    = var.vm_ami_id
  instance_type             = var.vm_instance_type
  subnet_ids                = var.vm_subnet_ids
  min_size                  = var.vm_min_size
  max_size                  = var.vm_max_size
  backlog_per_instance      = var.vm_backlog_per_instance
  tasks_queue_name          = module.tasks_queue.name
  binary_bucket             = coalesce(var.vm_binary_bucket, local.bucket)
  binary_key                = var.vm_binary_key
  drain_seconds             = var.vm_drain_seconds
  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary
  environment               = local.env.runner
  policy_statements         = local.grants.runner
  partition                 = local.partition
  region                    = local.region
  account_id                = local.account_id
  tags                      = local.tags
}

# ---------------------------------------------------------------- alarms

# The topic alarms notify unless alarm_topic_enabled = false; subscribe to
# it (alarm_email_addresses, or a chat/pager integration) to be told.
resource "aws_sns_topic" "alarms" {
  count = var.alarm_topic_enabled ? 1 : 0

  name              = "${var.name}-alarms"
  kms_master_key_id = var.alarm_topic_kms_key_id
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = var.alarm_topic_enabled ? toset(var.alarm_email_addresses) : toset([])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  alarm_actions = concat(aws_sns_topic.alarms[*].arn, var.alarm_actions)

  # Each task queue's oldest-message threshold is in local.queue_settings
  # (queues.tf). An event is applied in seconds; one that fails comes back
  # after the events visibility timeout.
  events_oldest_alarm = coalesce(var.events_oldest_message_alarm_seconds, 2 * var.events_visibility_timeout_seconds + 300)
}

module "alarms" {
  source = "./modules/alarms"

  # The keys of the default queue's alarms are those from before queues
  # existed; another queue q's are "tasks:<q>" and "tasks:<q>:unswept"
  # (no queue name has a colon, so no two queues' keys meet).
  dead_letter_queues = merge(
    {
      tasks  = module.tasks_queue.dlq_name
      events = module.events_queue.dlq_name
    },
    var.collect_sweeps_dlq ? { tasks_unswept = module.tasks_queue.dlq_failed_name } : {},
    { for q, m in module.queue : "tasks:${q}" => m.dlq_name },
    var.collect_sweeps_dlq ? { for q, m in module.queue : "tasks:${q}:unswept" => m.dlq_failed_name } : {},
  )
  work_queues = merge(
    {
      tasks  = { name = module.tasks_queue.name, oldest_message_age_seconds = local.queue_settings.default.oldest_message_alarm_seconds }
      events = { name = module.events_queue.name, oldest_message_age_seconds = local.events_oldest_alarm }
    },
    { for q, m in module.queue : "tasks:${q}" => { name = m.name, oldest_message_age_seconds = local.queue_settings[q].oldest_message_alarm_seconds } },
  )
  functions     = local.functions
  function_url  = module.dispatch.function_name
  table         = module.status_table.name
  alarm_actions = local.alarm_actions
}
