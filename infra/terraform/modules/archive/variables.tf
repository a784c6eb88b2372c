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

variable "partition" {
  description = "AWS partition, for the bucket's ARN."
  type        = string
  default     = "aws"
}

variable "tls_only" {
  description = "A bucket policy denying every request not made over TLS."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key encrypting the objects (SSE-KMS with an S3 bucket key); null for SSE-S3."
  type        = string
  default     = null
}

variable "versioning" {
  description = "Keep object versions (old ones expire after noncurrent_version_expiration_days)."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted object's old version is kept (with versioning)."
  type        = number
  default     = 7
}

variable "access_logs" {
  description = "Server access logging: { bucket, prefix } of the target bucket; null for none."
  type = object({
    bucket = string
    prefix = string
  })
  default = null
}

variable "tags" {
  description = "Tags of the bucket."
  type        = map(string)
  default     = {}
}
