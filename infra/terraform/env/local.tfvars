# For a local emulator (moto_server or LocalStack). Pass the endpoint with
# -var aws_endpoint_url=http://127.0.0.1:4566 (make deploy-local does).
aws_region = "us-east-1"
name       = "drover-local"

# Throwaway stack: destroy may delete a bucket with objects in it.
bucket_force_destroy = true

# The emulator answers on a plain host:port, so S3 needs path-style URLs.
bucket_url_query = "use_path_style=true"

# Functions are created but their SQS triggers are paused: emulators invoke
# functions in Docker, and locally `drover runner` / `drover collect` consume
# the queues instead (VM mode).
runner_trigger_enabled   = false
collect_triggers_enabled = false

# Short timeouts so redelivery is quick in tests (still 6x the function timeouts).
runner_timeout_seconds            = 30
tasks_visibility_timeout_seconds  = 180
collect_timeout_seconds           = 10
events_visibility_timeout_seconds = 60

log_retention_days = 1

# Throwaway stack: no deletion protection, no continuous backups.
status_deletion_protection    = false
status_point_in_time_recovery = false

# moto_server cannot apply a redrive allow policy (the provider waits for it
# to settle until it times out).
dlq_redrive_allow_policies = false

# The emulator is reached over plain HTTP, which the TLS-only bucket policy
# refuses (moto enforces it).
bucket_tls_only = false
