output "autoscaling_group_name" { value = aws_autoscaling_group.this.name }
output "role_name" { value = aws_iam_role.this.name }
output "launch_template_id" { value = aws_launch_template.this.id }
