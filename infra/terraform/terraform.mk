# Terraform against a local AWS emulator (moto_server or LocalStack).
# Included from the top Makefile:   include infra/terraform/terraform.mk
#
#   make deploy-local    apply infra/terraform to $(AWS_ENDPOINT_URL)
#                        (state in .drover/terraform/, outputs in
#                        .drover/terraform/outputs.json, DROVER_* exports
#                        in .drover/terraform/drover.env)
#   make destroy-local   destroy what deploy-local created
#
# The emulator must already run, e.g.:
#   moto_server -p 4566 &          or   docker compose -f localstack/docker-compose.yml up -d
# Offline, the AWS provider comes from the filesystem mirror TF_PLUGIN_DIR
# (default /opt/tf-plugins, when it exists).

AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
TF_DIR           ?= infra/terraform
TF_STATE_DIR     ?= .drover/terraform
TF_PLUGIN_DIR    ?= $(if $(wildcard /opt/tf-plugins),/opt/tf-plugins,)
TF_LOCAL_ARCH    ?= $(shell go env GOARCH)
TF_LOCAL_VARS    ?=

tf_state_abs  = $(abspath $(TF_STATE_DIR))
tf_lambda_arch = $(if $(filter arm64,$(TF_LOCAL_ARCH)),arm64,x86_64)
# Emulator credentials unless the caller set some; TF_DATA_DIR keeps
# .terraform out of the source tree.
tf_local = cd $(TF_DIR) && \
	TF_DATA_DIR=$(tf_state_abs)/.terraform TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1 \
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-test} \
	AWS_REGION=$${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true \
	terraform
tf_local_vars = -var-file=env/local.tfvars -var aws_endpoint_url=$(AWS_ENDPOINT_URL) \
	-var lambda_dir=$(abspath build/lambda/$(TF_LOCAL_ARCH)) -var lambda_architecture=$(tf_lambda_arch) \
	$(TF_LOCAL_VARS)

.PHONY: deploy-local destroy-local tf-init-local

tf-init-local:
	@mkdir -p $(TF_STATE_DIR)
	@curl -sS -o /dev/null --max-time 5 $(AWS_ENDPOINT_URL) || \
	  { echo "no emulator answers at AWS_ENDPOINT_URL=$(AWS_ENDPOINT_URL) (start moto_server -p 4566, or LocalStack)"; exit 1; }
	$(tf_local) init -input=false -reconfigure \
	  -backend-config=path=$(tf_state_abs)/terraform.tfstate \
	  $(if $(TF_PLUGIN_DIR),-plugin-dir=$(TF_PLUGIN_DIR))

deploy-local: tf-init-local
	@test -f build/lambda/$(TF_LOCAL_ARCH)/dispatch.zip || $(MAKE) lambda ARCHS=$(TF_LOCAL_ARCH)
	$(tf_local) apply -input=false -auto-approve $(tf_local_vars)
	$(tf_local) output -json > $(tf_state_abs)/outputs.json
	$(tf_local) output -raw drover_env_exports > $(tf_state_abs)/drover.env
	@echo "outputs in $(TF_STATE_DIR)/outputs.json; for VM-mode processes: source $(TF_STATE_DIR)/drover.env"

destroy-local: tf-init-local
	$(tf_local) destroy -input=false -auto-approve $(tf_local_vars)
