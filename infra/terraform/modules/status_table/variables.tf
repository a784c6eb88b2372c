variable "name" {
  description = "Table name."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.name))
    error_message = "name: 3-255 characters of letters, digits, '_', '-' and '.'."
  }
}

variable "point_in_time_recovery" {
  description = "Continuous backups (point-in-time recovery)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse to delete the table (destroy fails until it is turned off)."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the table; null for the AWS-owned key."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of the table."
  type        = map(string)
  default     = {}
}
