# Optional VM runners: an autoscaling group of instances that each run
# `drover runner`, scaled by target tracking on the tasks backlog per instance
# (SQS ApproximateNumberOfMessagesVisible / GroupInServiceInstances).

data "aws_vpc" "default" {
  count   = length(var.subnet_ids) == 0 ? 1 : 0
  default = true
}

data "aws_subnets" "default" {
  count = length(var.subnet_ids) == 0 ? 1 : 0
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }
}

data "aws_subnet" "first" {
  id = local.subnet_ids[0]
}

locals {
  subnet_ids = length(var.subnet_ids) > 0 ? var.subnet_ids : sort(data.aws_subnets.default[0].ids)
  binary_arn = "arn:${var.partition}:s3:::${var.binary_bucket}/${var.binary_key}"

  statements = concat(var.policy_statements, [{
    sid       = "DroverBinary"
    actions   = ["s3:GetObject"]
    resources = [local.binary_arn]
    condition = {}
  }])
}

module "role" {
  source      = "../role"
  name        = var.name
  description = "Instance role of the ${var.name} VM runners"
  service     = "ec2.amazonaws.com"
  statements  = local.statements
  tags        = var.tags
}

# Where the role and its policy lived before they were a module.
moved {
  from = aws_iam_role.this
  to   = module.role.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.this
  to   = module.role.aws_iam_role_policy.this
}

resource "aws_iam_instance_profile" "this" {
  name = var.name
  role = module.role.name
  tags = var.tags
}

resource "aws_security_group" "this" {
  name        = var.name
  description = "Drover VM runners: no inbound, HTTPS outbound to AWS APIs"
  vpc_id      = data.aws_subnet.first.vpc_id

  egress {
    description = "HTTPS to SQS, S3, DynamoDB and package mirrors"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = var.tags
}

resource "aws_launch_template" "this" {
  name          = var.name
  image_id      = var.ami_id
  instance_type = var.instance_type
  user_data = base64encode(templatefile("${path.module}/user_data.sh.tftpl", {
    binary_bucket = var.binary_bucket
    binary_key    = var.binary_key
    region        = var.region
    environment   = var.environment
    stop_timeout  = var.stop_timeout_seconds
  }))

  iam_instance_profile {
    arn = aws_iam_instance_profile.this.arn
  }

  vpc_security_group_ids = [aws_security_group.this.id]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = var.name })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "this" {
  name                = var.name
  min_size            = var.min_size
  max_size            = var.max_size
  vpc_zone_identifier = local.subnet_ids
  health_check_type   = "EC2"

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  enabled_metrics     = ["GroupInServiceInstances"]
  metrics_granularity = "1Minute"

  dynamic "tag" {
    for_each = var.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # Target tracking owns the desired capacity.
    ignore_changes = [desired_capacity]
  }
}

resource "aws_autoscaling_policy" "backlog_per_instance" {
  name                      = "${var.name}-backlog-per-instance"
  autoscaling_group_name    = aws_autoscaling_group.this.name
  policy_type               = "TargetTrackingScaling"
  estimated_instance_warmup = var.instance_warmup_seconds

  target_tracking_configuration {
    target_value = var.backlog_per_instance

    customized_metric_specification {
      metrics {
        id          = "visible"
        label       = "Tasks waiting"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = var.tasks_queue_name
            }
          }
        }
      }

      metrics {
        id          = "in_service"
        label       = "Runners in service"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/AutoScaling"
            metric_name = "GroupInServiceInstances"
            dimensions {
              name  = "AutoScalingGroupName"
              value = aws_autoscaling_group.this.name
            }
          }
        }
      }

      metrics {
        id          = "backlog_per_instance"
        label       = "Tasks waiting per runner"
        expression  = "visible / in_service"
        return_data = true
      }
    }
  }
}
