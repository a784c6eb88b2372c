terraform {
  # 1.9+ for variable validations that refer to other variables.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 6.0.0"
    }
  }

  # State is local, in a file the caller chooses at init:
  #   terraform init -backend-config=path=/somewhere/terraform.tfstate
  # (default: ./terraform.tfstate, ignored by git). Never commit state; for a
  # shared deployment replace this with an S3 backend (see README.md).
  backend "local" {}
}
