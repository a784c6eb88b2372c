output "autoscaling_group_name" { value = aws_autoscaling_group.this.name }
output "role_name" { value = module.role.name }
output "launch_template_id" { value = aws_launch_template.this.id }
