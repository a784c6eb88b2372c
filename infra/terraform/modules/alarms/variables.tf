variable "dead_letter_queues" {
  description = "Dead-letter queue names, by a stable key."
  type        = map(string)
}

variable "work_queues" {
  description = "Work queues by a stable key: name, and the age of the oldest message above which the alarm fires."
  type = map(object({
    name                       = string
    oldest_message_age_seconds = number
  }))
  validation {
    condition     = alltrue([for q in values(var.work_queues) : q.oldest_message_age_seconds >= 60])
    error_message = "work_queues: oldest_message_age_seconds must be at least 60."
  }
}

variable "functions" {
  description = "Lambda function names, by a stable key, alarmed on errors and throttles."
  type        = map(string)
  default     = {}
}

variable "function_url" {
  description = "Name of the function whose URL is alarmed on 5xx answers; null for none."
  type        = string
  default     = null
}

variable "table" {
  description = "DynamoDB table alarmed on throttled requests; null for none."
  type        = string
  default     = null
}

variable "evaluation_periods" {
  description = "Consecutive 5-minute periods the oldest message must be too old before the alarm fires."
  type        = number
  default     = 2
}

variable "alarm_actions" {
  description = "ARNs notified on alarm and on recovery (e.g. an SNS topic)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of every alarm."
  type        = map(string)
  default     = {}
}
