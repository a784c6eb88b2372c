variable "name" {
  description = "Name of the role, instance profile, security group, launch template and group."
  type        = string
}

variable "ami_id" {
  description = "AMI with the AWS CLI and systemd (Amazon Linux 2023 fits), matching instance_type's architecture."
  type        = string
}

variable "instance_type" {
  type = string
}

variable "subnet_ids" {
  description = "Subnets for the group; empty for the default VPC's subnets."
  type        = list(string)
  default     = []
}

variable "min_size" {
  type = number
  validation {
    condition     = var.min_size >= 1
    error_message = "min_size must be at least 1: backlog per instance is undefined with no instance in service."
  }
}

variable "max_size" {
  type = number
}

variable "backlog_per_instance" {
  description = "Target tasks waiting per runner instance."
  type        = number
}

variable "instance_warmup_seconds" {
  type    = number
  default = 120
}

variable "stop_timeout_seconds" {
  description = "How long systemd waits for the runner to finish on stop before killing it."
  type        = number
  default     = 90
}

variable "tasks_queue_name" {
  type = string
}

variable "binary_bucket" {
  description = "Bucket holding the drover binary for the instances' architecture."
  type        = string
}

variable "binary_key" {
  description = "Key of the drover binary in binary_bucket."
  type        = string
}

variable "environment" {
  description = "DROVER_* variables of `drover runner`."
  type        = map(string)
}

variable "policy_statements" {
  description = "Allow statements of the instance role (read access to the binary is added)."
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
    condition = optional(map(map(list(string))), {})
  }))
}

variable "partition" { type = string }
variable "region" { type = string }

variable "tags" {
  type    = map(string)
  default = {}
}
