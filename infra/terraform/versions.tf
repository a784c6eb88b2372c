terraform {
  # 1.9+ for variable validations that refer to other variables; below 2.0
  # so that a new major version is a reviewed change.
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      # Tested with 5.100 (the version in .terraform.lock.hcl). 6.x renames
      # and removes arguments this configuration uses (data.aws_region.name
      # becomes .region, among others), so it is excluded until it is
      # tested; see README.md, "Provider 6.x".
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 6.0.0"
    }
  }

  # State is local, in a file the caller chooses at init:
  #   terraform init -backend-config=path=/somewhere/terraform.tfstate
  # (default: ./terraform.tfstate, ignored by git). Never commit state; a
  # shared deployment calls this directory as a module from a root with an
  # S3 backend (see examples/production and README.md).
  backend "local" {}
}
