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

variable "drain_seconds" {
  description = "How long a runner being stopped (scale-in, instance refresh) lets running tasks finish (DROVER_GRACE) before it releases them for redelivery; the lifecycle hook waits 120 s longer."
  type        = number
  validation {
    condition     = var.drain_seconds >= 30 && var.drain_seconds <= 7080 && floor(var.drain_seconds) == var.drain_seconds
    error_message = "drain_seconds must be a whole number from 30 to 7080 (a lifecycle hook waits at most 7200 s)."
  }
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

variable "partition" {
  description = "AWS partition (aws, aws-cn, ...), for ARNs."
  type        = string
}

variable "region" {
  description = "Region of the group, for ARNs and the AWS CLI on the instances."
  type        = string
}

variable "account_id" {
  description = "Account of the group, for ARNs."
  type        = string
}

variable "tags" {
  description = "Tags of every resource here, the instances and their volumes included (launch template tag specifications and group tags propagated at launch)."
  type        = map(string)
  default     = {}
}

variable "role_path" {
  description = "IAM path of the instance role and profile."
  type        = string
  default     = "/"
}

variable "role_permissions_boundary" {
  description = "ARN of the permissions boundary of the instance role; null for none."
  type        = string
  default     = null
}
