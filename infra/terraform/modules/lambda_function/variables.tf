variable "name" {
  description = "Function name; also the name of its IAM role and of its log group /aws/lambda/<name>."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "name: 1-64 characters of letters, digits, '-' and '_'."
  }
}

variable "description" {
  type    = string
  default = ""
}

variable "zip_file" {
  description = "Deployment package: a zip holding an executable named bootstrap."
  type        = string
}

variable "architectures" {
  type = list(string)
  validation {
    condition     = length(var.architectures) == 1 && contains(["arm64", "x86_64"], try(var.architectures[0], ""))
    error_message = "architectures must be [\"arm64\"] or [\"x86_64\"]."
  }
}

variable "memory_size" {
  type = number
  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be from 128 to 10240 MB."
  }
}

variable "timeout" {
  type = number
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
  type    = map(string)
  default = {}
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
  type = number
}

variable "partition" { type = string }
variable "region" { type = string }
variable "account_id" { type = string }

variable "tags" {
  type    = map(string)
  default = {}
}
