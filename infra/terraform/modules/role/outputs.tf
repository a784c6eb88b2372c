output "name" { value = aws_iam_role.this.name }
output "id" { value = aws_iam_role.this.id }
output "arn" { value = aws_iam_role.this.arn }
