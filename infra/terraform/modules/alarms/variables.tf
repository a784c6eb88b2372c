variable "dead_letter_queues" {
  description = "Dead-letter queue names, by a stable key."
  type        = map(string)
}

variable "work_queues" {
  description = "Work queue names, by a stable key."
  type        = map(string)
}

variable "dlq_depth_threshold" {
  type    = number
  default = 0
}

variable "oldest_message_age_seconds" {
  type = number
  validation {
    condition     = var.oldest_message_age_seconds >= 60
    error_message = "oldest_message_age_seconds must be at least 60."
  }
}

variable "evaluation_periods" {
  type    = number
  default = 2
}

variable "alarm_actions" {
  description = "ARNs notified on alarm and on recovery (e.g. an SNS topic)."
  type        = list(string)
  default     = []
}

variable "tags" {
  type    = map(string)
  default = {}
}
