# API keys from a secret: dispatch reads them at start (and again every
# DROVER_API_KEYS_REFRESH, and when a request's key matches none) from a
# Secrets Manager secret or an SSM SecureString parameter that already
# exists. This configuration never sees the keys: they are in neither the
# function's environment (only the secret's ARN is), nor the state, nor
# any output.

variable "dispatch_api_keys_secret_arn" {
  description = "ARN of an existing Secrets Manager secret (the full ARN, with its 6-character suffix) or SSM parameter (SecureString) holding dispatch's API keys, as a JSON array of strings or separated by commas or newlines. Dispatch reads it (DROVER_API_KEYS_SECRET); instead of dispatch_api_keys, so that no key is in the environment or the state."
  type        = string
  default     = null
  validation {
    condition = var.dispatch_api_keys_secret_arn == null || can(regex(
      "^arn:aws[a-z-]*:(secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}|ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9/_.-]+)$",
      coalesce(var.dispatch_api_keys_secret_arn, "-"),
    ))
    error_message = "dispatch_api_keys_secret_arn must be the full ARN of a Secrets Manager secret (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>, as describe-secret prints it: IAM matches the full ARN) or of an SSM parameter (arn:aws:ssm:<region>:<account>:parameter/<name>)."
  }
  validation {
    condition     = var.dispatch_api_keys_secret_arn == null || length(var.dispatch_api_keys) == 0
    error_message = "Set dispatch_api_keys_secret_arn or dispatch_api_keys, not both."
  }
}

variable "dispatch_api_keys_secret_kms_key_arn" {
  description = "Customer managed KMS key the API keys' secret is encrypted with, if not the AWS managed one (aws/secretsmanager, aws/ssm); dispatch gets kms:Decrypt on it."
  type        = string
  default     = null
}

variable "dispatch_api_keys_refresh" {
  description = "How often dispatch reads the API keys' secret again (DROVER_API_KEYS_REFRESH, a Go duration; 0 only at start). A key added by a rotation works at once: a request whose key matches none reads the secret again (at most every 30 s); a removed key stops working within this interval."
  type        = string
  default     = "5m"
  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$|^0$", var.dispatch_api_keys_refresh))
    error_message = "dispatch_api_keys_refresh must be a Go duration such as 5m, 1h30m or 0."
  }
}

locals {
  api_keys_secret     = var.dispatch_api_keys_secret_arn
  api_keys_secret_ssm = local.api_keys_secret != null && strcontains(coalesce(local.api_keys_secret, "-"), ":ssm:")

  # What dispatch's environment holds for its keys: the secret's ARN, or
  # the keys themselves (dispatch_api_keys), or nothing (AWS_IAM).
  dispatch_api_keys_env = local.api_keys_secret != null ? {
    DROVER_API_KEYS_SECRET  = local.api_keys_secret
    DROVER_API_KEYS_REFRESH = var.dispatch_api_keys_refresh
    } : length(var.dispatch_api_keys) == 0 ? {} : {
    DROVER_API_KEYS = join(",", var.dispatch_api_keys)
  }

  # VM-mode dispatch processes get the secret's ARN too (not a secret).
  drover_env_api_keys = local.api_keys_secret == null ? {} : {
    DROVER_API_KEYS_SECRET = local.api_keys_secret
  }

  dispatch_secret_grants = local.api_keys_secret == null ? [] : concat(
    [{
      sid       = "ReadApiKeys"
      actions   = local.api_keys_secret_ssm ? ["ssm:GetParameter"] : ["secretsmanager:GetSecretValue"]
      resources = [local.api_keys_secret]
    }],
    var.dispatch_api_keys_secret_kms_key_arn == null ? [] : [{
      sid       = "DecryptApiKeys"
      actions   = ["kms:Decrypt"]
      resources = [var.dispatch_api_keys_secret_kms_key_arn]
    }],
  )
}
