variable "name" {
  description = "Queue name; the dead-letter queue is named \"<name>-dlq\"."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,76}$", var.name))
    error_message = "name: 1-76 characters of letters, digits, '-' and '_' (SQS allows 80, and \"-dlq\" is appended)."
  }
}

variable "visibility_timeout_seconds" {
  description = "How long a received message stays invisible before it is redelivered."
  type        = number
  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200 && floor(var.visibility_timeout_seconds) == var.visibility_timeout_seconds
    error_message = "visibility_timeout_seconds must be a whole number from 0 to 43200 (12 h)."
  }
}

variable "message_retention_seconds" {
  description = "How long the work queue keeps a message nobody deleted."
  type        = number
  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be from 60 to 1209600 (14 days)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long the dead-letter queue keeps a message (default 14 days, the maximum)."
  type        = number
  default     = 1209600
  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be from 60 to 1209600 (14 days)."
  }
}

variable "receive_wait_time_seconds" {
  description = "Long-poll wait for ReceiveMessage."
  type        = number
  default     = 20
  validation {
    condition     = var.receive_wait_time_seconds >= 0 && var.receive_wait_time_seconds <= 20
    error_message = "receive_wait_time_seconds must be from 0 to 20."
  }
}

variable "max_receive_count" {
  description = "Receives before a message is moved to the dead-letter queue."
  type        = number
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be from 1 to 1000."
  }
}

variable "dlq_max_receive_count" {
  description = "Receives of a dead letter by the DLQ's own consumer before it moves on to <name>-dlq-failed (with dlq_consumed); null for max_receive_count."
  type        = number
  default     = null
}

variable "dlq_consumed" {
  description = "The DLQ has a consumer of its own (the tasks DLQ's sweeper): give it a redrive policy to <name>-dlq-failed."
  type        = bool
  default     = false
}

variable "redrive_allow_policy" {
  description = "Let each dead-letter queue take dead letters from its source queue only."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key encrypting the queues; null for SQS-managed encryption."
  type        = string
  default     = null
}

variable "partition" {
  description = "AWS partition, for the queues' ARNs."
  type        = string
}

variable "region" {
  description = "Region, for the queues' ARNs."
  type        = string
}

variable "account_id" {
  description = "Account, for the queues' ARNs."
  type        = string
}

variable "tags" {
  description = "Tags of the queues."
  type        = map(string)
  default     = {}
}
