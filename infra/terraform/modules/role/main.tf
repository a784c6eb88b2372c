# A role that one AWS service assumes, with one inline least-privilege
# policy of exactly the statements given (the Lambda functions and the VM
# runners both use it). Inline policies only, so the IAM check of the
# tests sees every grant.

resource "aws_iam_role" "this" {
  name                 = var.name
  path                 = var.path
  description          = var.description
  permissions_boundary = var.permissions_boundary
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = var.service }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  name = "${var.name}-least-privilege"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [for s in var.statements : merge(
      {
        Sid      = s.sid
        Effect   = "Allow"
        Action   = s.actions
        Resource = s.resources
      },
      { for k, v in { Condition = s.condition } : k => v if length(v) > 0 },
    )]
  })
}
