variable "bucket" {
  description = "Bucket name."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket)) && !strcontains(var.bucket, "..")
    error_message = "bucket: 3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit."
  }
}

variable "expiration_days" {
  description = "Days after which objects expire, per key prefix (without the trailing '/')."
  type        = map(number)
  validation {
    condition     = alltrue([for d in values(var.expiration_days) : d >= 1 && floor(d) == d])
    error_message = "expiration_days: every value must be a whole number of days, at least 1."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty bucket (objects included)."
  type        = bool
  default     = false
}

variable "tags" {
  type    = map(string)
  default = {}
}
