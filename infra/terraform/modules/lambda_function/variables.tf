variable "name" {
  description = "Function name; also the name of its IAM role and of its log group /aws/lambda/<name>."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "name: 1-64 characters of letters, digits, '-' and '_'."
  }
}

variable "description" {
  description = "Description of the function."
  type        = string
  default     = ""
}

variable "zip_file" {
  description = "Deployment package: a local zip holding an executable named bootstrap (used unless s3_bucket is set)."
  type        = string
  default     = null
}

variable "s3_bucket" {
  description = "Bucket of the deployment package in S3 (same region); null to deploy zip_file."
  type        = string
  default     = null
}

variable "s3_key" {
  description = "Key of the deployment package in s3_bucket."
  type        = string
  default     = null
  validation {
    condition     = var.s3_bucket == null || var.s3_key != null
    error_message = "s3_key is required with s3_bucket."
  }
}

variable "s3_object_version" {
  description = "Version of the package object (versioned bucket); null for the latest."
  type        = string
  default     = null
}

variable "tracing_mode" {
  description = "X-Ray tracing: Active or PassThrough; null for none."
  type        = string
  default     = null
  validation {
    condition     = var.tracing_mode == null || contains(["Active", "PassThrough"], coalesce(var.tracing_mode, "Active"))
    error_message = "tracing_mode must be Active, PassThrough or null."
  }
}

variable "role_path" {
  description = "IAM path of the function's role."
  type        = string
  default     = "/"
}

variable "role_permissions_boundary" {
  description = "ARN of the permissions boundary of the function's role; null for none."
  type        = string
  default     = null
}

variable "architectures" {
  description = "Instruction set the bootstrap was built for: [\"arm64\"] or [\"x86_64\"]."
  type        = list(string)
  validation {
    condition     = length(var.architectures) == 1 && contains(["arm64", "x86_64"], try(var.architectures[0], ""))
    error_message = "architectures must be [\"arm64\"] or [\"x86_64\"]."
  }
}

variable "memory_size" {
  description = "Memory of the function, in MB."
  type        = number
  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be from 128 to 10240 MB."
  }
}

variable "timeout" {
  description = "Timeout of one invocation, in seconds."
  type        = number
  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be from 1 to 900 seconds."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1 for none."
  type        = number
  default     = -1
}

variable "environment" {
  description = "Environment variables of the function."
  type        = map(string)
  default     = {}
}

variable "policy_statements" {
  description = "Allow statements of the function's inline policy (its own log group is added)."
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
    # e.g. { StringLike = { "s3:prefix" = ["payloads/*"] } }
    condition = optional(map(map(list(string))), {})
  }))
  validation {
    condition = alltrue([for s in var.policy_statements :
      alltrue([for a in s.actions : !strcontains(a, "*")]) &&
      alltrue([for r in s.resources : r != "*" && !strcontains(trimsuffix(trimsuffix(r, "/*"), ":*"), "*")])
    ])
    error_message = "policy_statements: no wildcard actions, no \"*\" resources; a resource may only end in /* or :* under a fixed ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
}

variable "partition" {
  description = "AWS partition, for ARNs."
  type        = string
}

variable "region" {
  description = "Region, for ARNs."
  type        = string
}

variable "account_id" {
  description = "Account, for ARNs."
  type        = string
}

variable "tags" {
  description = "Tags of the function, its role and its log group."
  type        = map(string)
  default     = {}
}
