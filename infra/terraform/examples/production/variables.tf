variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "drover-prod"
}

variable "aws_region" {
  description = "Region of the stack."
  type        = string
}

variable "aws_endpoint_url" {
  description = "For the offline test only (moto_server): one endpoint for every AWS service. Leave null."
  type        = string
  default     = null
}

variable "release" {
  description = "Release whose Lambda packages to deploy, e.g. v1.4.2 (the S3 key prefix CI uploads to)."
  type        = string
}

variable "packages_bucket" {
  description = "Bucket, in aws_region, where CI uploads the Lambda packages."
  type        = string
}

variable "permissions_boundary_arn" {
  description = "The organisation's permissions boundary for workload roles."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed key for the queues, the archive bucket and the status table."
  type        = string
}

variable "access_logs_bucket" {
  description = "Existing bucket receiving S3 server access logs."
  type        = string
}

variable "alarm_email_addresses" {
  description = "Addresses subscribed to the alarms topic."
  type        = list(string)
  default     = []
}

variable "alarm_actions" {
  description = "Existing SNS topics (e.g. the on-call pager's) notified next to the alarms topic."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of every resource, the VM runners' instances included."
  type        = map(string)
  default     = {}
}
