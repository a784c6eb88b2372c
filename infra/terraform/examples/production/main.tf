# A production layout of Drover on AWS, as a platform team would deploy it:
#
#   - state in S3, encrypted, locked with S3's native lock file (no
#     DynamoDB lock table: Terraform 1.10+), one key per environment;
#   - Lambda packages from S3, uploaded by CI per release (plans need no
#     Go toolchain and no local build);
#   - every role under an IAM path, bounded by the organisation's
#     permissions boundary;
#   - one customer managed KMS key for queues, bucket and table; bucket
#     versioning and access logs; point-in-time recovery and deletion
#     protection (the module's defaults);
#   - no API keys at all: dispatch's URL uses AWS_IAM, so there is no
#     secret to store (see README.md, "Secrets");
#   - alarms to an SNS topic with e-mail subscribers (and any existing
#     topic, e.g. the on-call pager's, in alarm_actions);
#   - X-Ray tracing and a reserved concurrency for dispatch.
#
#   terraform init -backend-config=backend.hcl   # bucket, key, region
#   terraform plan -var-file=prod.tfvars -out=tfplan
#   terraform apply tfplan

terraform {
  # use_lockfile (S3 native state locking) needs 1.10.
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 6.0.0"
    }
  }

  # Partial configuration: bucket, key and region come from
  # -backend-config (a backend.hcl per environment), e.g.
  #   bucket = "acme-terraform-state"
  #   key    = "drover/prod/terraform.tfstate"
  #   region = "eu-west-1"
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}

module "drover" {
  source = "../.."

  name             = var.name
  aws_region       = var.aws_region
  aws_endpoint_url = var.aws_endpoint_url

  # Packages CI built with `make lambda ARCHS=arm64` and uploaded as
  # s3://<packages_bucket>/drover/<release>/arm64/<function>.zip.
  lambda_s3_bucket    = var.packages_bucket
  lambda_s3_keys      = { for fn in ["dispatch", "runner", "collect"] : fn => "drover/${var.release}/arm64/${fn}.zip" }
  lambda_architecture = "arm64"

  role_path                 = "/drover/"
  role_permissions_boundary = var.permissions_boundary_arn

  kms_key_arn        = var.kms_key_arn
  bucket_versioning  = true
  bucket_access_logs = { bucket = var.access_logs_bucket, prefix = "s3/${var.name}-archive/" }

  dispatch_auth_type            = "AWS_IAM"
  dispatch_reserved_concurrency = 50
  lambda_tracing_mode           = "Active"
  log_retention_days            = 90

  alarm_email_addresses = var.alarm_email_addresses
  alarm_actions         = var.alarm_actions

  tags = var.tags
}
