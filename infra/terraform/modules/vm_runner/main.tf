# Optional VM runners: an autoscaling group of instances that each run
# `drover runner`, scaled by target tracking on the tasks per instance, the
# waiting and the running ones (SQS ApproximateNumberOfMessagesVisible +
# ApproximateNumberOfMessagesNotVisible, over GroupInServiceInstances).
#
# Busy instances are protected from scale-in: a loop on each instance
# reads the runner's metrics and sets its scale-in protection while a task
# runs (SetInstanceProtection), so the group scales in idle instances.
#
# Scale-in drains: a terminating lifecycle hook holds a chosen instance in
# Terminating:Wait; the instance's drain service sees that in the instance
# metadata, stops `drover runner` (SIGTERM: it takes no new task and lets
# running ones finish for up to drain_seconds, then releases the rest for
# redelivery), and completes the lifecycle action. Nothing running is
# killed before drain_seconds.

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
  # An autoscaling group's ARN holds a UUID unknown until it exists; this
  # form, with the UUID wildcarded and the name fixed, is how IAM names
  # one group before it is created.
  group_arn = "arn:${var.partition}:autoscaling:${var.region}:${var.account_id}:autoScalingGroup:*:autoScalingGroupName/${var.name}"
  hook_name = "${var.name}-drain"

  # systemd and the lifecycle hook wait a little longer than the runner's
  # own grace, so that it can release what is still running.
  stop_timeout_seconds = var.drain_seconds + 30
  hook_timeout_seconds = var.drain_seconds + 120

  statements = concat(var.policy_statements, [
    {
      sid       = "DroverBinary"
      actions   = ["s3:GetObject"]
      resources = [local.binary_arn]
      condition = {}
    },
    {
      # The drain completes the lifecycle action; the protection loop
      # protects the instance from scale-in while a task runs.
      sid       = "OwnDrainAndScaleInProtection"
      actions   = ["autoscaling:CompleteLifecycleAction", "autoscaling:SetInstanceProtection"]
      resources = [local.group_arn]
      condition = {}
    },
  ])
}

module "role" {
  source               = "../role"
  name                 = var.name
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  description          = "Instance role of the ${var.name} VM runners"
  service              = "ec2.amazonaws.com"
  statements           = local.statements
  tags                 = var.tags
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
  path = var.role_path
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
    grace         = var.drain_seconds
    stop_timeout  = local.stop_timeout_seconds
    group_name    = var.name
    hook_name     = local.hook_name
    metrics_port  = 9464
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

  # Instances and their volumes get the stack's tags here and from the
  # group; provider default_tags reach neither.
  dynamic "tag_specifications" {
    for_each = ["instance", "volume"]
    content {
      resource_type = tag_specifications.value
      tags          = merge(var.tags, { Name = var.name })
    }
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

  # An autoscaling group does not inherit the provider's default_tags.
  dynamic "tag" {
    for_each = merge(var.tags, { Name = var.name })
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

resource "aws_autoscaling_lifecycle_hook" "drain" {
  name                   = local.hook_name
  autoscaling_group_name = aws_autoscaling_group.this.name
  lifecycle_transition   = "autoscaling:EC2_INSTANCE_TERMINATING"
  heartbeat_timeout      = local.hook_timeout_seconds
  # If the instance never completes the action (it died), terminate anyway.
  default_result = "CONTINUE"
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
        id          = "in_flight"
        label       = "Tasks running"
        return_data = false
        metric_stat {
          stat = "Sum"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesNotVisible"
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
        label       = "Tasks waiting or running per runner"
        expression  = "(visible + in_flight) / in_service"
        return_data = true
      }
    }
  }
}
