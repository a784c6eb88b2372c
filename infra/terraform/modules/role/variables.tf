variable "name" {
  description = "Name of the role; its policy is <name>-least-privilege."
  type        = string
}

variable "description" {
  description = "What the role is for."
  type        = string
}

variable "service" {
  description = "The service principal that assumes the role, e.g. lambda.amazonaws.com."
  type        = string
}

variable "statements" {
  description = "Allow statements of the role's inline policy (the callers validate them)."
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
    condition = map(map(list(string)))
  }))
}

variable "tags" {
  description = "Tags of the role."
  type        = map(string)
  default     = {}
}

variable "path" {
  description = "IAM path of the role, e.g. /drover/."
  type        = string
  default     = "/"
}

variable "permissions_boundary" {
  description = "ARN of the managed policy that bounds the role's permissions; null for none."
  type        = string
  default     = null
}
