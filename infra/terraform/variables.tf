# ---------------------------------------------------------------- provider

variable "aws_region" {
  description = "Region to deploy to; null to take it from AWS_REGION / the AWS profile."
  type        = string
  default     = null
}

variable "aws_endpoint_url" {
  description = "Single endpoint for every AWS service (LocalStack, moto_server), e.g. http://127.0.0.1:4566. null for real AWS."
  type        = string
  default     = null
  validation {
    condition     = var.aws_endpoint_url == null || can(regex("^https?://[^/]+/?$", var.aws_endpoint_url))
    error_message = "aws_endpoint_url must be a base URL such as http://127.0.0.1:4566, or null for real AWS."
  }
}

# ---------------------------------------------------------------- IAM governance

variable "role_path" {
  description = "IAM path of every role (and the VM instance profile), e.g. /drover/."
  type        = string
  default     = "/"
  validation {
    condition     = can(regex("^/([A-Za-z0-9+=,.@_-]+/)*$", var.role_path))
    error_message = "role_path must start and end with / (e.g. /drover/)."
  }
}

variable "role_permissions_boundary" {
  description = "ARN of a managed policy set as the permissions boundary of every role; null for none (organisations that require one set it here)."
  type        = string
  default     = null
  validation {
    condition     = var.role_permissions_boundary == null || can(regex("^arn:[a-z-]+:iam::[0-9]{12}:policy/", coalesce(var.role_permissions_boundary, "x")))
    error_message = "role_permissions_boundary must be the ARN of a managed policy (arn:aws:iam::<account>:policy/...)."
  }
}

# ---------------------------------------------------------------- naming

variable "name" {
  description = "Prefix of every resource name (queues, bucket, table, functions, roles)."
  type        = string
  default     = "drover"
  validation {
    # 32 keeps "<name>-archive-<12-digit account>" within S3's 63 characters
    # and "<name>-dispatch" etc. within Lambda's and IAM's 64.
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2-32 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-' (it is used in S3 bucket, SQS, DynamoDB, Lambda and IAM names)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- queues

variable "max_receive_count" {
  description = "Receives of one message before SQS moves it to its dead-letter queue, for the events queue and the swept tasks DLQ (the tasks queue has tasks_max_receive_count)."
  type        = number
  default     = 30
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number from 1 to 1000."
  }
}

variable "tasks_max_receive_count" {
  description = "Receives of one task message before SQS moves it to the tasks DLQ. Every attempt is a receive (a retry is the same message received again), and so is every delivery that starts nothing (a duplicate, a release on drain or shutdown, a runner that died before recording the start): it must exceed task_max_attempts with a margin of at least 10 receives or 50% of it, whichever is more. The default, 150, covers the most attempts a task may ask for (100) with 50 to spare."
  type        = number
  default     = 150
  validation {
    condition     = var.tasks_max_receive_count >= 1 && var.tasks_max_receive_count <= 1000 && floor(var.tasks_max_receive_count) == var.tasks_max_receive_count
    error_message = "tasks_max_receive_count must be a whole number from 1 to 1000."
  }
  validation {
    condition     = var.tasks_max_receive_count >= var.task_max_attempts + max(10, ceil(var.task_max_attempts / 2))
    error_message = "tasks_max_receive_count (${var.tasks_max_receive_count}) must be at least task_max_attempts (${var.task_max_attempts}) + ${max(10, ceil(var.task_max_attempts / 2))}: every attempt is a receive, and deliveries that start nothing are too; a lower count dead-letters tasks that still have attempts left. Raise tasks_max_receive_count to ${var.task_max_attempts + max(10, ceil(var.task_max_attempts / 2))} or more, or lower task_max_attempts."
  }
}

variable "dlq_redrive_allow_policies" {
  description = "Give each dead-letter queue a redrive allow policy naming its source queue, so that no other queue can dead-letter into it. moto_server cannot apply one (its create never settles): env/local.tfvars turns it off."
  type        = bool
  default     = true
}

variable "message_retention_seconds" {
  description = "How long the tasks and events queues keep an unconsumed message (dead-letter queues keep 14 days)."
  type        = number
  default     = 345600
  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be from 60 to 1209600 (14 days)."
  }
}

variable "tasks_visibility_timeout_seconds" {
  description = "Visibility timeout of the tasks queue (and its DLQ). AWS guidance for Lambda SQS triggers: at least 6 x runner_timeout_seconds."
  type        = number
  default     = 1800
  validation {
    condition     = var.tasks_visibility_timeout_seconds >= 0 && var.tasks_visibility_timeout_seconds <= 43200 && floor(var.tasks_visibility_timeout_seconds) == var.tasks_visibility_timeout_seconds
    error_message = "tasks_visibility_timeout_seconds must be a whole number from 0 to 43200 (SQS maximum, 12 h)."
  }
  validation {
    condition     = var.tasks_visibility_timeout_seconds >= 6 * var.runner_timeout_seconds
    error_message = "tasks_visibility_timeout_seconds (${var.tasks_visibility_timeout_seconds}) must be at least 6 x runner_timeout_seconds (${var.runner_timeout_seconds}) = ${6 * var.runner_timeout_seconds}, AWS's guidance for a Lambda function triggered by SQS: raise tasks_visibility_timeout_seconds to ${6 * var.runner_timeout_seconds} or more, or lower runner_timeout_seconds to ${floor(var.tasks_visibility_timeout_seconds / 6)} or less."
  }
}

variable "events_visibility_timeout_seconds" {
  description = "Visibility timeout of the events queue (and its DLQ): at least 6 x collect_timeout_seconds."
  type        = number
  default     = 180
  validation {
    condition     = var.events_visibility_timeout_seconds >= 0 && var.events_visibility_timeout_seconds <= 43200 && floor(var.events_visibility_timeout_seconds) == var.events_visibility_timeout_seconds
    error_message = "events_visibility_timeout_seconds must be a whole number from 0 to 43200 (SQS maximum, 12 h)."
  }
  validation {
    condition     = var.events_visibility_timeout_seconds >= 6 * var.collect_timeout_seconds
    error_message = "events_visibility_timeout_seconds (${var.events_visibility_timeout_seconds}) must be at least 6 x collect_timeout_seconds (${var.collect_timeout_seconds}) = ${6 * var.collect_timeout_seconds}, AWS's guidance for a Lambda function triggered by SQS: raise events_visibility_timeout_seconds to ${6 * var.collect_timeout_seconds} or more, or lower collect_timeout_seconds to ${floor(var.events_visibility_timeout_seconds / 6)} or less."
  }
}

# ---------------------------------------------------------------- archive bucket

variable "bucket_name" {
  description = "Archive bucket name; null for \"<name>-archive-<account id>\"."
  type        = string
  default     = null
  validation {
    condition     = var.bucket_name == null || (can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.bucket_name, "x"))) && !strcontains(coalesce(var.bucket_name, "x"), ".."))
    error_message = "bucket_name must be 3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit."
  }
}

variable "bucket_force_destroy" {
  description = "Let `terraform destroy` delete the archive bucket with its objects. Leave false in production; true for throwaway stacks."
  type        = bool
  default     = false
}

variable "bucket_url_query" {
  description = "Extra query for DROVER_BUCKET, e.g. \"use_path_style=true\" for an emulator."
  type        = string
  default     = ""
}

variable "payloads_expiration_days" {
  description = "Days before objects under payloads/ expire."
  type        = number
  default     = 30
  validation {
    condition     = var.payloads_expiration_days >= 1 && floor(var.payloads_expiration_days) == var.payloads_expiration_days
    error_message = "payloads_expiration_days must be a whole number, at least 1."
  }
}

variable "results_expiration_days" {
  description = "Days before objects under results/ expire."
  type        = number
  default     = 30
  validation {
    condition     = var.results_expiration_days >= 1 && floor(var.results_expiration_days) == var.results_expiration_days
    error_message = "results_expiration_days must be a whole number, at least 1."
  }
}

variable "logs_expiration_days" {
  description = "Days before objects under logs/ expire."
  type        = number
  default     = 14
  validation {
    condition     = var.logs_expiration_days >= 1 && floor(var.logs_expiration_days) == var.logs_expiration_days
    error_message = "logs_expiration_days must be a whole number, at least 1."
  }
}

variable "poison_expiration_days" {
  description = "Days before objects under poison/ (undecodable or dead-lettered messages) expire."
  type        = number
  default     = 90
  validation {
    condition     = var.poison_expiration_days >= 1 && floor(var.poison_expiration_days) == var.poison_expiration_days
    error_message = "poison_expiration_days must be a whole number, at least 1."
  }
}

variable "bucket_tls_only" {
  description = "Deny every request to the archive bucket not made over TLS (aws:SecureTransport). Only an emulator reached over plain HTTP needs false (env/local.tfvars)."
  type        = bool
  default     = true
}

variable "bucket_versioning" {
  description = "Keep versions of the archive's objects (replaced and deleted ones expire after 7 days)."
  type        = bool
  default     = false
}

variable "bucket_access_logs" {
  description = "S3 server access logs of the archive bucket: { bucket, prefix } of an existing log bucket; null for none."
  type = object({
    bucket = string
    prefix = string
  })
  default = null
}

# ---------------------------------------------------------------- encryption

variable "kms_key_arn" {
  description = "Customer managed KMS key for the queues, the archive bucket and the status table; null for the AWS-managed defaults (SQS-managed, SSE-S3, AWS-owned), which cost nothing. Its key policy must let the stack's roles use it."
  type        = string
  default     = null
  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/", coalesce(var.kms_key_arn, "x")))
    error_message = "kms_key_arn must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>): an alias cannot be granted in IAM."
  }
}

# ---------------------------------------------------------------- status table

variable "status_point_in_time_recovery" {
  description = "DynamoDB point-in-time recovery on the status table (billed per GB-month)."
  type        = bool
  default     = true
}

variable "status_deletion_protection" {
  description = "Protect the status table from deletion (destroy then fails until it is turned off)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------- Lambda functions

variable "lambda_dir" {
  description = "Directory holding dispatch.zip, collect.zip and runner.zip (from `make lambda`); null for build/lambda/<arm64|amd64> at the repository root, after lambda_architecture."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Architecture the zips were built for: arm64 or x86_64."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "lambda_s3_bucket" {
  description = "Bucket holding the Lambda packages (same region), e.g. where CI uploads them; null to deploy the local zips in lambda_dir. With it, plans need no build."
  type        = string
  default     = null
}

variable "lambda_s3_keys" {
  description = "Keys of the packages in lambda_s3_bucket, by function: { dispatch = \"...\", runner = \"...\", collect = \"...\" }."
  type        = map(string)
  default     = {}
  validation {
    condition     = length(var.lambda_s3_keys) == 0 || (length(setsubtract(["dispatch", "runner", "collect"], keys(var.lambda_s3_keys))) == 0 && length(setsubtract(keys(var.lambda_s3_keys), ["dispatch", "runner", "collect"])) == 0)
    error_message = "lambda_s3_keys needs exactly the keys dispatch, runner and collect."
  }
  validation {
    condition     = (var.lambda_s3_bucket == null) == (length(var.lambda_s3_keys) == 0)
    error_message = "lambda_s3_bucket and lambda_s3_keys go together: set both (packages from S3) or neither (local zips)."
  }
}

variable "lambda_s3_object_versions" {
  description = "Object versions of the packages in lambda_s3_bucket, by function (a versioned bucket); missing ones deploy the latest."
  type        = map(string)
  default     = {}
}

variable "lambda_tracing_mode" {
  description = "X-Ray tracing of the three functions: Active or PassThrough; null for none. Active adds xray:PutTraceSegments and xray:PutTelemetryRecords (resource \"*\", the only one X-Ray accepts) to each role."
  type        = string
  default     = null
  validation {
    condition     = var.lambda_tracing_mode == null || contains(["Active", "PassThrough"], coalesce(var.lambda_tracing_mode, "Active"))
    error_message = "lambda_tracing_mode must be Active, PassThrough or null."
  }
}

variable "dispatch_reserved_concurrency" {
  description = "Concurrent executions reserved for (and capping) dispatch; -1 for none. Caps what a burst of API calls can cost and keeps capacity for it."
  type        = number
  default     = -1
  validation {
    condition     = var.dispatch_reserved_concurrency >= -1 && floor(var.dispatch_reserved_concurrency) == var.dispatch_reserved_concurrency
    error_message = "dispatch_reserved_concurrency must be -1 (none) or a whole number of executions."
  }
}

variable "log_retention_days" {
  description = "Retention of each function's CloudWatch log group."
  type        = number
  default     = 14
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "dispatch_timeout_seconds" {
  description = "Timeout of the dispatch function (one API request), in seconds."
  type        = number
  default     = 30
  validation {
    condition     = var.dispatch_timeout_seconds >= 1 && var.dispatch_timeout_seconds <= 900
    error_message = "dispatch_timeout_seconds must be from 1 to 900."
  }
}

variable "runner_timeout_seconds" {
  description = "Timeout of the runner function: the longest a task can run on Lambda (use VM runners for longer)."
  type        = number
  default     = 300
  validation {
    condition     = var.runner_timeout_seconds >= 1 && var.runner_timeout_seconds <= 900
    error_message = "runner_timeout_seconds must be from 1 to 900 (Lambda's maximum)."
  }
}

variable "collect_timeout_seconds" {
  description = "Timeout of the collect function (one batch of events), in seconds."
  type        = number
  default     = 30
  validation {
    condition     = var.collect_timeout_seconds >= 1 && var.collect_timeout_seconds <= 900
    error_message = "collect_timeout_seconds must be from 1 to 900."
  }
}

variable "dispatch_memory_mb" {
  description = "Memory of the dispatch function, in MB."
  type        = number
  default     = 256
  validation {
    condition     = var.dispatch_memory_mb >= 128 && var.dispatch_memory_mb <= 10240
    error_message = "dispatch_memory_mb must be from 128 to 10240."
  }
}

variable "runner_memory_mb" {
  description = "Memory of the runner function, in MB (CPU scales with it)."
  type        = number
  default     = 512
  validation {
    condition     = var.runner_memory_mb >= 128 && var.runner_memory_mb <= 10240
    error_message = "runner_memory_mb must be from 128 to 10240."
  }
}

variable "collect_memory_mb" {
  description = "Memory of the collect function, in MB."
  type        = number
  default     = 256
  validation {
    condition     = var.collect_memory_mb >= 128 && var.collect_memory_mb <= 10240
    error_message = "collect_memory_mb must be from 128 to 10240."
  }
}

variable "runner_trigger_enabled" {
  description = "Whether the runner function consumes the tasks queue. false keeps the mapping but pauses it: set it when only VM runners should run tasks (the collect triggers stay on)."
  type        = bool
  default     = true
}

variable "collect_triggers_enabled" {
  description = "Whether the collect function consumes the events queue and the tasks DLQ. Keep it true unless `drover collect` processes consume them instead (e.g. on an emulator that cannot invoke functions): nothing else turns events into statuses."
  type        = bool
  default     = true
}

variable "runner_batch_size" {
  description = "Task messages per runner invocation."
  type        = number
  default     = 1
  validation {
    condition     = var.runner_batch_size >= 1 && var.runner_batch_size <= 10000
    error_message = "runner_batch_size must be from 1 to 10000."
  }
  validation {
    condition     = var.runner_batch_size <= 10 || var.runner_batching_window_seconds >= 1
    error_message = "runner_batch_size above 10 needs runner_batching_window_seconds of at least 1 (SQS event source rule): lower runner_batch_size or raise runner_batching_window_seconds."
  }
}

variable "runner_batching_window_seconds" {
  description = "How long the runner trigger gathers messages before invoking (needed above a batch of 10)."
  type        = number
  default     = 0
  validation {
    condition     = var.runner_batching_window_seconds >= 0 && var.runner_batching_window_seconds <= 300
    error_message = "runner_batching_window_seconds must be from 0 to 300."
  }
}

variable "runner_maximum_concurrency" {
  description = "Most runner invocations at once from the tasks queue (event source mapping maximum concurrency)."
  type        = number
  default     = 10
  validation {
    condition     = var.runner_maximum_concurrency >= 2 && var.runner_maximum_concurrency <= 1000
    error_message = "runner_maximum_concurrency must be from 2 to 1000 (SQS event source limits)."
  }
}

variable "collect_batch_size" {
  description = "Event messages per collect invocation."
  type        = number
  default     = 10
  validation {
    condition     = var.collect_batch_size >= 1 && var.collect_batch_size <= 10
    error_message = "collect_batch_size must be from 1 to 10."
  }
}

variable "collect_maximum_concurrency" {
  description = "Most collect invocations at once from each of its queues."
  type        = number
  default     = 5
  validation {
    condition     = var.collect_maximum_concurrency >= 2 && var.collect_maximum_concurrency <= 1000
    error_message = "collect_maximum_concurrency must be from 2 to 1000 (SQS event source limits)."
  }
}

variable "collect_sweeps_dlq" {
  description = "Trigger the collect function from the tasks dead-letter queue too, so dead-lettered tasks become failed statuses (the sweeper)."
  type        = bool
  default     = true
}

variable "dispatch_auth_type" {
  description = "Dispatch function URL auth: AWS_IAM (callers sign with SigV4 and need lambda:InvokeFunctionUrl) or NONE (public URL; bearer API keys checked by dispatch)."
  type        = string
  default     = "AWS_IAM"
  validation {
    condition     = contains(["AWS_IAM", "NONE"], var.dispatch_auth_type)
    error_message = "dispatch_auth_type must be \"AWS_IAM\" or \"NONE\"."
  }
  validation {
    condition     = var.dispatch_auth_type != "NONE" || length(var.dispatch_api_keys) > 0 || var.dispatch_api_keys_secret_arn != null
    error_message = "dispatch_auth_type = \"NONE\" makes the function URL public: set dispatch_api_keys_secret_arn (keys read from Secrets Manager or SSM) or dispatch_api_keys (DROVER_API_KEYS), or keep dispatch_auth_type = \"AWS_IAM\"."
  }
}

variable "dispatch_api_keys" {
  description = "Bearer tokens accepted by dispatch (DROVER_API_KEYS) when dispatch_auth_type is NONE, if dispatch_api_keys_secret_arn is not set. They end up in the function's environment and the state: prefer the secret. Pass with TF_VAR_dispatch_api_keys, never in a committed file."
  type        = list(string)
  default     = []
  sensitive   = true
  validation {
    condition     = alltrue([for k in var.dispatch_api_keys : length(k) >= 16 && !strcontains(k, ",")])
    error_message = "dispatch_api_keys: each key must be at least 16 characters and contain no comma."
  }
}

# ---------------------------------------------------------------- alarms

variable "alarm_topic_enabled" {
  description = "Create the SNS topic <name>-alarms that every alarm notifies on alarm and on recovery."
  type        = bool
  default     = true
}

variable "alarm_topic_kms_key_id" {
  description = "KMS key (id, ARN or alias) encrypting the alarms topic; null for none. CloudWatch must be allowed to use a customer managed key (kms:Decrypt, kms:GenerateDataKey*)."
  type        = string
  default     = null
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the alarms topic (each must confirm)."
  type        = list(string)
  default     = []
}

variable "alarm_actions" {
  description = "Further ARNs (e.g. an existing SNS topic) notified when an alarm fires or recovers, next to the alarms topic."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.alarm_actions : startswith(a, "arn:")])
    error_message = "alarm_actions must be ARNs."
  }
}

variable "longest_task_seconds" {
  description = "Longest timeout clients give a task; null for runner_timeout_seconds. Set it when VM runners take tasks longer than the Lambda maximum: it sets the tasks queue's oldest-message alarm."
  type        = number
  default     = null
  validation {
    condition     = var.longest_task_seconds == null || coalesce(var.longest_task_seconds, 1) >= 1
    error_message = "longest_task_seconds must be positive."
  }
}

variable "task_max_attempts" {
  description = "Largest max_attempts clients give a task (Drover's default is 3, its limit 100); with longest_task_seconds it sets the tasks queue's oldest-message alarm, and tasks_max_receive_count must exceed it with a margin."
  type        = number
  default     = 3
  validation {
    condition     = var.task_max_attempts >= 1 && var.task_max_attempts <= 100 && floor(var.task_max_attempts) == var.task_max_attempts
    error_message = "task_max_attempts must be a whole number from 1 to 100 (the most attempts a task may ask for)."
  }
}

variable "tasks_oldest_message_alarm_seconds" {
  description = "Alarm when the tasks queue's oldest message is older than this; null for task_max_attempts x (longest_task_seconds + 300 s of backoff) + 300, or the visibility timeout + 300 if longer."
  type        = number
  default     = null
  validation {
    condition     = var.tasks_oldest_message_alarm_seconds == null || coalesce(var.tasks_oldest_message_alarm_seconds, 60) >= 60
    error_message = "tasks_oldest_message_alarm_seconds must be at least 60."
  }
}

variable "events_oldest_message_alarm_seconds" {
  description = "Alarm when the events queue's oldest message is older than this; null for 2 x events_visibility_timeout_seconds + 300."
  type        = number
  default     = null
  validation {
    condition     = var.events_oldest_message_alarm_seconds == null || coalesce(var.events_oldest_message_alarm_seconds, 60) >= 60
    error_message = "events_oldest_message_alarm_seconds must be at least 60."
  }
}

# ---------------------------------------------------------------- VM runners

variable "vm_runner_enabled" {
  description = "Create an autoscaling group of VM runners (`drover runner`) next to, or instead of, the runner function."
  type        = bool
  default     = false
}

variable "vm_ami_id" {
  description = "AMI of the VM runners (Amazon Linux 2023 of the instance type's architecture); required when vm_runner_enabled."
  type        = string
  default     = null
  validation {
    condition     = !var.vm_runner_enabled || var.vm_ami_id != null
    error_message = "vm_runner_enabled = true needs vm_ami_id (e.g. the SSM parameter /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64)."
  }
}

variable "vm_instance_type" {
  description = "Instance type of the VM runners (its architecture must match the drover binary)."
  type        = string
  default     = "t4g.small"
}

variable "vm_subnet_ids" {
  description = "Subnets of the VM runners; empty for the default VPC's. They need a route to SQS, S3 and DynamoDB (NAT or VPC endpoints)."
  type        = list(string)
  default     = []
}

variable "vm_min_size" {
  description = "Fewest VM runners (at least 1: the scaling metric divides by the instances in service)."
  type        = number
  default     = 1
  validation {
    condition     = var.vm_min_size >= 1
    error_message = "vm_min_size must be at least 1: the scaling metric (backlog per instance) is undefined with no instance in service."
  }
}

variable "vm_max_size" {
  description = "Most VM runners."
  type        = number
  default     = 4
  validation {
    condition     = var.vm_max_size >= var.vm_min_size && var.vm_max_size <= 1000
    error_message = "vm_max_size must be from vm_min_size to 1000."
  }
}

variable "vm_backlog_per_instance" {
  description = "Target tasks waiting or running per VM runner: the group scales out above it and in below it (draining the instances it removes)."
  type        = number
  default     = 20
  validation {
    condition     = var.vm_backlog_per_instance > 0
    error_message = "vm_backlog_per_instance must be positive."
  }
}

variable "vm_drain_seconds" {
  description = "How long a VM runner being scaled in lets its running tasks finish (DROVER_GRACE) before it releases them for redelivery; its lifecycle hook holds the instance 120 s longer. Up to 7080."
  type        = number
  default     = 900
  validation {
    condition     = var.vm_drain_seconds >= 30 && var.vm_drain_seconds <= 7080 && floor(var.vm_drain_seconds) == var.vm_drain_seconds
    error_message = "vm_drain_seconds must be a whole number from 30 to 7080 (a lifecycle hook waits at most 7200 s)."
  }
}

variable "vm_binary_bucket" {
  description = "Bucket holding the drover binary for the VM runners; null for the archive bucket."
  type        = string
  default     = null
}

variable "vm_binary_key" {
  description = "Key of the drover binary (linux, the instance type's architecture), e.g. bin/drover-linux-arm64; required when vm_runner_enabled."
  type        = string
  default     = null
  validation {
    condition     = !var.vm_runner_enabled || (var.vm_binary_key != null && !strcontains(coalesce(var.vm_binary_key, "x"), "*"))
    error_message = "vm_runner_enabled = true needs vm_binary_key, the exact key (no wildcard) of the drover binary."
  }
}
