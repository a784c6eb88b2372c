locals {
  # Against an emulator (LocalStack, moto_server) every service used here is
  # pointed at one endpoint and the checks that need real AWS are skipped.
  emulated = var.aws_endpoint_url != null

  # Every resource gets these through the provider's default_tags, except
  # what the provider cannot tag for us: instances launched by the VM
  # runners' autoscaling group (given them explicitly).
  tags = merge({ "drover:stack" = var.name }, var.tags)
}

provider "aws" {
  region = var.aws_region

  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  s3_use_path_style           = local.emulated

  dynamic "endpoints" {
    for_each = local.emulated ? [var.aws_endpoint_url] : []
    content {
      autoscaling = endpoints.value
      cloudwatch  = endpoints.value
      dynamodb    = endpoints.value
      ec2         = endpoints.value
      iam         = endpoints.value
      lambda      = endpoints.value
      logs        = endpoints.value
      s3          = endpoints.value
      sns         = endpoints.value
      sqs         = endpoints.value
      sts         = endpoints.value
    }
  }

  default_tags {
    tags = local.tags
  }
}
