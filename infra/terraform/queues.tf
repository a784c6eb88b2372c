# Task queues that route (docs/routing.md): a task's queue decides which
# runners take it. Each declared queue is its own SQS queue with its own
# dead-letter queue (swept by collect, with its own "-dlq-failed" like the
# default one), visibility timeout, receive count and alarms. Every part
# reads the queues beside default from one variable, DROVER_QUEUE_URLS (a
# JSON object of queue names to awssqs:// URLs); default keeps
# DROVER_TASKS_TOPIC and DROVER_TASKS_SUBSCRIPTION. The default declares
# default alone: the stack, the functions' environments and the outputs
# are then what they were before queues existed.

variable "queues" {
  description = "Task queues by name, default among them. Each is its own SQS queue (\"<name>-tasks\" for default, \"<name>-tasks-<queue>\" for the others) with its own dead-letter queue and alarms; a setting left out takes the tasks_* variable (visibility_timeout_seconds: tasks_visibility_timeout_seconds, max_receive_count: tasks_max_receive_count, longest_task_seconds: longest_task_seconds, oldest_message_alarm_seconds: tasks_oldest_message_alarm_seconds). Runners choose the queues they serve with DROVER_QUEUES; a task for a queue not declared here is refused with 422."
  type = map(object({
    visibility_timeout_seconds   = optional(number)
    max_receive_count            = optional(number)
    longest_task_seconds         = optional(number)
    oldest_message_alarm_seconds = optional(number)
  }))
  default  = { default = {} }
  nullable = false
  validation {
    condition     = contains(keys(var.queues), "default")
    error_message = "queues must declare default (tasks that name no queue go there), e.g. queues = { default = {}, gpu = {} }."
  }
  validation {
    condition     = alltrue([for q in keys(var.queues) : can(regex("^[A-Za-z0-9_-]+$", q)) && length("${var.name}-tasks-${q}-dlq-failed") <= 80])
    error_message = "queues: each name must be letters, digits, '-' and '_' (SQS queue names), short enough that \"${var.name}-tasks-<queue>-dlq-failed\" has at most 80 characters; got ${join(", ", keys(var.queues))}."
  }
  validation {
    condition     = alltrue([for q, s in var.queues : s.visibility_timeout_seconds == null || try(s.visibility_timeout_seconds >= 6 * var.runner_timeout_seconds && s.visibility_timeout_seconds <= 43200 && floor(s.visibility_timeout_seconds) == s.visibility_timeout_seconds, false)])
    error_message = "queues: each visibility_timeout_seconds must be a whole number of at least 6 x runner_timeout_seconds (${6 * var.runner_timeout_seconds}) and at most 43200, as tasks_visibility_timeout_seconds."
  }
  validation {
    condition     = alltrue([for q, s in var.queues : s.max_receive_count == null || try(s.max_receive_count >= var.task_max_attempts + max(10, ceil(var.task_max_attempts / 2)) && s.max_receive_count <= 1000 && floor(s.max_receive_count) == s.max_receive_count, false)])
    error_message = "queues: each max_receive_count must be a whole number from task_max_attempts (${var.task_max_attempts}) + ${max(10, ceil(var.task_max_attempts / 2))} to 1000, as tasks_max_receive_count."
  }
  validation {
    condition     = alltrue([for q, s in var.queues : (s.longest_task_seconds == null || try(s.longest_task_seconds >= 1, false)) && (s.oldest_message_alarm_seconds == null || try(s.oldest_message_alarm_seconds >= 60, false))])
    error_message = "queues: longest_task_seconds must be positive and oldest_message_alarm_seconds at least 60."
  }
}

locals {
  # Each queue's settings, the tasks_* variables filling what it leaves out.
  queue_settings = { for q, s in var.queues : q => {
    name                       = q == "default" ? "${var.name}-tasks" : "${var.name}-tasks-${q}"
    visibility_timeout_seconds = coalesce(s.visibility_timeout_seconds, var.tasks_visibility_timeout_seconds)
    max_receive_count          = coalesce(s.max_receive_count, var.tasks_max_receive_count)
    # SQS counts a message being worked on in ApproximateAgeOfOldestMessage,
    # and a retry is the same message received again: a task message
    # normally lives up to max_attempts runs of the longest task, each
    # followed by the longest backoff (5 minutes). The alarm fires only
    # past that.
    oldest_message_alarm_seconds = coalesce(s.oldest_message_alarm_seconds, var.tasks_oldest_message_alarm_seconds,
      max(var.task_max_attempts * (coalesce(s.longest_task_seconds, var.longest_task_seconds, var.runner_timeout_seconds) + 300),
    coalesce(s.visibility_timeout_seconds, var.tasks_visibility_timeout_seconds)) + 300)
  } }

  # The queues beside default (module.tasks_queue, main.tf).
  other_queues = { for q, s in local.queue_settings : q => s if q != "default" }

  # Every queue's ARNs spelled from its name, as the other grants are.
  queue_arns     = [for q in sort(keys(local.queue_settings)) : "${local.sqs_arn_prefix}:${local.queue_settings[q].name}"]
  queue_dlq_arns = [for q in sort(keys(local.queue_settings)) : "${local.sqs_arn_prefix}:${local.queue_settings[q].name}-dlq"]

  # Every queue's module outputs, default included.
  task_queues = merge({ default = module.tasks_queue }, module.queue)

  # DROVER_QUEUE_URLS and DROVER_DLQ_URLS: the queues beside default, as
  # plain awssqs:// URLs, which open as a topic (dispatch, collect) and as
  # a subscription (runners; Drover's SQS driver makes it nacklazy) alike,
  # so that VM-mode processes share one drover_env. Only when there are
  # such queues: with default alone, the environments are unchanged.
  # The runner function takes from every queue (one trigger each): its
  # heartbeat says so, so that dispatch does not report a task on another
  # queue as waiting for a runner. VM runners serve default unless their
  # DROVER_QUEUES says otherwise.
  runner_function_queues = length(local.other_queues) == 0 ? {} : {
    DROVER_QUEUES = join(",", sort(keys(var.queues)))
  }

  drover_env_queues = length(local.other_queues) == 0 ? {} : {
    DROVER_QUEUE_URLS = jsonencode({ for q, m in module.queue : q => "awssqs://${replace(m.url, "/^https?:\\/\\//", "")}" })
    DROVER_DLQ_URLS   = jsonencode({ for q, m in module.queue : q => "awssqs://${replace(m.dlq_url, "/^https?:\\/\\//", "")}" })
  }
}

module "queue" {
  source   = "./modules/queues"
  for_each = local.other_queues

  name                       = each.value.name
  visibility_timeout_seconds = each.value.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  max_receive_count          = each.value.max_receive_count
  dlq_max_receive_count      = var.max_receive_count
  dlq_consumed               = var.collect_sweeps_dlq
  kms_key_arn                = var.kms_key_arn
  redrive_allow_policy       = var.dlq_redrive_allow_policies
  partition                  = local.partition
  region                     = local.region
  account_id                 = local.account_id
}

# The runner function takes from every queue; collect sweeps every DLQ.
resource "aws_lambda_event_source_mapping" "runner_queue" {
  for_each = local.other_queues

  event_source_arn                   = module.queue[each.key].arn
  function_name                      = module.runner.function_arn
  enabled                            = var.runner_trigger_enabled
  batch_size                         = var.runner_batch_size
  maximum_batching_window_in_seconds = var.runner_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.runner_maximum_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "collect_queue_dlq" {
  for_each = var.collect_sweeps_dlq ? local.other_queues : {}

  event_source_arn        = module.queue[each.key].dlq_arn
  function_name           = module.collect.function_arn
  enabled                 = var.collect_triggers_enabled
  batch_size              = var.collect_batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = 2
  }
}

output "queue_urls" {
  description = "SQS URL of every declared queue, by queue name (default included)."
  value       = { for q, m in local.task_queues : q => m.url }
}

output "queue_dlq_urls" {
  description = "SQS URL of every declared queue's dead-letter queue, by queue name (default included)."
  value       = { for q, m in local.task_queues : q => m.dlq_url }
}
